"""The crop values a release's export serves: read from release.json with every key checked, before TensorFlow loads."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from training.release import CLASSIFIER_WEIGHTS, MANIFEST, RELEASE_DIR, SEGMENTER_WEIGHTS, ReleaseError, read_release


def test_the_shipped_releases_crop_values_are_its_segmenters() -> None:
    from training.export.release import crop_values

    release = read_release(RELEASE_DIR)
    params = crop_values(RELEASE_DIR, release)
    assert (params.threshold, params.margin) == (release["segmenter"]["threshold"], release["segmenter"]["margin"])


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("margin"), r"segmenter in .*release.json lacks margin \(expected the tuned threshold and margin.*\): "
                                r"restore release.json from git or rebuild the release"),
    (lambda s: s.pop("threshold"), r"segmenter in .*release.json lacks threshold "),
    (lambda s: s.update(threshold="0.5"), r"segmenter.threshold in release.json must be a finite number, got '0.5': restore"),
    (lambda s: s.update(margin=None), r"segmenter.margin in release.json must be a finite number, got None"),
    (lambda s: s.update(threshold=1.5), r"segmenter in release.json: crop threshold must lie in \(0, 1\), got 1.5; restore"),
], ids=["no margin", "no threshold", "threshold a string", "margin null", "threshold out of range"])
def test_a_missing_or_mistyped_crop_value_is_a_release_error_naming_the_key(edit, message: str) -> None:
    """A release.json without its margin failed with a bare KeyError: 'margin'."""
    from training.export.release import crop_values

    release = copy.deepcopy(read_release(RELEASE_DIR))
    edit(release["segmenter"])
    with pytest.raises(ReleaseError, match=message):
        crop_values(RELEASE_DIR, release)


def test_the_segmenter_export_refuses_such_a_release_before_loading_anything(tmp_path: Path) -> None:
    from training.export.release import export_segmenter_release

    release = copy.deepcopy(read_release(RELEASE_DIR))
    del release["segmenter"]["margin"]
    (tmp_path / MANIFEST).write_text(json.dumps(release))
    for name in (SEGMENTER_WEIGHTS, CLASSIFIER_WEIGHTS):  # never read: the values are checked first
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ReleaseError, match=rf"segmenter in {tmp_path / MANIFEST} lacks margin"):
        export_segmenter_release(tmp_path, tmp_path / "repository")
    assert not (tmp_path / "repository").exists()


def test_the_crop_colour_balance_is_the_one_the_classifier_records() -> None:
    from training.export.release import crop_values

    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["classifier"]["colour_constancy"] = 6
    params = crop_values(RELEASE_DIR, release)
    assert params.colour_constancy == 6.0 and isinstance(params.colour_constancy, float)
    assert (params.threshold, params.margin) == (release["segmenter"]["threshold"], release["segmenter"]["margin"])
