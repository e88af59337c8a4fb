"""kerasllm's version, in a module of its own so that reading it imports
nothing else (the package's `__init__` registers the tasks)."""

__version__ = "0.1.0"
