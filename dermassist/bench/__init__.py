"""``dermassist bench``: the in-process reference pipeline against the served ensemble."""
