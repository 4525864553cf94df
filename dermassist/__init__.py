"""DermAssist server-side tooling: embedded Triton launcher, exports and the ``dermassist`` CLI."""

__version__ = "0.1.0"
