"""Bundled scenario YAML files (read with ``recoworld.scenario.load_scenario(name)``)."""
