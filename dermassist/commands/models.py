"""``dermassist models``: the released real-data models -> the served model repository (seconds).

``--synthetic`` instead trains a small release on the synthetic set (minutes), for machines without
the release or the real data.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.release import RELEASE_DIR

from ..base.flags import GivenOnce
from ..base.paths import PROJECT_ROOT, folder_problem, writable_folder_problem
from ..base.repository import SOURCE_REPOSITORY
from ..base.settings import Settings, setting_help, setting_names

logger = logging.getLogger(__name__)

# ``--synthetic``: the set it generates (when absent), its stage runs, and the release it builds and serves unless
# --release / DERMASSIST_MODELS_RELEASE names another folder (ModelsConfig.derived_defaults).
SYNTHETIC_DATA = PROJECT_ROOT / "data" / "synthetic"
SYNTHETIC_RUNS = PROJECT_ROOT / "data" / "runs" / "synthetic"
SYNTHETIC_RELEASE = SYNTHETIC_RUNS / "release"


@dataclass(frozen=True)
class ModelsConfig(Settings):
    """What ``dermassist models`` exports, and where (``resolve``: flags > DERMASSIST_MODELS_* > defaults)."""

    env_prefix = "DERMASSIST_MODELS_"

    release: Path = RELEASE_DIR  # with synthetic, SYNTHETIC_RELEASE unless given
    repository: Path = SOURCE_REPOSITORY
    reports: Path = PROJECT_ROOT / "reports" / "latest"
    synthetic: bool = False
    force: bool = False

    @classmethod
    def derived_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Unless given, a synthetic run's release is the one it builds (SYNTHETIC_RELEASE), not the shipped one."""
        if given.get("synthetic") and given.get("release") is None:
            given = {**given, "release": SYNTHETIC_RELEASE}
        return given

    def __post_init__(self) -> None:
        for name in ("release", "repository", "reports"):  # what a repository holds is checked when it is opened
            object.__setattr__(self, name, Path(getattr(self, name)))
            problem = folder_problem(getattr(self, name))
            if problem is not None:
                raise self.config_error(f"{setting_names(type(self), name)} {getattr(self, name)} {problem}; expected a "
                                        "folder (new or existing): pass another path")


def _relative(path: Path) -> Path:
    """``path`` relative to the project when it lies in it (as help texts name folders), else as it is."""
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist models`` (each falls back to its DERMASSIST_MODELS_* variable, then the default)."""
    m = ModelsConfig
    parser.add_argument("--release", type=Path, action=GivenOnce, help=setting_help(m, "release", "release folder to export"))
    parser.add_argument("--repository", type=Path, help=setting_help(m, "repository", "model repository to export into"))
    parser.add_argument("--reports", type=Path, help=setting_help(m, "reports", "where metrics.json goes"))
    parser.add_argument("--synthetic", action="store_true", default=None, help=setting_help(
        m, "synthetic", "train a small release on the synthetic set first (minutes), into "
        f"{_relative(SYNTHETIC_RELEASE)} unless --release names another folder, and serve that instead"))
    parser.add_argument("--force", action="store_true", default=None, help=setting_help(
        m, "force", "export (and with --synthetic, retrain) even if current"))


def release_stamp(release: Path) -> str:
    """Fingerprint of a release's manifest and weights and of the export's format: the exported repository is current
    when it matches."""
    from training.export.repository import EXPORT_FORMAT
    from training.pipeline import fingerprint

    files = sorted(p for p in Path(release).glob("*") if p.suffix in (".json", ".npz"))
    return fingerprint(EXPORT_FORMAT, [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def run(args: argparse.Namespace) -> int:
    """Export the release (or a fresh synthetic one) and write metrics.json into the reports folder."""
    from dermassist.base.repository import (
        IMPORTED,
        ORIGINS_FILE,
        RELEASE_NAME,
        RELEASE_STAMP,
        SEAL_FILE,
        missing_artifacts,
        name_release,
        seal,
        seal_problems,
        served_release,
        tuned_value_problems,
    )
    from training.export.release import check_release_pair
    from training.export.repository import open_repository
    from training.pipeline import SYNTHETIC_RECIPE, BuildConfig, build_release, export_release, write_metrics
    from training.release import read_release

    config = ModelsConfig.resolve(vars(args))
    reports, release = config.reports, config.release
    if not config.synthetic:  # a wrong --release is refused before the repository is made or touched
        read_release(release)
    problem = writable_folder_problem(reports)  # checked before the export, whose figures go there
    if problem is not None:
        raise ModelsConfig.config_error(f"{setting_names(ModelsConfig, 'reports')} {reports} {problem}; expected a "
                                        "folder metrics.json can be written in: pass another path")
    repository = open_repository(config.repository)
    if config.synthetic:
        from training.synth.generator import SynthConfig, generate, read_manifest

        if read_manifest(SYNTHETIC_DATA) is None:
            generate(SYNTHETIC_DATA, SynthConfig(), progress=True)
        build_release(BuildConfig(data=SYNTHETIC_DATA, out=release, runs=SYNTHETIC_RUNS, recipe=SYNTHETIC_RECIPE,
                                  force=config.force))
    stamp = Path(repository) / RELEASE_STAMP
    current = release_stamp(release)
    served = stamp.read_text() if stamp.is_file() else ""
    if not config.force and served.startswith(IMPORTED):
        logger.warning("model repository %s serves models brought with `dermassist import` (%s); left as they are, "
                       "and no release figures are written for them (`dermassist models --force` serves the release "
                       "again)", repository, served.strip().removeprefix(IMPORTED).strip())
        return 0
    manifest = read_release(release)
    check_release_pair(release, manifest)  # a half-built release is refused before the stamp goes
    if config.force or missing_artifacts(repository) or tuned_value_problems(repository) or served != current \
            or seal_problems(repository):  # a weights file damaged or replaced since: exported again
        stamp.unlink(missing_ok=True)  # a failed or interrupted export leaves no stamp that calls it current
        (Path(repository) / RELEASE_NAME).unlink(missing_ok=True)  # nor a name its answers would carry
        (Path(repository) / SEAL_FILE).unlink(missing_ok=True)  # nor a seal of the files it replaces
        (Path(repository) / ORIGINS_FILE).unlink(missing_ok=True)  # nor the origins of the imported models it replaces
        for line in export_release(release, repository):
            logger.info("%s", line)
        stamp.write_text(current)
    else:
        logger.info("model repository %s already serves release %s", repository, release)
    try:
        name_release(repository, manifest.get("name"), manifest.get("version"))
        if seal_problems(repository) is None:  # exported now, or before seals were written: sealed as it is
            seal(repository)
    except OSError as e:  # a read-only repository serving the release: its answers name no release, nothing worse
        logger.warning("could not record the release's name in %s (%s): its answers name it %r; make the folder "
                       "writable and run `dermassist models` again", repository, e.strerror or e,
                       served_release(repository))
    metrics = write_metrics(release, reports)
    seg, cls = metrics["segmentation"], metrics["classification"]["test"]
    logger.info("segmentation val jaccard %.3f (threshold %.2f); classification test balanced accuracy %.3f, "
                "macro F1 %.3f; metrics -> %s", seg["val"]["jaccard"], seg["threshold"], cls["balanced_accuracy"],
                cls["macro_f1"], reports / "metrics.json")
    return 0
