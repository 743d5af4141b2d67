"""Gymnasium environments: ``single.py`` (RecoWorld-v0, one user's life on the platform).

Imports: ``recoworld.world``, ``recoworld.users``, ``recoworld.scenario``, gymnasium; never
``recoworld.runs`` or ``recoworld.agents`` at module level. Registration lives in
``recoworld/__init__.py`` with string entry points, so importing this package builds nothing.
"""
