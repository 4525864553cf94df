"""Typed, self-validating benchmark settings (precedence: CLI flag > DERMASSIST_BENCH_* > default)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.paths import PROJECT_ROOT, folder_problem
from ..base.repository import SOURCE_REPOSITORY
from ..base.settings import Settings
from .errors import BenchConfigError


@dataclass(frozen=True)
class BenchConfig(Settings):
    """What ``dermassist bench`` measures and where it writes."""

    env_prefix = "DERMASSIST_BENCH_"
    config_error = BenchConfigError

    repository: Path = SOURCE_REPOSITORY
    concurrencies: tuple[int, ...] = (1, 2, 4, 8)
    requests_per_level: int = 96  # served requests per concurrency level (one image each); each way per front row
    inprocess_passes: int = 4  # passes over the corpus for the in-process reference
    warmup: int = 4
    inprocess_torch_threads: int = 0  # 0 = torch's default (all cores)
    per_size: int = 3  # corpus images per size (4 sizes, 600x450 to 3000x2000)
    report_dir: Path = PROJECT_ROOT / "reports" / "bench"
    tools_dir: Path = PROJECT_ROOT / "tools"
    perf_analyzer: bool = True
    perf_analyzer_window_ms: int = 4000

    def __post_init__(self) -> None:
        object.__setattr__(self, "repository", Path(self.repository))
        object.__setattr__(self, "report_dir", Path(self.report_dir))
        object.__setattr__(self, "tools_dir", Path(self.tools_dir))
        object.__setattr__(self, "concurrencies", tuple(int(c) for c in self.concurrencies))
        if not self.concurrencies or any(c < 1 for c in self.concurrencies):
            raise BenchConfigError(f"concurrencies must be positive integers, got {self.concurrencies}")
        for name in ("requests_per_level", "inprocess_passes", "per_size", "perf_analyzer_window_ms"):
            if getattr(self, name) < 1:
                raise BenchConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.inprocess_torch_threads < 0:
            raise BenchConfigError(f"inprocess_torch_threads must be >= 0 (0 = default), got {self.inprocess_torch_threads}")
        if self.warmup < 0:
            raise BenchConfigError(f"warmup must be >= 0, got {self.warmup}")
        problem = folder_problem(self.report_dir)
        if problem is not None:
            raise BenchConfigError(f"report_dir {self.report_dir} {problem}; expected a folder for the reports: pass "
                                   "another --report-dir / DERMASSIST_BENCH_REPORT_DIR")

