"""The run folder, the format that runs write and reports read: the tables' schema (``records``),
the folder with its manifest and checkpoint (``folder``), durable writes (``durable``), the disk
guard (``disk``) and the lock that keeps a second run out (``lock``).

Imports: numpy, pandas, pyarrow, pydantic; nothing else of RecoWorld. Import the modules themselves;
this file re-exports nothing.
"""
