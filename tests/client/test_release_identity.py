"""The release and build `dermassist serve` names with every answer reach the SDK's result, its JSON, the CLI line,
the FHIR Device and the DICOM SEG's Software Versions (each said version "1", every export's)."""
from __future__ import annotations

from dataclasses import replace

from tritonclient.grpc import service_pb2

from dermassist_client.batching import results_of
from dermassist_client.classes import BUILD_PARAMETER, RELEASE_PARAMETER
from dermassist_client.cli import summary_line
from dermassist_client.fhir import build_bundle, resources_by_type
from dermassist_client.images import EncodedImage
from dermassist_client.software import CLIENT_DISTRIBUTION, LO_CHARS, software_versions
from dermassist_client.transport import RawAnswer, grpc_identity, http_identity
from preprocess import contract
from tests.support.dicom_checks import synthetic_result

from .test_fhir import CONTEXT, parsed
from .test_units import _outputs

RELEASE, BUILD = "dermassist-real-2026.12 version 1", "sha256:0123456789abcdef"


def test_the_parameter_names_are_the_servers() -> None:
    assert (RELEASE_PARAMETER, BUILD_PARAMETER) == (contract.RELEASE_PARAMETER, contract.BUILD_PARAMETER)


def test_the_identity_is_read_from_grpc_and_http_answers_and_none_where_not_sent() -> None:
    answer = service_pb2.ModelInferResponse()
    assert grpc_identity(answer) == {"release": None, "build": None}  # a bare tritonserver
    answer.parameters[RELEASE_PARAMETER].string_param = RELEASE
    answer.parameters[BUILD_PARAMETER].string_param = BUILD
    assert grpc_identity(answer) == {"release": RELEASE, "build": BUILD}
    assert http_identity({"model_name": "dermassist"}) == {"release": None, "build": None}
    assert http_identity({"parameters": {RELEASE_PARAMETER: RELEASE, BUILD_PARAMETER: BUILD}}) == {
        "release": RELEASE, "build": BUILD}


def test_every_result_of_an_answer_carries_it_into_its_json_and_the_cli_line() -> None:
    images = [EncodedImage(b"x", (600, 450), "JPEG"), EncodedImage(b"y", (600, 450), "JPEG")]
    results = results_of(RawAnswer(_outputs(2), "dermassist", "1", "req-1", release=RELEASE, build=BUILD), images)
    assert [(r.model_release, r.model_build) for r in results] == [(RELEASE, BUILD)] * 2
    record = results[0].to_dict()
    assert (record["model_release"], record["model_build"]) == (RELEASE, BUILD)
    assert summary_line("a.jpg", record).endswith(f"model dermassist v1 ({RELEASE}, build {BUILD})")
    bare = results_of(RawAnswer(_outputs(1), "dermassist", "1"), images[:1])[0].to_dict()
    assert bare["model_release"] is None and summary_line("a.jpg", bare).endswith("model dermassist v1")


def test_the_seg_software_versions_name_the_release_and_build_within_a_long_strings_limit() -> None:
    result = replace(synthetic_result((600, 450)), model_release=RELEASE, model_build=BUILD)
    named = software_versions(result)
    assert named[:3] == ("dermassist 3", RELEASE, f"build {BUILD}") and named[3].startswith(CLIENT_DISTRIBUTION)
    long = replace(result, model_release="dermassist-real-2026.12-retrained-isic2019-ham10000-extended version 12")
    assert all(len(value) <= LO_CHARS for value in software_versions(long))
    assert software_versions(long)[1].startswith("dermassist-real-2026.12-r") and software_versions(long)[1].endswith(
        "version 12") and "..." in software_versions(long)[1]  # shortened in the middle: its version stays
    windows = replace(result, model_release="imported: classifier stage C:\\runs\\rc9\tmodel")
    assert software_versions(windows)[1] == "imported: classifier stage C:/runs/rc9 model"  # no LO value separator
    assert software_versions(synthetic_result((600, 450)))[0] == "dermassist 3" and len(
        software_versions(synthetic_result((600, 450)))) == 2  # a server that named none


def test_the_fhir_device_names_them_and_two_builds_are_two_devices() -> None:
    a = replace(synthetic_result((600, 450), assessable=True), model_release=RELEASE, model_build=BUILD)
    b = replace(a, model_build="sha256:fedcba9876543210")
    devices = resources_by_type(parsed(build_bundle([(a, CONTEXT), (b, CONTEXT)])))["Device"]
    assert len(devices) == 2
    versions = {v["type"]["text"]: v["value"] for v in devices[0]["version"]}
    assert versions["model version"] == "3" and versions["model release"] == RELEASE
    assert {d["version"][2]["value"] for d in devices} == {BUILD, "sha256:fedcba9876543210"}


def test_the_json_lines_documented_keys_are_the_keys_it_has() -> None:
    """The --json line had no documented key list: docs/sdk.md's table must name every key a result line holds."""
    import re
    from pathlib import Path

    from dermassist_client.cli import NOT_TRIED

    docs = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    section = docs.split("## The `--json` line of `dermassist-client analyze`", 1)[1].split("\n## ", 1)[0]
    documented = {key for row in re.findall(r"^\| (`[^|]+`) \|", section, re.M) for key in re.findall(r"`(\w+)`", row)}
    line = {"image", "dicom_outputs", *synthetic_result((600, 450)).to_dict()}
    assert documented == line
    assert f"`{NOT_TRIED}`" in section
