"""Click layer: thin. Options -> config dataclass -> I/O layer -> result -> renderer -> exit code."""
