"""The report folder is checked before the bench measures (it was found unusable only after minutes of it)."""
from __future__ import annotations

from pathlib import Path

import pytest

import dermassist.bench.runner as runner
from dermassist.bench.config import BenchConfig
from dermassist.bench.errors import BenchConfigError
from dermassist.bench.runner import prepare_report_dir, run_bench


def test_a_report_dir_under_a_file_or_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    a_file = tmp_path / "FILE"
    a_file.write_text("x")
    with pytest.raises(BenchConfigError, match=rf"report_dir {a_file}/rep cannot be made: {a_file} is a file, not a "
                                               r"folder; .*--report-dir / DERMASSIST_BENCH_REPORT_DIR"):
        BenchConfig(report_dir=a_file / "rep")
    with pytest.raises(BenchConfigError, match=rf"report_dir {a_file} is a file"):
        BenchConfig.resolve({}, {"DERMASSIST_BENCH_REPORT_DIR": str(a_file)})
    assert BenchConfig(report_dir=tmp_path / "new" / "rep").report_dir == tmp_path / "new" / "rep"


def test_run_bench_makes_the_report_dir_before_it_measures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "require_artifacts", lambda *a: (_ for _ in ()).throw(RuntimeError("measuring")))
    config = BenchConfig(report_dir=tmp_path / "sub" / "rep")
    with pytest.raises(RuntimeError, match="measuring"):
        run_bench(config)
    assert config.report_dir.is_dir()
    (tmp_path / "late").write_text("x")  # a file where the folder should be, made after the settings were checked
    late = BenchConfig(report_dir=tmp_path / "late2")
    object.__setattr__(late, "report_dir", tmp_path / "late" / "rep")
    with pytest.raises(BenchConfigError, match=rf"report_dir {tmp_path}/late/rep cannot be made a folder .*--report-dir"):
        run_bench(late)


def test_prepare_report_dir_keeps_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "latest.md").write_text("kept")
    prepare_report_dir(tmp_path)
    assert (tmp_path / "latest.md").read_text() == "kept"
