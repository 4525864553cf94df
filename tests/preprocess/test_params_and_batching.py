"""The adapters' shared pieces: the typed settings reader and the batching helper."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from preprocess.batching import batch_execute, expect_rows, triton_responses
from preprocess.crop import CropParams
from preprocess.errors import PreprocessError, StepSettingsError
from preprocess.params import (
    TUNED_FILENAME,
    ClassifierCpuSettings,
    classifier_cpu_settings,
    config_parameters,
    read_tuned,
    resolve_params,
    step_params,
    tuned_artifact,
)
from preprocess.triage import TriageParams


def _version(tmp_path: Path, values: dict) -> dict:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / TUNED_FILENAME).write_text(tuned_artifact(values, {"val": {"jaccard": 0.8}}, "release 1"))
    return {"model_repository": str(tmp_path / "m"), "model_version": "1", "model_name": "m"}


def test_parameter_beats_tuned_file_beats_default(tmp_path: Path) -> None:
    args = _version(tmp_path, {"threshold": 0.55, "margin": 0.2})
    assert step_params(CropParams, args, {}) == CropParams(threshold=0.55, margin=0.2)
    config = {"parameters": {"threshold": {"string_value": "0.4"}, "margin": {"string_value": ""}}}
    assert step_params(CropParams, args, config) == CropParams(threshold=0.4, margin=0.2)
    bare = {"model_repository": str(tmp_path / "none"), "model_version": "1"}
    assert step_params(CropParams, bare, {}) == CropParams()


def test_booleans_and_bad_values_are_typed(tmp_path: Path) -> None:
    params = resolve_params(TriageParams, {"refer_when_not_assessable": "false"}, {"refer_threshold": 0.3}, "triage")
    assert params.refer_when_not_assessable is False and params.refer_threshold == 0.3
    with pytest.raises(StepSettingsError, match="triage: refer_when_not_assessable must be a bool, got 'maybe'"):
        resolve_params(TriageParams, {"refer_when_not_assessable": "maybe"}, {}, "triage")
    with pytest.raises(StepSettingsError, match="threshold must be a float"):
        resolve_params(CropParams, {"threshold": "high"}, {}, "lesion_crop")


def test_a_misspelt_tuned_value_is_refused_not_served_as_the_default() -> None:
    with pytest.raises(StepSettingsError, match=r"triage: tuned value\(s\) 'refer_treshold' in tuned.json name no "
                                                 r"setting of TriageParams \(expected some of refer_threshold, "):
        resolve_params(TriageParams, {}, {"refer_treshold": 0.066, "ood_limit": 1.0}, "triage")


def test_a_broken_tuned_file_is_named(tmp_path: Path) -> None:
    (tmp_path / TUNED_FILENAME).write_text("{not json")
    with pytest.raises(StepSettingsError, match="tuned.json is not a tuned-values artifact"):
        read_tuned(str(tmp_path))
    assert config_parameters({"parameters": {"a": {"string_value": "1"}}}) == {"a": "1"}
    assert json.loads(tuned_artifact({"x": 1}, {}, "s"))["values"] == {"x": 1}


def test_batch_execute_runs_once_splits_back_and_isolates_bad_requests() -> None:
    calls = []

    def double(x):
        calls.append(len(x))
        return {"y": x * 2}

    parsed = [{"x": np.array([1, 2])}, PreprocessError("request 1 is bad"), {"x": np.array([3])}]
    results = batch_execute(parsed, double)
    assert calls == [3]  # one call over the good rows of every request
    assert results[0]["y"].tolist() == [2, 4] and results[2]["y"].tolist() == [6]
    assert isinstance(results[1], PreprocessError)


def test_batch_execute_lists_rows_finish_and_refusals() -> None:
    def lengths(items):
        return {"n": np.array([len(i) for i in items])}

    def finish(rows):
        if (rows["n"] == 0).any():
            raise PreprocessError("an empty item")
        return {"total": rows["n"].sum(keepdims=True)}

    results = batch_execute([{"items": ["ab", "c"]}, {"items": ["", "d"]}], lengths, finish)
    assert results[0]["total"].tolist() == [3] and str(results[1]) == "an empty item"
    mismatch = batch_execute([{"a": np.zeros(2), "b": np.zeros(3)}], lengths)
    assert "batch sizes differ" in str(mismatch[0])

    def refuse(x):
        raise PreprocessError("NaN in x")

    assert all(str(r) == "NaN in x" for r in batch_execute([{"x": np.zeros(1)}, {"x": np.zeros(2)}], refuse))


def test_a_request_the_batch_function_refuses_fails_alone_with_its_own_values() -> None:
    """Dynamic batching merges requests of several callers: one bad row must not refuse, or show, the others."""
    calls = []

    def positive(x):
        calls.append(x.tolist())
        if (x <= 0).any():
            raise PreprocessError(f"x must be positive, got {x.tolist()}")
        return {"y": x * 2}

    results = batch_execute([{"x": np.array([1.0])}, {"x": np.array([0.0, 5.0])}, {"x": np.array([3.0])}], positive)
    assert results[0]["y"].tolist() == [2.0] and results[2]["y"].tolist() == [6.0]
    assert isinstance(results[1], PreprocessError) and str(results[1]) == "x must be positive, got [0.0, 5.0]"
    assert calls == [[1.0, 0.0, 5.0, 3.0], [1.0], [0.0, 5.0], [3.0]]


def test_triton_responses_answer_errors_as_invalid_argument() -> None:
    made = []
    fake = SimpleNamespace(
        TritonError=lambda message, code: ("error", message, code),
        InferenceResponse=lambda tensors=None, error=None: made.append((tensors, error)) or len(made),
        Tensor=lambda name, array: (name, array.flags["C_CONTIGUOUS"]),
    )
    fake.TritonError.INVALID_ARG = "INVALID_ARG"
    triton_responses([{"Y": np.zeros((2, 3)).T}, PreprocessError("bad row")], fake, "step")
    assert made[0] == ([("Y", True)], None)
    assert made[1] == (None, ("error", "step: bad row", "INVALID_ARG"))


def test_expect_rows_checks_dims_after_the_batch_axis() -> None:
    assert expect_rows(np.zeros((2, 3, 4)), "X", (3, -1)).shape == (2, 3, 4)
    with pytest.raises(PreprocessError, match=r"X must be \(N, 3, 5\), got \(2, 3, 4\)"):
        expect_rows(np.zeros((2, 3, 4)), "X", (3, 5))


def test_input_rows_reads_each_named_input_and_names_a_malformed_one() -> None:
    from preprocess.batching import input_rows
    from preprocess.contract import OOD_SCORE, PROBABILITIES

    tensors = {PROBABILITIES.name: np.zeros((2, 8), np.float32), OOD_SCORE.name: np.zeros((2, 1), np.float32)}
    pb_utils = SimpleNamespace(get_input_tensor_by_name=lambda request, name: SimpleNamespace(as_numpy=lambda: request[name]))
    rows = input_rows(tensors, pb_utils, {"p": PROBABILITIES, "ood": OOD_SCORE})
    assert isinstance(rows, dict) and rows["p"].shape == (2, 8) and rows["ood"].shape == (2, 1)
    bad = input_rows({**tensors, OOD_SCORE.name: np.zeros((2, 3), np.float32)}, pb_utils, {"p": PROBABILITIES, "ood": OOD_SCORE})
    assert isinstance(bad, PreprocessError) and "OOD_SCORE must be (N, 1), got (2, 3)" in str(bad)
    uneven = input_rows({**tensors, OOD_SCORE.name: np.zeros((3, 1), np.float32)}, pb_utils,
                        {"p": PROBABILITIES, "ood": OOD_SCORE})
    assert isinstance(uneven, PreprocessError) and str(uneven) == (  # named by tensor, not by the function's arguments
        "every input must hold one row per image, got {'PROBABILITIES': 2, 'OOD_SCORE': 3}: send the same number of "
        "rows in each")


def test_opencv_threads_come_from_the_config_parameter() -> None:
    import cv2

    from preprocess.params import set_opencv_threads

    before = cv2.getNumThreads()
    try:
        set_opencv_threads({"parameters": {"opencv_threads": {"string_value": "1"}}})
        assert cv2.getNumThreads() == 1
        set_opencv_threads({"parameters": {}})  # unset: left as it is
        assert cv2.getNumThreads() == 1
        with pytest.raises(StepSettingsError, match="config parameter: opencv_threads must be an int, got 'one'"):
            set_opencv_threads({"parameters": {"opencv_threads": {"string_value": "one"}}})
    finally:
        cv2.setNumThreads(before)


def test_thread_parameters_are_counts_named_when_wrong() -> None:
    from preprocess.params import thread_parameter

    assert thread_parameter({"intra_op_threads": "2"}, "intra_op_threads") == 2
    assert thread_parameter({}, "intra_op_threads") == 0 and thread_parameter({"x": ""}, "x") == 0
    with pytest.raises(StepSettingsError, match="intra_op_threads must be an int, got 'two'"):
        thread_parameter({"intra_op_threads": "two"}, "intra_op_threads")
    with pytest.raises(StepSettingsError, match="inter_op_threads must be a thread count >= 0"):
        thread_parameter({"inter_op_threads": "-1"}, "inter_op_threads")


def test_expect_rows_refuses_a_different_number_of_dims() -> None:
    with pytest.raises(PreprocessError, match=r"X must be \(N, 3\), got \(2, 3, 4\)"):
        expect_rows(np.zeros((2, 3, 4)), "X", (3,))  # the leading dims agree, one more follows


def test_yes_and_no_and_json_booleans_are_read_as_booleans(tmp_path: Path) -> None:
    assert resolve_params(TriageParams, {"refer_when_not_assessable": "no"}, {}, "t").refer_when_not_assessable is False
    assert resolve_params(TriageParams, {"refer_when_not_assessable": "YES"}, {}, "t").refer_when_not_assessable is True
    assert resolve_params(TriageParams, {}, {"refer_when_not_assessable": False}, "t").refer_when_not_assessable is False


def test_a_tuned_file_whose_values_are_not_an_object_is_named(tmp_path: Path) -> None:
    (tmp_path / TUNED_FILENAME).write_text('{"values": [0.3]}')
    with pytest.raises(StepSettingsError, match="'values' must be an object, got list"):
        read_tuned(str(tmp_path))


def test_bool_parameters_read_what_the_settings_read_and_refuse_the_rest() -> None:
    from preprocess.params import bool_parameter

    for raw, expected in (("true", True), ("TRUE", True), ("yes", True), ("1", True), ("false", False),
                          ("No", False), ("0", False)):
        assert bool_parameter({"optimize_for_cpu": raw}, "optimize_for_cpu", not expected) is expected
    assert bool_parameter({}, "optimize_for_cpu", True) is True and bool_parameter({"x": ""}, "x", False) is False
    with pytest.raises(StepSettingsError, match=r"config parameter: optimize_for_cpu must be a bool, got 'ture'; "
                                                 r"use one of 1, true, yes, 0, false, no \(any case\)"):
        bool_parameter({"optimize_for_cpu": "ture"}, "optimize_for_cpu", False)


def test_choice_parameters_are_one_of_the_values_allowed_in_any_case() -> None:
    from preprocess.params import choice_parameter

    allowed = ("ACTIVE", "PASSIVE")
    assert choice_parameter({"omp_wait_policy": "passive"}, "omp_wait_policy", allowed) == "PASSIVE"
    assert choice_parameter({"omp_wait_policy": "ACTIVE"}, "omp_wait_policy", allowed) == "ACTIVE"
    assert choice_parameter({}, "omp_wait_policy", allowed) == ""
    with pytest.raises(StepSettingsError, match=r"omp_wait_policy must be one of ACTIVE, PASSIVE \(any case\), "
                                                 r"got 'spin'; fix the parameter"):
        choice_parameter({"omp_wait_policy": "spin"}, "omp_wait_policy", allowed)


def test_a_choice_parameter_written_with_spaces_around_it_is_read() -> None:
    from preprocess.params import choice_parameter

    assert choice_parameter({"omp_wait_policy": " passive "}, "omp_wait_policy", ("ACTIVE", "PASSIVE")) == "PASSIVE"
    assert choice_parameter({"omp_wait_policy": "\tActive\n"}, "omp_wait_policy", ("ACTIVE", "PASSIVE")) == "ACTIVE"


@pytest.mark.parametrize("text", ['{"value": {"threshold": 0.4}}', '{"figures": {}}', "[0.4]"])
def test_a_tuned_file_without_its_values_key_is_named_with_the_key_and_the_fix(tmp_path: Path, text: str) -> None:
    """The step's initialize reads it: the model's load failure must say which file and what to do."""
    args = {"model_repository": str(tmp_path / "m"), "model_version": "1", "model_name": "m"}
    path = tmp_path / "m" / "1" / TUNED_FILENAME
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(StepSettingsError) as caught:
        step_params(CropParams, args, {})
    message = str(caught.value)
    assert message.startswith(f"{path} is not a tuned-values artifact") and "no 'values' key" in message
    assert message.endswith("fix the file, or export the version again (`dermassist models`)")


def test_an_out_of_range_value_names_the_step_where_it_came_from_and_the_fix(tmp_path: Path) -> None:
    """Audit finding 9: "refer_threshold must lie in (0, 1), got 1.5" named no step, no file and no fix."""
    with pytest.raises(StepSettingsError) as caught:
        resolve_params(TriageParams, {}, {"refer_threshold": 1.5, "ood_limit": 1.0}, "triage")
    assert str(caught.value) == ("triage: refer_threshold must lie in (0, 1), got 1.5 (refer_threshold from tuned.json); "
                                 "fix the value where it is set (a config parameter overrides the tuned file), or "
                                 "export the version again (`dermassist models`)")
    with pytest.raises(StepSettingsError, match=r"^lesion_crop: crop margin must lie in \[0, 1\] .*, got 2\.0 \(margin "
                                                 r"from the model config's parameters\); fix the value"):
        resolve_params(CropParams, {"margin": "2"}, {"threshold": 0.5}, "lesion_crop")
    args = _version(tmp_path, {"threshold": 1.0})
    with pytest.raises(StepSettingsError, match=rf"^m: crop threshold must lie in \(0, 1\), got 1\.0 \(threshold from "
                                                 rf"{tmp_path / 'm' / '1' / TUNED_FILENAME}\)"):
        step_params(CropParams, args, {})


def test_the_classifiers_cpu_settings_are_read_by_their_field_names_with_one_default_each() -> None:
    """Audit finding 5: the adapter and the reference pipeline each wrote the name and default of optimize_for_cpu."""
    assert classifier_cpu_settings({}) == ClassifierCpuSettings() == ClassifierCpuSettings(False, "", 0)
    assert classifier_cpu_settings({"optimize_for_cpu": "", "omp_wait_policy": "", "intra_op_threads": ""}) == \
        ClassifierCpuSettings()
    given = {"optimize_for_cpu": "Yes", "omp_wait_policy": "passive", "intra_op_threads": "3"}
    assert classifier_cpu_settings(given) == ClassifierCpuSettings(True, "PASSIVE", 3)
    assert set(given) == {f.name for f in dataclasses.fields(ClassifierCpuSettings)}
    with pytest.raises(StepSettingsError, match="intra_op_threads must be a thread count >= 0"):
        classifier_cpu_settings({"intra_op_threads": "-1"})
    with pytest.raises(StepSettingsError, match="omp_wait_policy must be one of ACTIVE, PASSIVE"):
        ClassifierCpuSettings(omp_wait_policy="spin")
