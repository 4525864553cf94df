"""``dermassist evaluate``: a labelled folder through the SERVED ensemble -> a site-validation report."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist evaluate``."""
    from ..base.settings import setting_help
    from ..evaluation import EvaluationConfig as E
    from ..remote import add_tls_flags

    parser.add_argument("--data", type=Path, required=True, help="labelled folder in any accepted layout")
    parser.add_argument("--url", help=setting_help(E, "url", "gRPC HOST:PORT of a running DermAssist (none: start one)"))
    parser.add_argument("--repository", type=Path,
                        help=setting_help(E, "repository", "repository the embedded server serves (none: the project's)"))
    parser.add_argument("--split-manifest", type=Path,
                        help=setting_help(E, "split_manifest", "evaluate only one split of this manifest"))
    parser.add_argument("--split", help=setting_help(E, "split", "which split of the manifest"))
    parser.add_argument("--ood", type=Path,
                        help=setting_help(E, "ood", "folder of non-dermoscopic images: adds the OOD_SCORE AUROC"))
    parser.add_argument("--name", help=setting_help(E, "name", "report name (none: the folder name, plus the split)"))
    parser.add_argument("--out", type=Path, help=setting_help(E, "out", "reports go to OUT/NAME/"))
    add_tls_flags(parser, E, "TLS (with --url, a DermAssist served over TLS, e.g. behind the guard)")


def run(args: argparse.Namespace) -> int:
    """Evaluate and log the headline figures."""
    from ..evaluation import EvaluationConfig, evaluate

    config = EvaluationConfig.resolve(vars(args))
    report = evaluate(config)
    for key in ("segmentation", "classification", "triage", "ood"):
        if report.get(key):
            logger.info("%s: %s", key, {k: round(v, 4) for k, v in report[key].items() if isinstance(v, float)})
    logger.info("report: %s", Path(config.out) / report["name"] / "report.md")
    return 0
