"""The settings of a run: refused before anything is read, sent or cleared."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.evaluation import EvaluationConfig, EvaluationError


def test_config_refuses_missing_folders_and_names_the_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EvaluationError, match="is not a folder"):
        EvaluationConfig(data=tmp_path / "nope")
    (tmp_path / "split.json").write_text("{}")
    assert EvaluationConfig(data=tmp_path, split_manifest=tmp_path / "split.json").name == f"{tmp_path.name}_test"
    monkeypatch.chdir(tmp_path)
    assert EvaluationConfig(data=Path(".")).name == tmp_path.name  # `--data .` names the report after the folder


def test_config_takes_tls_options_only_for_a_running_service(tmp_path: Path) -> None:
    import trustme

    pem = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(pem))
    with pytest.raises(EvaluationError, match="need --url"):
        EvaluationConfig(data=tmp_path, ssl=True)
    with pytest.raises(EvaluationError, match="root_certificates was given but ssl is off"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", root_certificates=pem)
    with pytest.raises(EvaluationError, match="file .*missing.pem does not exist"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", ssl=True, root_certificates=tmp_path / "missing.pem")
    with pytest.raises(EvaluationError, match="private_key and certificate_chain go together"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", ssl=True, private_key=pem)
    config = EvaluationConfig.resolve({"data": tmp_path, "url": "10.0.0.5:8001"},
                                      {"DERMASSIST_EVALUATE_SSL": "true", "DERMASSIST_EVALUATE_ROOT_CERTIFICATES": str(pem)})
    assert config.client_options() == {"ssl": True, "root_certificates": pem, "private_key": None,
                                       "certificate_chain": None}
    assert EvaluationConfig(data=tmp_path).client_options()["ssl"] is False


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ".", "a\\b"])
def test_a_report_name_that_is_not_a_plain_folder_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(EvaluationError, match="is not a plain folder name"):
        EvaluationConfig(data=tmp_path, name=name)
    assert EvaluationConfig(data=tmp_path, name="site_a.v2").name == "site_a.v2"


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused_naming_the_flag(tmp_path: Path,
                                                                                     timeout: float) -> None:
    """It was refused only when the first call was made, after the model had loaded, as the server's failure."""
    from dermassist.cli import build_parser
    from dermassist.gpu_parity import GpuCheckConfig, GpuCheckError

    with pytest.raises(EvaluationError, match=r"^--timeout / DERMASSIST_EVALUATE_TIMEOUT_S must be a positive number"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", timeout_s=timeout)
    with pytest.raises(GpuCheckError, match=r"^--timeout / DERMASSIST_GPU_CHECK_TIMEOUT_S must be a positive number"):
        GpuCheckConfig(url="10.0.0.5:8001", images=tmp_path, timeout_s=timeout)
    args = build_parser(["evaluate"]).parse_args(["evaluate", "--data", str(tmp_path), "--timeout", "7.5"])
    assert EvaluationConfig.resolve(vars(args), environ={}).timeout_s == 7.5
