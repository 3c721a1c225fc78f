"""negmine's version, in a module of its own (a leaf: every module may import it, it imports nothing)."""

__version__ = "0.1.0"
