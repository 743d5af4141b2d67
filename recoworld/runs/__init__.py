"""Population runs: the day loop (runner), user shards, engines (local, Ray), checkpoints and
the Parquet logs they write.

Imports: ``recoworld.world``, ``recoworld.users``, ``recoworld.agents``, ``recoworld.llm``,
``recoworld.scenario``. Nothing below ``runs`` imports it (reports read logs through
``recoworld.runs.logs`` only).
"""
