"""``dermassist models``: the released real-data models -> the served model repository (seconds).

``--synthetic`` instead trains a small release on the synthetic set (minutes), for machines without
the release or the real data.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)



def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist models``."""
    parser.add_argument("--release", type=Path, default=None, help="release folder (default training/release)")
    parser.add_argument("--repository", type=Path, default=None, help="model repository to export into (default the project's)")
    parser.add_argument("--reports", type=Path, default=None, help="where metrics.json goes (default reports/latest)")
    parser.add_argument("--synthetic", action="store_true",
                        help="train a small release on the synthetic set first (minutes) and serve that instead")
    parser.add_argument("--force", action="store_true", help="export (and with --synthetic, retrain) even if current")


def release_stamp(release: Path) -> str:
    """Fingerprint of a release's manifest and weights: the exported repository is current when it matches."""
    from training.pipeline import fingerprint

    files = sorted(p for p in Path(release).glob("*") if p.suffix in (".json", ".npz"))
    return fingerprint([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def run(args: argparse.Namespace) -> int:
    """Export the release (or a fresh synthetic one) and write reports/latest/metrics.json."""
    from dermassist.base.paths import PROJECT_ROOT
    from dermassist.base.repository import (
        IMPORTED,
        RELEASE_STAMP,
        SOURCE_REPOSITORY,
        missing_artifacts,
        tuned_value_problems,
    )
    from training.export.release import check_release_pair
    from training.export.repository import open_repository
    from training.pipeline import SYNTHETIC_RECIPE, BuildConfig, build_release, export_release, write_metrics
    from training.release import RELEASE_DIR, read_release

    repository = open_repository(args.repository or SOURCE_REPOSITORY)
    reports = args.reports or PROJECT_ROOT / "reports" / "latest"
    release = args.release or RELEASE_DIR
    if args.synthetic:
        from training.synth.generator import SynthConfig, generate, read_manifest

        data = PROJECT_ROOT / "data" / "synthetic"
        if read_manifest(data) is None:
            generate(data, SynthConfig(), progress=True)
        release = args.release or PROJECT_ROOT / "data" / "runs" / "synthetic" / "release"
        build_release(BuildConfig(data=data, out=release, runs=PROJECT_ROOT / "data" / "runs" / "synthetic",
                                  recipe=SYNTHETIC_RECIPE, force=args.force))
    stamp = Path(repository) / RELEASE_STAMP
    current = release_stamp(release)
    served = stamp.read_text() if stamp.is_file() else ""
    if not args.force and served.startswith(IMPORTED):
        logger.warning("model repository %s serves models brought with `dermassist import` (%s); left as they are, "
                       "and no release figures are written for them (`dermassist models --force` serves the release "
                       "again)", repository, served.strip().removeprefix(IMPORTED).strip())
        return 0
    check_release_pair(release, read_release(release))  # a half-built release is refused before the stamp goes
    if args.force or missing_artifacts(repository) or tuned_value_problems(repository) or served != current:
        stamp.unlink(missing_ok=True)  # a failed or interrupted export leaves no stamp that calls it current
        for line in export_release(release, repository):
            logger.info("%s", line)
        stamp.write_text(current)
    else:
        logger.info("model repository %s already serves release %s", repository, release)
    metrics = write_metrics(release, reports)
    seg, cls = metrics["segmentation"], metrics["classification"]["test"]
    logger.info("segmentation val jaccard %.3f (threshold %.2f); classification test balanced accuracy %.3f, "
                "macro F1 %.3f; metrics -> %s", seg["val"]["jaccard"], seg["threshold"], cls["balanced_accuracy"],
                cls["macro_f1"], reports / "metrics.json")
    return 0
