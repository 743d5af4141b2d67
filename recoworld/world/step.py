"""The world's entry to the fused compiled step (``recoworld.world.kernel``): :func:`run_step` calls it on a
world bound once (``recoworld.world.bound``) with the step's slates, draws, output and observation buffers
and the decisions made elsewhere; :class:`SlateResponse` and :class:`SlateEffects` are named views on what
the kernel wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recoworld.users import layout as UL
from recoworld.users.layout import Decisions
from recoworld.users.parametric import ForcedDecisions
from recoworld.world import layout as WL
from recoworld.world.bound import WorldState, field_arrays
from recoworld.world.kernel import (
    ITEM_OUT_OF_RANGE, ROW_OUT_OF_RANGE, STEP_OK, WRONG_LENGTHS, WRONG_OBSERVATION, WRONG_OUTPUTS, step_bound,
)
from recoworld.world.observation import buffer_args, observation_mismatch

PARALLEL_BATCH = 256  # batches at least this large are spread over threads (numba prange)
_NO_DECISIONS: dict[tuple[int, int], Decisions] = {}


def _item_out(col: int, doc: str, as_bool: bool = True) -> property:
    if as_bool:
        return property(lambda self: self._flag(col), doc=doc)
    return property(lambda self: self.items[:, :, col], doc=doc)


@dataclass
class SlateResponse:
    """What each user did with each slot of their slate (b users x K slots), as written by the kernel.

    ``items`` is (b, K, users.layout.ITEM_OUTPUTS), ``per_user`` is (b, world.layout.USER_OUTPUTS); the
    properties below are views on them.
    """

    items: np.ndarray
    per_user: np.ndarray
    _flags: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def _flag(self, col: int) -> np.ndarray:
        """(b, K) ``items[:, :, col] > 0``, worked out once per response (a step's consumers read each flag several
        times) and read-only, since every reader shares it."""
        if col not in self._flags:
            flag = self.items[:, :, col] > 0
            flag.flags.writeable = False
            self._flags[col] = flag
        return self._flags[col]

    reviewed = _item_out(UL.O_REVIEWED, "The user got to this slot.")
    click = _item_out(UL.O_CLICK, "Clicked (and watched).")
    like = _item_out(UL.O_LIKE, "Liked.")
    share = _item_out(UL.O_SHARE, "Shared.")
    comment = _item_out(UL.O_COMMENT, "Commented.")
    watch_frac = _item_out(UL.O_WATCH, "Fraction of the item watched (0 where not clicked).", as_bool=False)
    utility = _item_out(UL.O_UTILITY, "The user's utility for the item (0 where not reviewed).", as_bool=False)

    @property
    def skip(self) -> np.ndarray:
        """Reviewed and not clicked."""
        return self.reviewed & ~self.click

    watch_seconds = _item_out(UL.O_WATCH_SECONDS, "Seconds watched (0 where not clicked).", as_bool=False)

    @property
    def action_codes(self) -> np.ndarray:
        """(b, K) index into users.layout.ACTION_LABELS."""
        return self.items[:, :, UL.O_ACTION].astype(np.int64)

    @property
    def left(self) -> np.ndarray:
        """(b,) the user left the session during this slate."""
        return self.per_user[:, WL.U_LEFT] > 0

    @property
    def left_at(self) -> np.ndarray:
        """(b,) slot the user left at, -1 if they stayed."""
        return self.per_user[:, WL.U_LEFT_AT].astype(np.int64)


@dataclass
class SlateEffects:
    """Hidden consequences of a slate that the world reports (b users), as views on the kernel output."""

    per_user: np.ndarray

    @property
    def compliance(self) -> np.ndarray:
        """Score in [0, 1] of the slate against the pending instruction; nan where none was pending."""
        return self.per_user[:, WL.U_COMPLIANCE]

    @property
    def resolved(self) -> np.ndarray:
        """The instruction was followed well enough this slate."""
        return self.per_user[:, WL.U_RESOLVED] > 0

    @property
    def ignored(self) -> np.ndarray:
        """The user gave up on their instruction this slate."""
        return self.per_user[:, WL.U_IGNORED] > 0

    @property
    def emitted(self) -> np.ndarray:
        """A new instruction was voiced after this slate."""
        return self.per_user[:, WL.U_EMITTED] > 0

    @property
    def risk(self) -> np.ndarray:
        """Chance of leaving within a next slate like this one."""
        return self.per_user[:, WL.U_RISK]


def run_step(
    state: WorldState,
    rows: np.ndarray,
    slates: np.ndarray,
    decisions: ForcedDecisions | None,
    rng: np.random.Generator,
    observation: "dict[str, np.ndarray] | None" = None,
    seeds: np.ndarray | None = None,
    outputs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[SlateResponse, SlateEffects]:
    """One world step for users ``rows`` of the world bound in ``state`` (:func:`recoworld.world.bound.bind`):
    they review their slates (catalog rows, (b, K)) in order; mindsets, the platform log and the clock update;
    ended sessions lead to a return or churn. Fresh candidates for the next decision are written to the
    state's candidate table; with ``observation`` buffers (see recoworld.world.observation) the next
    observation is filled in too.

    ``decisions``: the actions of users whose choices come from elsewhere (LLM users); ``seeds`` ((b,)
    uint64), when given, are the users' random draws instead of ``rng``'s; ``outputs``, when given, are the (b, K,
    ITEM_OUTPUTS) and (b, USER_OUTPUTS) float64 buffers the kernel writes into (else fresh arrays).
    """
    rows = np.asarray(rows, dtype=np.int64)
    slates = np.ascontiguousarray(slates, dtype=np.int64)
    b, k = slates.shape
    drawn = seeds is None
    seeds = rng.bit_generator.random_raw(b) if drawn else seeds
    if outputs is None:
        out_item, out_user = np.empty((b, k, UL.ITEM_OUTPUTS)), np.empty((b, WL.USER_OUTPUTS))
    else:
        out_item, out_user = outputs
    obs = observation if observation is not None else NO_OBSERVATION
    forced = decisions.as_tuple() if decisions is not None else _no_decisions(b, k)
    problem = step_bound(
        b >= PARALLEL_BATCH, state, rows, slates, seeds, out_item, out_user,
        *buffer_args(obs), *forced,
    )
    if problem != STEP_OK:
        if drawn:  # nothing was stepped: the world's generator stands where it stood, so a corrected retry replays
            _undraw(rng, b)
        raise ValueError(step_error(problem, state, rows, slates, seeds, (out_item, out_user), obs, forced))
    return SlateResponse(out_item, out_user), SlateEffects(out_user)


def _undraw(rng: np.random.Generator, n: int) -> None:
    """Take back the last ``n`` raw draws of ``rng`` (``random_raw`` leaves a PCG64's buffered 32-bit half as it was;
    ``advance`` would clear it, so it is put back). The world's generators are PCG64s (``default_rng``, Gymnasium's
    ``np_random``); another bit generator keeps its draws spent."""
    bits = rng.bit_generator
    if not isinstance(bits, (np.random.PCG64, np.random.PCG64DXSM)):
        return
    kept = bits.state
    bits.advance(-n)
    state = bits.state
    for key in ("has_uint32", "uinteger"):
        if key in kept:
            state[key] = kept[key]
    bits.state = state


def step_error(
    problem: int, state: WorldState, rows: np.ndarray, slates: np.ndarray, seeds: np.ndarray,
    outputs: tuple[np.ndarray, np.ndarray], obs: dict[str, np.ndarray], decisions: Decisions,
) -> str:
    """The one-line error for what the compiled step refused (``recoworld.world.kernel.step_problem``)."""
    b, k = slates.shape
    world = field_arrays(state)
    n_users, n_items = len(world["candidates"]), len(world["cat_topic"])
    if problem == WRONG_LENGTHS:
        return f"step: one slate and one seed per user, got {len(rows)} users, {b} slates and {len(seeds)} seeds"
    if problem == ROW_OUT_OF_RANGE:
        return f"step: user rows must lie in 0..{n_users - 1}, got {rows.min()}..{rows.max()}"
    if problem == ITEM_OUT_OF_RANGE:
        return f"step: slates hold catalog rows 0..{n_items - 1}, got {slates.min()}..{slates.max()}"
    if problem == WRONG_OUTPUTS:
        return (f"step: outputs must have shapes ({b}, {k}, {UL.ITEM_OUTPUTS}) and ({b}, {WL.USER_OUTPUTS}), "
                f"got {outputs[0].shape} and {outputs[1].shape}")
    if problem == WRONG_OBSERVATION:
        return f"step: {observation_mismatch(state, b, obs)}"
    forced, actions, leave_at = decisions
    return (f"step: decisions must have shapes ({b},), ({b}, {k}, {UL.FORCED_COLUMNS}) and ({b},), got "
            f"{forced.shape}, {actions.shape} and {leave_at.shape}")


def _no_decisions(b: int, k: int) -> Decisions:
    """``ForcedDecisions.none(b, k)`` as the kernel takes it, made once per shape (the kernel only reads it)."""
    key = (b, k)
    if key not in _NO_DECISIONS:
        if len(_NO_DECISIONS) > 64:
            _NO_DECISIONS.clear()
        _NO_DECISIONS[key] = ForcedDecisions.none(b, k).as_tuple()
    return _NO_DECISIONS[key]


NO_OBSERVATION = {  # observation buffers of no rows: the kernel observes nothing
    "candidates": np.zeros((0, 0), dtype=np.float32),
    "user": np.zeros((0, 0), dtype=np.float32),
    "topics": np.zeros((0, 0), dtype=np.float32),
    "instruction": np.zeros((0, 0), dtype=np.float32),
}
