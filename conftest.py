"""Load the pitfalls pytest plugin (also registered through the `pytest11` entry point)."""

pytest_plugins = ["harness.plugin"]
