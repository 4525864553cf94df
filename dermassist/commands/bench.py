"""``dermassist bench``: in-process reference pipeline vs the served ensemble (and perf_analyzer).

It measures the embedded CPU profile only, on this machine; a GPU host's capacity is measured with distributed Locust
against it (README, "Load-testing a GPU host")."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)

SCOPE = ("It measures the embedded CPU profile only: it starts its own embedded server (configs/embedded.pbtxt) on "
         "this machine, whatever GPU the machine has. A GPU host's capacity is measured with distributed Locust "
         "against the running host: README.md, 'Load-testing a GPU host (distributed Locust)'.")


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"concurrency levels must be comma-separated integers, got {text!r}") from e


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist bench`` (each overrides its DERMASSIST_BENCH_* variable)."""
    from ..base.settings import setting_help
    from ..bench.config import BenchConfig as B

    parser.description = f"{parser.description or 'benchmark the in-process pipeline against the served ensemble'}. {SCOPE}"
    parser.add_argument("--repository", help=setting_help(B, "repository", "model repository with exported models"))
    parser.add_argument("--concurrency", dest="concurrencies", type=_levels,
                        help=setting_help(B, "concurrencies", "served concurrency levels"))
    parser.add_argument("--requests", dest="requests_per_level", type=int,
                        help=setting_help(B, "requests_per_level", "served requests per level, and each way per row "
                                          "of the guard front's table"))
    parser.add_argument("--passes", dest="inprocess_passes", type=int,
                        help=setting_help(B, "inprocess_passes", "in-process passes over the corpus"))
    parser.add_argument("--per-size", type=int,
                        help=setting_help(B, "per_size", "corpus images per size (4 sizes 600x450..3000x2000)"))
    parser.add_argument("--inprocess-threads", dest="inprocess_torch_threads", type=int,
                        help=setting_help(B, "inprocess_torch_threads",
                                          "torch intra-op threads of the in-process reference (0: the served classifier's)"))
    parser.add_argument("--warmup", type=int, help=setting_help(B, "warmup", "warm-up requests"))
    parser.add_argument("--report-dir", help=setting_help(B, "report_dir", "where latest.md / latest.json go"))
    parser.add_argument("--tools-dir", help=setting_help(B, "tools_dir", "where perf_analyzer is unpacked"))
    parser.add_argument("--no-perf-analyzer", dest="perf_analyzer", action="store_const", const=False,
                        help=setting_help(B, "perf_analyzer", "skip perf_analyzer (it runs unless this flag or the "
                                          "variable false says otherwise)"))


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
