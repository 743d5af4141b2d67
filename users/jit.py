"""Compile settings every numba kernel of the world shares."""

FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}  # no nnan / ninf: NaN and inf stay meaningful
