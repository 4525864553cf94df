"""Typed, self-validating benchmark settings (precedence: CLI flag > DERMASSIST_BENCH_* > default)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..base.paths import PROJECT_ROOT, folder_problem
from ..base.repository import SOURCE_REPOSITORY
from ..base.settings import Settings, flag_name, setting_names
from .errors import BenchConfigError


@dataclass(frozen=True)
class BenchConfig(Settings):
    """What ``dermassist bench`` measures and where it writes."""

    env_prefix = "DERMASSIST_BENCH_"
    config_error = BenchConfigError

    repository: Path = SOURCE_REPOSITORY
    concurrencies: tuple[int, ...] = field(default=(1, 2, 4, 8), metadata=flag_name("--concurrency"))
    # served requests per concurrency level (one image each); each way per front row
    requests_per_level: int = field(default=96, metadata=flag_name("--requests"))
    # passes over the corpus for the in-process reference
    inprocess_passes: int = field(default=4, metadata=flag_name("--passes"))
    warmup: int = 4
    # 0 = the served classifier's intra_op_threads (torch's default where its config sets none)
    inprocess_torch_threads: int = field(default=0, metadata=flag_name("--inprocess-threads"))
    per_size: int = 3  # corpus images per size (4 sizes, 600x450 to 3000x2000)
    report_dir: Path = PROJECT_ROOT / "reports" / "bench"
    tools_dir: Path = PROJECT_ROOT / "tools"
    perf_analyzer: bool = field(default=True, metadata=flag_name("--no-perf-analyzer"))
    perf_analyzer_window_ms: int = field(default=4000, metadata=flag_name(None))

    def __post_init__(self) -> None:
        object.__setattr__(self, "repository", Path(self.repository))
        object.__setattr__(self, "report_dir", Path(self.report_dir))
        object.__setattr__(self, "tools_dir", Path(self.tools_dir))
        object.__setattr__(self, "concurrencies", tuple(int(c) for c in self.concurrencies))
        if not self.concurrencies or any(c < 1 for c in self.concurrencies):
            raise BenchConfigError(f"{setting_names(BenchConfig, 'concurrencies')} must be positive integers "
                                   f"(e.g. 1,2,4,8), got {','.join(map(str, self.concurrencies)) or 'none'}; pass others")
        for name in ("requests_per_level", "inprocess_passes", "per_size", "perf_analyzer_window_ms"):
            if getattr(self, name) < 1:
                raise BenchConfigError(f"{setting_names(BenchConfig, name)} must be at least 1, got "
                                       f"{getattr(self, name)}; pass a larger value")
        if self.inprocess_torch_threads < 0:
            raise BenchConfigError(f"{setting_names(BenchConfig, 'inprocess_torch_threads')} must be >= 0 (0: the served "
                                   f"classifier's), got {self.inprocess_torch_threads}; pass 0 or more")
        if self.warmup < 0:
            raise BenchConfigError(f"{setting_names(BenchConfig, 'warmup')} must be >= 0, got {self.warmup}; pass 0 or "
                                   "more")
        problem = folder_problem(self.report_dir)
        if problem is not None:
            raise BenchConfigError(f"report_dir {self.report_dir} {problem}; expected a folder for the reports: pass "
                                   f"another {setting_names(BenchConfig, 'report_dir')}")

