"""Exceptions of the benchmark (under the package's DermAssistError root)."""
from __future__ import annotations

from ..base.errors import DermAssistError


class BenchError(DermAssistError):
    """The benchmark could not run or measure."""


class BenchConfigError(BenchError):
    """A benchmark setting is invalid."""


class PerfAnalyzerUnavailable(BenchError):
    """perf_analyzer cannot be set up or run here (the bench goes on without its figures)."""


class NoMeasurementsError(BenchError):
    """A run measured nothing to summarise (no latencies, or no time passed)."""
