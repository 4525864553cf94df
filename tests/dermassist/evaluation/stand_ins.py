"""Stand-ins the evaluation tests share: answers and samples made by hand, sites in the HAM10000 layout,
and the service stood in for."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from preprocess.contract import CLASS_CODES

MEL, NV, BCC = 3, 4, 1


def hand_answer(code: str, refer: bool | None, score: float | None, assessable: bool | None = True,
            note: str = "") -> SimpleNamespace:
    probs = {c: 0.0 for c in CLASS_CODES}
    probs[code] = 0.7
    probs["NV" if code != "NV" else "BKL"] = 0.3
    return SimpleNamespace(top_class=SimpleNamespace(code=code), probabilities=probs, refer=refer, refer_score=score,
                           assessable=assessable, ood_score=0.5, lesion_fraction=0.25,
                           bbox=SimpleNamespace(x_min=1, y_min=2, x_max=30, y_max=40), note=note)


def hand_sample(image_id: str, code: str | None) -> SimpleNamespace:
    return SimpleNamespace(image_id=image_id, code=code, image_path=Path(f"/data/{image_id}.jpg"))


def turned_jpeg(path: Path, stored: tuple[int, int], orientation: int) -> Path:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", stored, (128, 100, 90)).save(path, exif=exif)
    return path


def ham_site(root: Path, dx: dict[str, str], extra_files: Sequence[str] = (), listed: dict[str, str] | None = None,
              raw: dict[str, bytes] | None = None) -> Path:
    """A HAM10000-layout site: a JPEG and a metadata row per ``dx`` entry, ``extra_files`` (images no row names),
    ``listed`` rows whose file is not written as a JPEG, and ``raw`` files (relative path -> bytes) as they are."""
    images = root / "HAM10000_images_part_1"
    images.mkdir(parents=True)
    for k, name in enumerate([f"{i}.jpg" for i in dx] + list(extra_files)):  # each its own picture
        cv2.imwrite(str(images / name), np.full((45, 60, 3), 60 + k % 150, np.uint8))
    for name, data in (raw or {}).items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(data)
    rows = {**dx, **(listed or {})}
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n"
                                                + "".join(f"L{i},{i},{d}\n" for i, d in rows.items()))
    return root


def stand_in(monkeypatch: pytest.MonkeyPatch, tops: dict[str, str], stop_after: int | None = None,
              stop: BaseException | None = None) -> None:
    """The service stood in for: each image answered with its ``tops`` class (NV when not named), REFER for MEL;
    with ``stop_after``, ``stop`` is raised once that many images of the evaluated set have been answered."""
    import contextlib
    import dataclasses

    from dermassist.evaluation import run as evaluation
    from tests.support.dicom_checks import synthetic_result

    def answered(url, paths, timeout_s, with_crop=False, options=None, answers=None):
        answers = evaluation.Answers() if answers is None else answers
        for path in paths:
            if stop_after is not None and len(answers.paths) == stop_after and stop is not None:
                raise stop
            top = tops.get(Path(path).stem, "NV")
            answers.paths.append(path)
            answers.results.append(dataclasses.replace(synthetic_result((60, 45), top=top, assessable=True),
                                                       refer=top == "MEL", refer_score=0.9 if top == "MEL" else 0.01))
        return answers

    monkeypatch.setattr(evaluation, "service", lambda config: contextlib.nullcontext("stand-in:1"))
    monkeypatch.setattr(evaluation, "analyse", answered)


def read_table(path: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return {r["image"]: r for r in csv.DictReader(f)}


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 "
