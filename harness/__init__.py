"""pitfalls: reproduce deep-learning deployment challenges on real runtimes."""

__version__ = "0.1.0"
