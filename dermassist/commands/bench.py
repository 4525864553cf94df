"""``dermassist bench``: in-process reference pipeline vs the served ensemble (and perf_analyzer)."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging

logger = logging.getLogger(__name__)


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"concurrency levels must be comma-separated integers, got {text!r}") from e


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist bench`` (each overrides its DERMASSIST_BENCH_* variable)."""
    parser.add_argument("--repository", help="model repository with exported models (default: the project's)")
    parser.add_argument("--concurrency", dest="concurrencies", type=_levels, help="served levels, e.g. 1,2,4,8 (default)")
    parser.add_argument("--requests", dest="requests_per_level", type=int, help="served requests per level (default 96)")
    parser.add_argument("--passes", dest="inprocess_passes", type=int, help="in-process passes over the corpus (default 4)")
    parser.add_argument("--per-size", type=int, help="corpus images per size (default 3; 4 sizes 600x450..3000x2000)")
    parser.add_argument("--inprocess-threads", dest="inprocess_torch_threads", type=int,
                        help="torch intra-op threads of the in-process reference (default 0 = torch's default)")
    parser.add_argument("--warmup", type=int, help="warm-up requests (default 4)")
    parser.add_argument("--report-dir", help="where latest.md / latest.json go (default reports/bench)")
    parser.add_argument("--tools-dir", help="where perf_analyzer is unpacked (default tools/)")
    parser.add_argument("--no-perf-analyzer", dest="perf_analyzer", action="store_const", const=False,
                        help="skip perf_analyzer")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the reports; 0 even when a target is missed."""
    from ..bench.config import BenchConfig
    from ..bench.runner import run_bench

    config = BenchConfig.resolve(vars(args))
    result = run_bench(config)
    md, js = result.write(config.report_dir)
    print(result.markdown())
    print(f"written: {md} and {js}")
    missed = [t.name for t in result.targets() if not t.met]
    if missed:
        logger.warning("targets missed in this run: %s", "; ".join(missed))
    return 0
