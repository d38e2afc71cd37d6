"""ddastate: a replicated key-value state over pub-sub, kept consistent by Raft."""

__version__ = "0.1.0"
