"""Population runs: the day loop (runner), user shards, engines (local, Ray), checkpoints and
results; the run folder they write (its schema, manifest, durable writes, disk guard and lock) is
``recoworld.logs``.

Imports: ``recoworld.world``, ``recoworld.users``, ``recoworld.agents``, ``recoworld.llm``,
``recoworld.logs``, ``recoworld.scenario``. Nothing below ``runs`` imports it (reports read logs
through ``recoworld.logs``).
"""
