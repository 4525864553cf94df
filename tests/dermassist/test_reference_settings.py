"""The reference pipeline reads the classifier's ``optimize_for_cpu`` switch as the embedded adapter does."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.base.repository import stage_repository
from dermassist.reference import ReferencePipelineError, classifier_optimized_for_cpu
from preprocess.contract import CLASSIFIER_MODEL


def _with_switch(tmp_path: Path, value: str) -> Path:
    repository = stage_repository(tmp_path / "repository")
    config = repository / CLASSIFIER_MODEL / "configs" / "embedded.pbtxt"
    text = config.read_text()
    assert 'key: "optimize_for_cpu" value: { string_value: "true" }' in text
    config.write_text(text.replace('key: "optimize_for_cpu" value: { string_value: "true" }',
                                   f'key: "optimize_for_cpu" value: {{ string_value: "{value}" }}'))
    return repository


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("Yes", True), ("1", True), ("false", False),
                                                  ("", False)])
def test_the_switch_is_read_as_a_bool(tmp_path: Path, value: str, expected: bool) -> None:
    assert classifier_optimized_for_cpu(_with_switch(tmp_path, value)) is expected


def test_a_misspelt_switch_is_refused_naming_the_config(tmp_path: Path) -> None:
    """Before, "ture" ran the reference unoptimised in silence (and "yes" too, which the adapter's settings accept)."""
    repository = _with_switch(tmp_path, "ture")
    with pytest.raises(ReferencePipelineError, match=r"lesion_classifier/configs/embedded\.pbtxt: config parameter: "
                                                     r"optimize_for_cpu must be a bool, got 'ture'; use one of"):
        classifier_optimized_for_cpu(repository)
