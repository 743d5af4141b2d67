"""Test helpers that are not part of the runtime: a local OpenAI-compatible server
(``python -m recoworld.testing.fake_server``) for trying LLM paths with no key and no network.

Imports: the standard library only.
"""
