"""DermAssist server side: the base (``dermassist.base``), the guard in front of Triton, the in-process
reference pipeline, the bench, the site evaluation and the ``dermassist`` command line."""

__version__ = "0.1.0"
