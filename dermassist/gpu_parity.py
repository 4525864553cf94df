"""Does the GPU profile's classifier answer as the embedded one does? (``dermassist gpu-check``)

The GPU profile serves the same exported TorchScript through Triton's native libtorch backend, which loads it
onto the GPU as it is (``torch::jit::load(path, device)``, no freezing). This check does the same in one process:
the file on CPU and on the accelerator, fed the same served crops, then compares the answers a clinician reads
(the calibrated probabilities, the top class, REFER at the tuned threshold, the OOD score and the CAM) and times
the classifier by batch size. PyTorch and libtorch let cuDNN convolutions run in TF32 unless told otherwise, so
the accelerator is measured with cuDNN's TF32 on (what the backend does by default; matrix products stay FP32) and
off.

Crops come from a ``.npz`` holding ``crops`` (N, 224, 224, 3) uint8, as the ensemble's ``CROP``, and optionally
the embedded server's answers to them (``probabilities``, ``ood_score``, ``cam``): those are compared too, and
the check fails when they are not this classifier's answers on this CPU (a crops file from another release).

With ``--url HOST:PORT --images FOLDER`` the check asks a running DermAssist (the GPU host, through its front) for
its answers and crops instead, and compares them with this machine's CPU run of the exported classifier on the same
crops: what an operator runs before a GPU host goes live, with no accelerator where the check runs. Agreement says the
served answers are this CPU classifier's; it does not say which device served them. The served classifier's platform
(``lesion_classifier``'s model metadata through the front: ``pytorch_libtorch`` in the GPU profile, ``python`` in the
embedded CPU profile) is reported beside it.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.contract import CLASS_CODES, CLASSIFIER_MODEL, CLS_SIZE, NUM_CLASSES, TRIAGE_MODEL
from preprocess.crop import normalise
from preprocess.triage import TriageParams, refer_scores

from .base.errors import ConfigError, DermAssistError
from .base.frameworks import import_torch, is_torch_device, load_torchscript, missing_gpu
from .base.repository import SOURCE_REPOSITORY, classifier_artifact, step_settings
from .base.server_config import GRPC_ADMIN_HEADER, read_secret_file
from .base.settings import Settings
from .remote import RemoteSettings

logger = logging.getLogger(__name__)

# What "answers the same" means: the page shows percentages to one decimal, so half a point; the decisions
# (top class, REFER) on every crop; the CAM overlay within two grey levels on all but 1% of its pixels.
PROBABILITY_TOLERANCE = 0.005
CAM_LEVELS = 2
CAM_SHARE_ALLOWED = 0.01
BATCH_SIZES = (1, 8, 32)
# What the served classifier's platform (its model metadata) says about the profile a DermAssist serves.
PLATFORMS = {
    "pytorch_libtorch": "the GPU profile's classifier (Triton's libtorch backend); whether its instances run on a GPU "
                        "is in its model config, behind the admin key",
    "python": "the embedded CPU profile's classifier (Python backend, on the CPU): not the GPU profile",
}


class GpuCheckError(DermAssistError):
    """The check cannot run: no accelerator, no exported classifier, or a crops file of the wrong shape."""


@dataclass(frozen=True)
class GpuCheckConfig(Settings, RemoteSettings):
    """What to check and where the report goes (``resolve``: flags > DERMASSIST_GPU_CHECK_* > defaults)."""

    env_prefix = "DERMASSIST_GPU_CHECK_"
    config_error = GpuCheckError

    crops: Path | None = None
    images: Path | None = None  # with url: a running DermAssist's answers against this machine's CPU
    repository: Path = SOURCE_REPOSITORY
    device: str = "cuda"
    repeats: int = 20
    out: Path = Path("reports/gpu_check")
    refer_threshold: float | None = None  # None: the triage step's threshold in the GPU profile (needs tritonclient)
    admin_key_file: Path | None = None  # with url: the server's admin key, to read its classifier's platform

    def __post_init__(self) -> None:
        if (self.crops is None) == (self.url is None):
            given = "both" if self.crops is not None else "neither"
            raise GpuCheckError("give --crops FILE (the classifier on CPU and on --device here) or --url HOST:PORT "
                                f"with --images FOLDER (a running DermAssist against this CPU), not {given}")
        if self.crops is not None and not Path(self.crops).is_file():
            raise GpuCheckError(f"--crops {self.crops} is not a file; expected a .npz of served crops (module docstring)")
        if self.url is not None and (self.images is None or not Path(self.images).is_dir()):
            raise GpuCheckError(f"--url needs --images, a folder of images to send; got {self.images}")
        if self.url is None and self.images is not None:
            raise GpuCheckError("--images goes with --url (a running DermAssist)")
        if self.admin_key_file is not None:
            if self.url is None:
                raise GpuCheckError("--admin-key-file goes with --url: it opens a running DermAssist's internal steps")
            self.admin_key()
        self.check_remote(GpuCheckError, "they are for a running DermAssist served over TLS")
        if not is_torch_device(self.device):
            raise GpuCheckError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise GpuCheckError(f"--out {self.out} is a file; give the folder the report goes to")
        if self.repeats < 1:
            raise GpuCheckError(f"--repeats must be at least 1, got {self.repeats}")
        if self.refer_threshold is not None and not 0.0 < self.refer_threshold < 1.0:
            raise GpuCheckError(f"--refer-threshold must lie in (0, 1), got {self.refer_threshold}")

    def admin_key(self) -> str | None:
        """The key in ``admin_key_file`` (None without one); an unreadable or empty file is a GpuCheckError."""
        if self.admin_key_file is None:
            return None
        try:
            return read_secret_file(self.admin_key_file, "admin key")
        except ConfigError as e:
            raise GpuCheckError(f"--admin-key-file: {e}") from e


def profile_threshold(repository: Path) -> float:
    """The REFER threshold the GPU profile's triage step serves (config parameter > tuned.json > default)."""
    try:
        return float(step_settings(repository, TRIAGE_MODEL, TriageParams, "gpu").refer_threshold)
    except ImportError as e:
        raise GpuCheckError(f"reading the triage step's Triton config needs tritonclient ({e}); install it, or pass "
                            f"--refer-threshold (the value in {repository}/{TRIAGE_MODEL}/1/tuned.json)") from e


@dataclass(frozen=True)
class Outputs:
    """The classifier's three outputs for a set of crops."""

    probabilities: np.ndarray  # (N, 8) float32
    ood_score: np.ndarray  # (N, 1) float32
    cam: np.ndarray  # (N, 224, 224) uint8


def load_crops(path: Path) -> tuple[np.ndarray, Outputs | None]:
    """Crops (N, 224, 224, 3) uint8 from ``path`` and, when the file holds them, the embedded server's answers."""
    try:
        loaded = np.load(path)
    except (OSError, ValueError) as e:
        raise GpuCheckError(f"crops file {path} could not be read as a .npz: {e}") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise GpuCheckError(f"crops file {path} holds one array, not named arrays; save it with "
                            "numpy.savez(path, crops=..., [probabilities=..., ood_score=..., cam=...])")
    with loaded as f:
        arrays = {k: f[k] for k in f.files}
    crops = arrays.get("crops")
    if crops is None or crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (CLS_SIZE, CLS_SIZE, 3):
        got = "no 'crops' array" if crops is None else f"{crops.dtype} {crops.shape}"
        raise GpuCheckError(f"crops file {path} must hold 'crops' as uint8 (N, {CLS_SIZE}, {CLS_SIZE}, 3), got {got}; "
                            "save the ensemble's CROP outputs with numpy.savez")
    if not len(crops):
        raise GpuCheckError(f"crops file {path} holds no crops")
    return crops, saved_answers(arrays, len(crops), path)


def saved_answers(arrays: dict[str, np.ndarray], n: int, path: Path) -> Outputs | None:
    """The embedded server's answers saved beside ``n`` crops, checked for shape; None when none were saved."""
    names = ("probabilities", "ood_score", "cam")
    present = [name for name in names if name in arrays]
    if not present:
        return None
    if len(present) < len(names):
        missing = ", ".join(name for name in names if name not in arrays)
        raise GpuCheckError(f"crops file {path} holds {', '.join(present)} but not {missing}: save all three "
                            "answers with the crops, or none")
    ood = arrays["ood_score"].reshape(-1, 1) if arrays["ood_score"].ndim == 1 else arrays["ood_score"]
    expected = {"probabilities": (n, NUM_CLASSES), "ood_score": (n, 1), "cam": (n, CLS_SIZE, CLS_SIZE)}
    for name, got in (("probabilities", arrays["probabilities"]), ("ood_score", ood), ("cam", arrays["cam"])):
        if got.shape != expected[name]:
            raise GpuCheckError(f"crops file {path}: {name} must be {expected[name]} for its {n} crops, got {got.shape}")
    return Outputs(arrays["probabilities"].astype(np.float32), ood.astype(np.float32), arrays["cam"])


def compare(reference: Outputs, got: Outputs, refer_threshold: float) -> dict:
    """How far ``got`` is from ``reference``: largest differences and the share of crops with the same decisions."""
    if reference.probabilities.shape != got.probabilities.shape:
        raise GpuCheckError(f"cannot compare {reference.probabilities.shape} probabilities with {got.probabilities.shape}")
    ref_refer = refer_scores(reference.probabilities) >= refer_threshold
    got_refer = refer_scores(got.probabilities) >= refer_threshold
    ood_scale = np.maximum(np.abs(reference.ood_score), 1.0)
    cam_diff = np.abs(reference.cam.astype(np.int16) - got.cam.astype(np.int16))
    return {
        "crops": int(len(got.probabilities)),
        "max_abs_probability": float(np.abs(reference.probabilities - got.probabilities).max()),
        "same_top_class": float(np.mean(reference.probabilities.argmax(1) == got.probabilities.argmax(1))),
        "same_refer": float(np.mean(ref_refer.ravel() == got_refer.ravel())),
        "max_rel_ood": float((np.abs(reference.ood_score - got.ood_score) / ood_scale).max()),
        "max_cam_levels": int(cam_diff.max()),
        "cam_share_over_tolerance": float(np.mean(cam_diff > CAM_LEVELS)),
    }


def agrees(figures: dict) -> bool:
    """True when the differences in ``compare``'s figures are within what this check calls the same answer."""
    return (figures["max_abs_probability"] <= PROBABILITY_TOLERANCE and figures["same_top_class"] == 1.0
            and figures["same_refer"] == 1.0 and figures["max_rel_ood"] <= PROBABILITY_TOLERANCE
            and figures["cam_share_over_tolerance"] <= CAM_SHARE_ALLOWED)


def run_classifier(model: Callable[[Any], Sequence[Any]], x: np.ndarray, device: str, batch: int = 32) -> Outputs:
    """The scripted classifier's outputs for normalised crops ``x`` (N, 3, 224, 224), run on ``device``."""
    torch = import_torch()
    parts: list[tuple[np.ndarray, ...]] = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            out = model(torch.from_numpy(np.ascontiguousarray(x[start:start + batch])).to(device))
            parts.append(tuple(t.cpu().numpy() for t in out))
    return Outputs(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


def time_batches(model: Callable[[Any], Any], x: np.ndarray, device: str, batch_sizes: Sequence[int] = BATCH_SIZES,
                 repeats: int = 20, warmup: int = 3) -> list[dict]:
    """Median milliseconds per call and images per second of the classifier at each batch size on ``device``."""
    torch = import_torch()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    with torch.inference_mode():
        for size in batch_sizes:
            take = np.resize(np.arange(len(x)), size)
            batch = torch.from_numpy(np.ascontiguousarray(x[take])).to(device)
            times = []
            for k in range(warmup + repeats):
                sync()
                t0 = time.perf_counter()
                model(batch)
                sync()
                if k >= warmup:
                    times.append(time.perf_counter() - t0)
            ms = 1000.0 * float(np.median(times))
            rows.append({"batch": int(size), "ms": ms, "images_per_s": size / (ms / 1000.0)})
    return rows


def served_answers(config: GpuCheckConfig) -> tuple[np.ndarray, Outputs]:
    """The crops and answers of the DermAssist at ``config.url`` for the images under ``config.images``."""
    from .evaluation.selection import image_files
    from .evaluation.service import analyse

    paths = image_files(Path(config.images))  # type: ignore[arg-type]  # __post_init__: images is set with url
    if not paths:
        raise GpuCheckError(f"--images {config.images} holds no image files (.jpg, .png, .bmp, .tif)")
    try:
        answers = analyse(str(config.url), paths, config.timeout_s, with_crop=True, options=config.client_options())
    except DermAssistError as e:
        raise GpuCheckError(str(e)) from e
    for path, reason in answers.refused:
        logger.warning("%s was refused by the server and is left out: %s", path, reason)
    results = answers.results
    if not results:
        raise GpuCheckError(f"the DermAssist at {config.url} answered none of the {len(paths)} images")
    if any(r.crop is None or r.cam is None or r.ood_score is None for r in results):
        raise GpuCheckError(f"the DermAssist at {config.url} sent no CROP, CAM or OOD_SCORE; it predates them")
    probabilities = np.array([[r.probabilities[code] for code in CLASS_CODES] for r in results], np.float32)
    return (np.stack([r.crop for r in results]),
            Outputs(probabilities, np.array([[r.ood_score] for r in results], np.float32),
                    np.stack([r.cam for r in results])))


def _cpu_classifier(config: GpuCheckConfig) -> tuple[Any, Path, float]:
    """The exported classifier of ``config.repository`` loaded on the CPU, its path, and the REFER threshold."""
    torch = import_torch()
    path = classifier_artifact(Path(config.repository))
    if not path.is_file():
        raise GpuCheckError(f"no exported classifier at {path}; run `dermassist models` first (with --url: the "
                            "release the GPU host serves)")
    threshold = (config.refer_threshold if config.refer_threshold is not None
                 else profile_threshold(Path(config.repository)))
    return load_torchscript(torch, path, "cpu", GpuCheckError), path, threshold


def gpu_check(config: GpuCheckConfig) -> dict:
    """Run the classifier of ``config.repository`` on CPU and on ``config.device`` and compare, or compare a running
    DermAssist's answers with it on CPU (module docstring)."""
    device, repeats = config.device, config.repeats
    if config.url is not None:
        return _served_check(config)
    torch = import_torch()
    problem = missing_gpu(torch, device)
    if problem:
        raise GpuCheckError(f"{problem}; run the check on a GPU host, or pass --device cpu to try the plumbing")
    cpu_model, path, threshold = _cpu_classifier(config)
    crops, served = load_crops(Path(config.crops))  # type: ignore[arg-type]  # __post_init__: crops or url
    x = normalise(crops)
    cpu = run_classifier(cpu_model, x, "cpu")
    model = load_torchscript(torch, path, device, GpuCheckError)
    result: dict = {"device": device, "torch": torch.__version__, "crops": int(len(crops)),
                    "refer_threshold": threshold, "settings": {}}
    if device.startswith("cuda"):
        result["device_name"] = torch.cuda.get_device_name(device)
    if served is not None:  # the file's answers are another run of this classifier: they must agree too
        result["cpu_vs_served"] = compare(served, cpu, threshold)
        result["cpu_vs_served"]["agrees"] = agrees(result["cpu_vs_served"])
    before = torch.backends.cudnn.allow_tf32
    try:
        for tf32 in (True, False) if device.startswith("cuda") else (False,):
            torch.backends.cudnn.allow_tf32 = tf32  # convolutions; matrix products stay FP32, as libtorch leaves them
            got = run_classifier(model, x, device)
            figures = compare(cpu, got, threshold)
            figures["agrees"] = agrees(figures)
            figures["timing"] = time_batches(model, x, device, repeats=repeats)
            result["settings"]["tf32" if tf32 else "fp32"] = figures
    finally:
        torch.backends.cudnn.allow_tf32 = before
    result["cpu_timing"] = time_batches(cpu_model, x, "cpu", batch_sizes=(1, 8), repeats=max(3, repeats // 4), warmup=1)
    result["agrees"] = all(s["agrees"] for s in (*result["settings"].values(), result.get("cpu_vs_served", {"agrees": True})))
    return result


def served_platform(config: GpuCheckConfig) -> dict:
    """The platform of the classifier the DermAssist at ``config.url`` serves, from its model metadata:
    ``{"platform": ...}``, or ``{"error": ...}`` when it could not be read. The guard shows an internal step's metadata
    only with the admin key, so the call carries the key of ``--admin-key-file``; without one the error says so."""
    from dermassist_client import ClientConfig, DermAssistClient, DermAssistClientError

    key = config.admin_key()
    client_config = ClientConfig(url=str(config.url), timeout_s=config.timeout_s, model_name=CLASSIFIER_MODEL,
                                 **config.client_options())
    try:
        with DermAssistClient.from_config(client_config) as client:
            metadata = client.model_metadata(headers={GRPC_ADMIN_HEADER: key} if key else None)
    except DermAssistClientError as e:
        error = str(e)
        if "PERMISSION_DENIED" in error or "admin key" in error:
            error = (f"{error}; the served steps' metadata needs the server's admin key: pass --admin-key-file "
                     "(or DERMASSIST_GPU_CHECK_ADMIN_KEY_FILE)" if key is None else f"{error}; check the admin key file")
        logger.warning("could not read the model metadata of %s at %s: %s", CLASSIFIER_MODEL, config.url, error)
        return {"error": error}
    return {"platform": str(metadata.get("platform", ""))}


def _served_check(config: GpuCheckConfig) -> dict:
    torch = import_torch()
    cpu_model, _, threshold = _cpu_classifier(config)
    crops, served = served_answers(config)
    cpu = run_classifier(cpu_model, normalise(crops), "cpu")
    figures = compare(cpu, served, threshold)
    figures["agrees"] = agrees(figures)
    return {"device": config.url, "torch": torch.__version__, "crops": int(len(crops)), "refer_threshold": threshold,
            "settings": {"served": figures}, "agrees": figures["agrees"], "served_classifier": served_platform(config)}


def platform_text(served_classifier: dict) -> str:
    """What the served classifier's model metadata says about the profile the server runs, for people to read."""
    if "error" in served_classifier:
        return f"its platform could not be read ({served_classifier['error']})"
    platform = served_classifier.get("platform") or "(none given)"
    return f"platform `{platform}`: {PLATFORMS.get(platform, 'neither profile of this project')}"


def markdown(result: dict) -> str:
    """The check's figures as a Markdown table for people to read."""
    if "served" in result["settings"]:  # --url: a running DermAssist's answers against this machine's CPU
        lines = [f"# Served answers check: {result['device']} against this machine's CPU classifier, torch {result['torch']}",
                 "", f"{result['crops']} served crops; REFER threshold {result['refer_threshold']:.3f}.", "",
                 f"`agrees` says whether the answers of the DermAssist at {result['device']} are those of the exported "
                 "classifier run on this machine's CPU, on the crops it sent back. It does not tell which device "
                 f"served them. Its {CLASSIFIER_MODEL} (model metadata): "
                 f"{platform_text(result.get('served_classifier', {'error': 'not asked'}))}.", ""]
    else:
        lines = [f"# GPU profile classifier check: {result.get('device_name', result['device'])}, torch {result['torch']}",
                 "", f"{result['crops']} served crops; REFER threshold {result['refer_threshold']:.3f}.", ""]
    lines += ["| against CPU | max abs prob. | same top class | same REFER | max rel. OOD | max CAM levels "
             f"| CAM pixels off by > {CAM_LEVELS} | agrees |",
             "|---|---|---|---|---|---|---|---|"]
    for name, f in result["settings"].items():
        lines.append(f"| {result['device']} {name} | {f['max_abs_probability']:.2e} | {f['same_top_class']:.3f} "
                     f"| {f['same_refer']:.3f} | {f['max_rel_ood']:.2e} | {f['max_cam_levels']} "
                     f"| {f['cam_share_over_tolerance']:.4f} | {'yes' if f['agrees'] else 'NO'} |")
    if "cpu_vs_served" in result:
        f = result["cpu_vs_served"]
        lines.append(f"| this CPU vs the embedded server's answers | {f['max_abs_probability']:.2e} "
                     f"| {f['same_top_class']:.3f} | {f['same_refer']:.3f} | {f['max_rel_ood']:.2e} "
                     f"| {f['max_cam_levels']} | {f['cam_share_over_tolerance']:.4f} | {'yes' if f['agrees'] else 'NO'} |")
    timed = [(f"{result['device']} {n}", s["timing"]) for n, s in result["settings"].items() if "timing" in s]
    if timed:
        lines += ["", "| where | batch | ms per call (median) | images/s |", "|---|---|---|---|"]
        for where, rows in timed + [("cpu", result["cpu_timing"])]:
            lines += [f"| {where} | {r['batch']} | {r['ms']:.2f} | {r['images_per_s']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(result: dict, out: Path) -> tuple[Path, Path]:
    """Write ``gpu_check.json`` and ``gpu_check.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "gpu_check.json", out / "gpu_check.md"
    js.write_text(json.dumps(result, indent=1))
    md.write_text(markdown(result))
    return js, md
