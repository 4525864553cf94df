"""The reference pipeline reads the classifier's ``optimize_for_cpu`` switch as the embedded adapter does."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.base.repository import stage_repository
from dermassist.reference import ReferencePipelineError, classifier_settings
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
    assert classifier_settings(_with_switch(tmp_path, value)).optimize_for_cpu is expected


def test_a_misspelt_switch_is_refused_naming_the_config(tmp_path: Path) -> None:
    """Before, "ture" ran the reference unoptimised in silence (and "yes" too, which the adapter's settings accept)."""
    repository = _with_switch(tmp_path, "ture")
    with pytest.raises(ReferencePipelineError, match=r"lesion_classifier/configs/embedded\.pbtxt: config parameter: "
                                                     r"optimize_for_cpu must be a bool, got 'ture'; use one of"):
        classifier_settings(repository)


def test_the_reference_reads_every_cpu_setting_as_the_adapter_does(tmp_path: Path) -> None:
    """Audit finding 5: the reference read optimize_for_cpu alone, under its own name and default, so a config the
    adapter refuses (Triton would not load it) still ran here."""
    repository = stage_repository(tmp_path / "repository")
    config = repository / CLASSIFIER_MODEL / "configs" / "embedded.pbtxt"
    config.write_text(config.read_text() + 'parameters: { key: "omp_wait_policy" value: { string_value: "spin" } }\n')
    with pytest.raises(ReferencePipelineError, match=r"embedded\.pbtxt: config parameter: omp_wait_policy must be one "
                                                     r"of ACTIVE, PASSIVE"):
        classifier_settings(repository)


def test_a_savedmodel_tensorflow_cannot_load_is_a_reference_error_naming_it(tmp_path: Path) -> None:
    """Audit finding 8: the reference promised a ReferencePipelineError when it cannot load its artifacts, and let
    TensorFlow's raw OSError out instead."""
    from dermassist.base.repository import classifier_artifact, labels_file, segmenter_artifact
    from dermassist.reference import ReferencePipeline

    repository = stage_repository(tmp_path / "repository")
    segmenter = segmenter_artifact(repository)
    segmenter.mkdir(parents=True)
    (segmenter / "saved_model.pb").write_bytes(b"not a protobuf")
    classifier_artifact(repository).write_bytes(b"not a zip archive")
    labels_file(repository).write_text("AK\n")
    with pytest.raises(ReferencePipelineError, match=rf"^{segmenter}: expected a TensorFlow SavedModel .*got a folder "
                                                     r"holding saved_model\.pb .*run `dermassist models` to export it "
                                                     r"again$") as caught:
        ReferencePipeline(repository)
    assert isinstance(caught.value.__cause__, OSError)


def _child(code: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


_WAIT = ("import os, sys; from dermassist.reference import wait_as_served; {first}"
         "print(repr(wait_as_served('PASSIVE')), repr(os.environ.get('OMP_WAIT_POLICY')))")


def test_the_reference_waits_as_the_served_classifier_where_it_still_can() -> None:
    """The bench's in-process baseline spun where the served step waits passively: up to 3x slower with its cores
    shared (performance audit B1). OpenMP reads the policy once, when torch loads it."""
    assert _child(_WAIT.format(first="")) == "'PASSIVE' 'PASSIVE'"
    assert _child(_WAIT.format(first=""), OMP_WAIT_POLICY="ACTIVE") == "'ACTIVE' 'ACTIVE'"  # the operator's own wins
    assert _child(_WAIT.format(first="import torch; ")) == "'' None"  # too late: said, not pretended


def test_the_reference_reads_the_served_classifiers_threads_and_wait_policy(tmp_path: Path) -> None:
    import re

    from dermassist.reference import classifier_settings

    repository = stage_repository(tmp_path / "repository")
    text = (repository / CLASSIFIER_MODEL / "configs" / "embedded.pbtxt").read_text()
    given = dict(re.findall(r'key: "(\w+)" value: \{ string_value: "([^"]*)" \}', text))
    settings = classifier_settings(repository)
    assert settings.intra_op_threads == int(given["intra_op_threads"]) > 0
    assert settings.omp_wait_policy == given["omp_wait_policy"].upper() != ""
