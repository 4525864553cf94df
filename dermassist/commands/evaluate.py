"""``dermassist evaluate``: a labelled folder through the SERVED ensemble -> a site-validation report."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

#: The report was written, but labelled images are not in its figures (absent on disk, in a format the service does
#: not accept, or refused by it): the figures are not the whole labelled set.
EXIT_LABELLED_LEFT_OUT = 3
EXIT_STATUS = f"""exit status:
  0    the report was written and every labelled image selected is in its figures
  {EXIT_LABELLED_LEFT_OUT}    the report was written, but labelled images are not in its figures: listed in the labels
       and absent on disk or in a format the service does not accept, refused by the service, or the same file as
       another labelled otherwise (the report's "Not in these figures" and images.csv name them); add, convert or
       relabel them and run again
  2    an error: nothing was evaluated (a wrong folder, --url or label file, a server that cannot be reached:
       an earlier report is left as it was), or the server stopped answering midway (a PARTIAL report)
  130  interrupted (Ctrl-C): a PARTIAL report once images were being sent"""


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist evaluate``."""
    from ..base.flags import GivenOnce
    from ..base.settings import setting_help
    from ..evaluation import EvaluationConfig as E
    from ..remote import add_tls_flags

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXIT_STATUS
    parser.add_argument("--data", type=Path, action=GivenOnce, required=True, help="labelled folder in any accepted layout")
    parser.add_argument("--url", help=setting_help(E, "url", "gRPC HOST:PORT of a running DermAssist (none: start one)"))
    parser.add_argument("--repository", type=Path,
                        help=setting_help(E, "repository", "repository the embedded server serves (none: the project's); "
                                                         "with --url, the repository that server serves, so the "
                                                         "report states its REFER threshold"))
    parser.add_argument("--split-manifest", type=Path, action=GivenOnce,
                        help=setting_help(E, "split_manifest", "evaluate only one split of this manifest"))
    parser.add_argument("--split", help=setting_help(E, "split", "which split of the manifest"))
    parser.add_argument("--ood", type=Path,
                        help=setting_help(E, "ood", "folder of non-dermoscopic images: adds the OOD_SCORE AUROC"))
    parser.add_argument("--name", help=setting_help(E, "name", "report name (none: the folder name, plus the split)"))
    parser.add_argument("--out", type=Path, help=setting_help(E, "out", "reports go to OUT/NAME/"))
    parser.add_argument("--timeout", dest="timeout_s", type=float,
                        help=setting_help(E, "timeout_s", "seconds each call may take (a batch of images)"))
    add_tls_flags(parser, E, "TLS (with --url, a DermAssist served over TLS, e.g. behind the guard)")


def run(args: argparse.Namespace) -> int:
    """Evaluate and log the headline figures; the exit status (EXIT_STATUS) says whether labelled images were left
    out of them."""
    from ..evaluation import EvaluationConfig, evaluate

    config = EvaluationConfig.resolve(vars(args))
    report = evaluate(config)
    for key in ("segmentation", "classification", "triage", "ood"):
        if report.get(key):
            logger.info("%s: %s", key, {k: round(v, 4) for k, v in report[key].items() if isinstance(v, float)})
    path = Path(config.out) / report["name"] / "report.md"
    logger.info("report: %s", path)
    left = report["labelled_not_evaluated"]
    if not left["total"]:
        return 0
    in_figures = (report.get("classification") or {}).get("images", 0)
    logger.warning("%d labelled image(s) are not in the figures (%d absent on disk, %d in a format the service does not "
                   "accept, %d refused, %d the same file as another labelled otherwise; %d are): %s names them (exit "
                   "status %d)", left["total"], left["absent_on_disk"], left["not_accepted_format"], left["refused"],
                   left.get("conflicting_labels", 0), in_figures, path, EXIT_LABELLED_LEFT_OUT)
    return EXIT_LABELLED_LEFT_OUT
