"""The calls a run makes to DermAssist: an embedded server or the one at --url (checked to be ready first), what it
serves, the images sent in batches through the client SDK, and degraded copies for the quality check."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .config import Answers, EvaluationConfig, EvaluationError, shown_path

logger = logging.getLogger(__name__)

BATCH = 8
#: Seconds the check that a DermAssist at --url answers may take (its retries included), before anything is cleared.
READY_TIMEOUT_S = 30.0


@contextmanager
def service(config: EvaluationConfig) -> Iterator[str]:
    """The gRPC address to evaluate: ``--url``, checked to answer and be ready (``check_ready``), or an embedded server
    started on the repository for the run (ready when it is yielded)."""
    if config.url:
        check_ready(config.url, config)
        yield config.url
        return
    from ..base.repository import SOURCE_REPOSITORY, require_artifacts
    from ..base.server import embedded_server

    repository = config.repository or SOURCE_REPOSITORY
    require_artifacts(repository, EvaluationError)
    with embedded_server(repository) as server:
        yield server.config.grpc_address


def check_ready(url: str, config: EvaluationConfig) -> None:
    """Raise EvaluationError unless the DermAssist at ``url`` answers and says it is ready; no image is sent. A run
    checks this before it clears an earlier report, so a wrong address or a server that is down leaves that report."""
    from dermassist_client import DermAssistClient, DermAssistClientError

    timeout = min(config.timeout_s, READY_TIMEOUT_S)
    try:
        with DermAssistClient(url, timeout=timeout, **config.client_options()) as client:
            ready = client.ready()
    except DermAssistClientError as e:
        raise EvaluationError(f"the DermAssist at {url} did not answer the evaluation: {e}; expected a running DermAssist "
                              f"answering gRPC at --url {url}: start it (`dermassist serve`) or pass its gRPC HOST:PORT. No "
                              "image was sent, and no earlier report was removed") from e
    if not ready:
        raise EvaluationError(f"the DermAssist at {url} did not answer the evaluation: it answers but says it is not ready "
                              "(its models are still loading, or one failed to load); expected a ready DermAssist: wait "
                              "until `dermassist serve` logs that it is ready, or read its log. No image was sent, and no "
                              "earlier report was removed")


def served_settings(config: EvaluationConfig) -> dict:
    """What a report says of the server its answers came from: the --url, or "embedded, repository <path>" with the
    repository's release stamp and its triage settings (the REFER threshold, and whether an image not assessable is
    referred); with --url those live where that server runs and are None (unknown here), unless --repository names
    the repository that server serves (as ``dermassist release`` does for the server it starts)."""
    if config.url and config.repository is None:
        return {"server": config.url, "embedded": False, "repository": None, "release": None, "refer_threshold": None,
                "refer_when_not_assessable": None}
    from preprocess.contract import TRIAGE_MODEL
    from preprocess.triage import TriageParams
    from training.export.steps import served_temperature, served_untrained_classes

    from ..base.repository import (
        IMPORTED,
        RELEASE_NAME,
        RELEASE_STAMP,
        SOURCE_REPOSITORY,
        release_models,
        served_build,
        served_release,
        step_settings,
    )

    repository = Path(config.repository or SOURCE_REPOSITORY)
    triage = step_settings(repository, TRIAGE_MODEL, TriageParams)
    stamp = repository / RELEASE_STAMP
    release = stamp.read_text().strip() if stamp.is_file() else None
    if release and not release.startswith(IMPORTED) and (repository / RELEASE_NAME).is_file():
        release = served_release(repository)  # the release's NAME version V, as the served answers name it
    return {"server": config.url or f"embedded, repository {shown_path(repository)}", "embedded": not config.url,
            "repository": shown_path(repository),
            "release": release.removeprefix(IMPORTED).strip() if release else None,
            "release_imported": bool(release and release.startswith(IMPORTED)),
            "refer_threshold": triage.refer_threshold, "refer_when_not_assessable": triage.refer_when_not_assessable,
            "build": served_build(repository), "not_learnt": served_untrained_classes(repository),
            "temperature": served_temperature(repository), "release_models": list(release_models(repository))}


#: A REFER_SCORE this close to the threshold may fall on either side of it in the server's float32 arithmetic.
THRESHOLD_TOLERANCE = 1e-6


def stated_settings_problem(run: dict, results: Sequence) -> str | None:
    """Why the triage settings ``run`` states (read from a repository on this machine) are not the ones that answered
    ``results``: the repository's build is not the build the answers name, or an answer's REFER disagrees with its
    threshold and rule; None when nothing shows it (a server that names no build is checked by its answers alone)."""
    threshold = run.get("refer_threshold")
    if threshold is None:
        return None
    builds = sorted({r.model_build for r in results if getattr(r, "model_build", None)})
    if run.get("build") and builds and run["build"] not in builds:
        return (f"repository `{run['repository']}` is build `{run['build']}`, but the answers came from "
                f"{', '.join(f'`{b}`' for b in builds)}: it is not what the server serves")
    refer_not_assessable = bool(run.get("refer_when_not_assessable"))
    off = [r for r in results if r.refer is not None and r.refer_score is not None
           and abs(r.refer_score - threshold) > THRESHOLD_TOLERANCE
           and bool(r.refer) != (r.refer_score >= threshold or (refer_not_assessable and r.assessable is False))]
    if off:
        return (f"{len(off)} of {len(results)} answers' REFER disagree with repository `{run['repository']}`'s threshold "
                f"{threshold:.3f} (e.g. REFER {str(off[0].refer).lower()} at score {off[0].refer_score:.3f}): the server "
                "applies other triage settings")
    return None


def analyse(url: str, paths: Sequence[Path], timeout_s: float, with_crop: bool = False,
            options: dict[str, Any] | None = None, answers: Answers | None = None) -> Answers:
    """Send the images in batches; a refused batch is retried image by image so one bad file refuses only itself.
    ``options`` are further client SDK options (TLS). The answers go into ``answers`` as they come (a new Answers when
    none), so a caller keeps those received when a service that cannot be reached or fails raises EvaluationError."""
    from dermassist_client import DermAssistClientError

    answers = Answers() if answers is None else answers
    try:
        return _analyse(url, paths, timeout_s, with_crop, options or {}, answers)
    except DermAssistClientError as e:
        raise EvaluationError(f"the DermAssist at {url} did not answer the evaluation: {e}") from e


def _analyse(url: str, paths: Sequence[Path], timeout_s: float, with_crop: bool, options: dict[str, Any],
             answers: Answers) -> Answers:
    from dermassist_client import DermAssistClient, InvalidImageError, PartialBatchError

    with DermAssistClient(url, timeout=timeout_s, **options) as client:
        for start in range(0, len(paths), BATCH):
            part = list(paths[start : start + BATCH])
            try:
                outcomes: list[Any] = client.analyze_batch(part, with_crop=with_crop)
            except PartialBatchError as e:  # the refused images are named, the others answered
                outcomes = e.results
            for path, outcome in zip(part, outcomes):
                if isinstance(outcome, InvalidImageError):
                    answers.refused.append((str(path), outcome.reason))
                else:
                    answers.paths.append(path)
                    answers.results.append(outcome)
            logger.info("evaluated %d / %d images", min(start + BATCH, len(paths)), len(paths))
    return answers


DEGRADATIONS = ("blurred", "dark", "overexposed")
NOTE_WORDS = {"blurred": "blurred", "dark": "dark", "overexposed": "bright"}
BLUR_SIGMA_SHARE = 0.015  # of the long side
DARK_GAIN = 0.25
OVEREXPOSED_GAIN, OVEREXPOSED_OFFSET = 2.2, 60.0
#: How strong each degradation is, as a report and the model card state it.
DEGRADATION_HOW = {"blurred": f"Gaussian blur, sigma {BLUR_SIGMA_SHARE:.1%} of the long side",
                   "dark": f"brightness x{DARK_GAIN:g}",
                   "overexposed": f"brightness x{OVEREXPOSED_GAIN:g} + {OVEREXPOSED_OFFSET:g} grey levels"}


def degrade(rgb: np.ndarray, kind: str) -> np.ndarray:
    """A heavily blurred, dark or overexposed version of an RGB image (DEGRADATION_HOW says how much)."""
    import cv2

    if kind == "blurred":
        return cv2.GaussianBlur(rgb, (0, 0), BLUR_SIGMA_SHARE * max(rgb.shape[:2]))
    if kind == "dark":
        return (rgb.astype(np.float32) * DARK_GAIN).astype(np.uint8)
    if kind == "overexposed":
        return np.clip(rgb.astype(np.float32) * OVEREXPOSED_GAIN + OVEREXPOSED_OFFSET, 0, 255).astype(np.uint8)
    raise EvaluationError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")


def quality_check(url: str, paths: Sequence[Path], folder: Path, timeout_s: float) -> dict:
    """Degraded copies of real images through the service: the share flagged not assessable and the share
    whose note names the right problem, per kind of degradation."""
    from preprocess.decode import decode_image
    from preprocess.errors import PreprocessError

    from ..base.image_files import write_image

    folder.mkdir(parents=True, exist_ok=True)
    pictures = []
    for path in paths:  # decoded once, degraded once per kind
        try:
            pictures.append(decode_image(Path(path).read_bytes()))
        except (OSError, PreprocessError) as e:
            raise EvaluationError(f"image {path} cannot be read for the quality check ({e}); expected one of the "
                                  "images the service answered: was it changed or removed during the run?") from e
    out = {}
    for kind in DEGRADATIONS:
        copies = [write_image(folder / f"{kind}_{Path(path).stem}.jpg", degrade(rgb, kind), "degraded copy",
                              EvaluationError) for path, rgb in zip(paths, pictures)]
        results = analyse(url, copies, timeout_s).results
        out[kind] = {"images": len(results), "how": DEGRADATION_HOW[kind],
                     "not_assessable": float(np.mean([not r.assessable for r in results])) if results else None,
                     "note_names_it": float(np.mean([NOTE_WORDS[kind] in r.note for r in results])) if results else None}
    return out
