"""The load test refuses what cannot work before any server starts (exit 2), and finds images on a bare checkout."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dermassist.base.corpus import SIZES, CorpusSpec, build_corpus, bundled_samples_dir, default_source_dir, describe_corpus
from loadtest.config import RunConfig, ScenarioConfig, check_grpc_host, check_variables, known_variables
from loadtest.errors import LoadtestConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch):
    """``loadtest.run`` with a server start and a Locust run that fail the test: every refusal must come first."""
    from loadtest import run

    monkeypatch.setattr(run, "_embedded_guard", lambda *_: pytest.fail("the embedded server was started"))
    monkeypatch.setattr(run, "run_locust", lambda *_: pytest.fail("Locust was started"))
    return run


@pytest.mark.parametrize(("variable", "value"), [
    ("LOADTEST_DEADLINE_S", "inf"), ("LOADTEST_DEADLINE_S", "nan"), ("LOADTEST_SINGLE_WEIGHT", "inf"),
    ("LOADTEST_BATCH_WEIGHT", "nan"), ("LOADTEST_SPAWN_RATE", "inf"), ("LOADTEST_THINK_TIME_S", "inf"),
    ("LOADTEST_FAULT_AT_S", "nan"),
])
def test_values_that_are_not_finite_are_refused_before_any_server_starts(no_server, monkeypatch, tmp_path: Path,
                                                                          caplog, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    assert no_server.main(["--report-dir", str(tmp_path)]) == 2
    assert f"({variable}) must be a finite number, got {value}" in caplog.text


def test_a_port_outside_1_to_65535_is_refused(no_server, tmp_path: Path, caplog) -> None:
    """99999 used to be dialled (as 34463, modulo 65536)."""
    assert no_server.main(["--host", "triton:99999", "--report-dir", str(tmp_path)]) == 2
    assert "port in 1-65535, got 'triton:99999'" in caplog.text
    for bad in ("triton:0", "triton:65536", "triton:80x", "triton:"):
        with pytest.raises(LoadtestConfigError, match="1-65535"):
            check_grpc_host(bad)
    for bad in ("grpc:127.0.0.1:18521", ":8001", "::1:8001"):  # a scheme without //, no host, bare IPv6
        with pytest.raises(LoadtestConfigError, match="no scheme"):
            check_grpc_host(bad)
    for good in ("triton:1", "triton:65535", "10.0.0.7:8001", "[::1]:8001"):
        check_grpc_host(good)
    assert RunConfig(host="triton:8001").host == "triton:8001"


def test_root_certificates_without_a_host_are_refused_with_the_fix(no_server, monkeypatch, tmp_path: Path,
                                                                    caplog) -> None:
    """The embedded server serves plain gRPC: every TLS call to it failed."""
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("LOADTEST_ROOT_CERTIFICATES", str(ca))
    assert no_server.main(["--report-dir", str(tmp_path)]) == 2
    assert "LOADTEST_ROOT_CERTIFICATES is set" in caplog.text and "the embedded server serves plain gRPC" in caplog.text
    assert "unset it, or pass --host" in caplog.text


def test_a_mistyped_variable_is_refused_naming_it_and_the_known_ones(no_server, monkeypatch, tmp_path: Path,
                                                                      caplog) -> None:
    monkeypatch.setenv("LOADTEST_USER", "8")  # LOADTEST_USERS
    monkeypatch.setenv("LOADTEST_RUN_TIME", "5")  # LOADTEST_RUN_TIME_S
    assert no_server.main(["--report-dir", str(tmp_path)]) == 2
    assert "unknown load-test variable(s) LOADTEST_RUN_TIME, LOADTEST_USER" in caplog.text
    assert "LOADTEST_USERS" in caplog.text and "LOADTEST_RUN_TIME_S" in caplog.text
    check_variables({"LOADTEST_USERS": "8", "PATH": "/bin", "LOCUST_HOST": "x"})  # known ones and other prefixes pass


def test_the_locustfile_refuses_a_mistyped_variable_on_every_locust_process(tmp_path: Path) -> None:
    """A worker on another machine reads only its own environment: it must not run the default mix silently."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "client")]), "HOME": str(tmp_path),
           "LOADTEST_BATCH_SIZ": "4", "LOADTEST_IMAGE_CACHE": str(tmp_path / "images"), "LOADTEST_PER_SIZE": "1"}
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
                           "-u", "1", "-t", "1s", "--host", "127.0.0.1:1", "--exit-code-on-error", "0"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "unknown load-test variable(s) LOADTEST_BATCH_SIZ" in done.stderr


def _table_variables(section: str) -> set[str]:
    rows = [line for line in section.splitlines() if line.startswith("| `LOADTEST_")]
    return set(re.findall(r"`(LOADTEST_[A-Z_]+)`", "\n".join(rows)))


def test_readme_lists_every_load_test_variable() -> None:
    """README's table, and for the settings of the answers' check and of mutual TLS (README.md is another
    team's file this hour) the table of docs/operations.md's load-test section: every variable, none that is not."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Load-testing a GPU host", 1)[1].split("\n## ", 1)[0]
    operations = (ROOT / "docs" / "operations.md").read_text()
    load_test = operations.split("## Load test: `make loadtest`", 1)[1].split("\n## ", 1)[0]
    listed = _table_variables(section) | _table_variables(load_test)
    assert listed == set(known_variables()), (set(known_variables()) - listed, listed - set(known_variables()))
    assert "DERMASSIST_SAMPLES" in section  # compose's folder of images for its Locust containers


def test_a_checkout_without_the_shared_data_loads_the_bundled_real_images(tmp_path: Path) -> None:
    """A load machine has this checkout only: the default source falls back to the client package's HAM10000
    examples (whose licence travels with them)."""
    import cv2

    bundled = bundled_samples_dir()
    assert default_source_dir(shared=tmp_path / "no_shared_data") == bundled
    assert (bundled / "ATTRIBUTION.md").is_file() and len(list(bundled.glob("*.jpg"))) >= 4
    files = build_corpus(CorpusSpec(source_dir=default_source_dir(shared=tmp_path / "absent"), cache_dir=tmp_path / "c",
                                    per_size=2, sizes=((600, 450), (1200, 900))))
    assert [cv2.imread(str(f)).shape[:2] for f in files] == [(450, 600)] * 2 + [(900, 1200)] * 2
    shared = tmp_path / "shared"
    shared.mkdir()
    assert default_source_dir(shared=shared) == shared  # the shared sample wins where it is


def test_an_explicit_image_folder_that_is_missing_stays_an_error(no_server, monkeypatch, tmp_path: Path, caplog) -> None:
    with pytest.raises(LoadtestConfigError, match="LOADTEST_IMAGE_SOURCE"):
        ScenarioConfig(image_source=tmp_path / "typo")
    monkeypatch.setenv("LOADTEST_IMAGE_SOURCE", str(tmp_path / "typo"))
    assert no_server.main(["--report-dir", str(tmp_path)]) == 2
    assert f"image_source folder {tmp_path / 'typo'} does not exist" in caplog.text


def test_the_corpus_sizes_setting_resizes_or_sends_a_sites_files_as_they_are(tmp_path: Path) -> None:
    """An operator's audit, finding 12: the corpus always had the same four sizes, so a site's real mix of uploads
    (a dermatoscope's 1024x768, a phone's 4032x3024) could not be replayed."""
    import cv2
    import numpy as np

    source = tmp_path / "site"
    source.mkdir()
    cv2.imwrite(str(source / "a.jpg"), np.full((300, 400, 3), 120, np.uint8))
    cv2.imwrite(str(source / "b.png"), np.full((100, 50, 3), 60, np.uint8))
    (source / "notes.txt").write_text("not an image")
    base = {"LOADTEST_IMAGE_SOURCE": str(source), "LOADTEST_IMAGE_CACHE": str(tmp_path / "cache")}
    assert ScenarioConfig.resolve({}, {}).corpus_sizes() == SIZES  # the default: written once, in corpus.SIZES
    as_is = ScenarioConfig.resolve({}, {**base, "LOADTEST_SIZES": "as-is"})
    files = build_corpus(CorpusSpec(as_is.image_source, as_is.image_cache, as_is.per_size, as_is.corpus_sizes()))
    assert [f.name for f in files] == ["a.jpg", "b.png"]  # unchanged, the text file left out
    images = [f.read_bytes() for f in files]
    assert describe_corpus([len(b) for b in images], ()) == (f"2 images, the source files as they are, "
                                          f"mean {(len(images[0]) + len(images[1])) / 2 / 1000:.0f} KB")
    two = ScenarioConfig.resolve({}, {**base, "LOADTEST_SIZES": "1024x768, 64x48", "LOADTEST_PER_SIZE": "1"})
    assert two.corpus_sizes() == ((1024, 768), (64, 48))
    files = build_corpus(CorpusSpec(two.image_source, two.image_cache, two.per_size, two.corpus_sizes()))
    assert [cv2.imread(str(f)).shape[:2] for f in files] == [(768, 1024), (48, 64)]
    for text, said in (("1024by768", "is not WIDTHxHEIGHT"), ("16x16", "at least 32 pixels"), ("", "is not WIDTHxHEIGHT")):
        with pytest.raises(LoadtestConfigError, match=said):
            ScenarioConfig.resolve({}, {**base, "LOADTEST_SIZES": text})


def test_a_batch_larger_than_the_ensemble_takes_is_refused_before_the_run(no_server, tmp_path: Path, caplog) -> None:
    """--batch-size 33 was accepted and every batch call then failed for the whole run."""
    from loadtest import run

    assert run.main(["--host", "127.0.0.1:1", "--batch-size", "33", "--report-dir", str(tmp_path)]) == 2
    assert ("batch_size (--batch-size / LOADTEST_BATCH_SIZE) must be 1 to 32 (the ensemble's largest batch), got 33; "
            "set it between them") in caplog.text
    assert run.main(["--host", "127.0.0.1:1", "--batch-size", "0", "--report-dir", str(tmp_path)]) == 2
    assert "got 0; set it between them" in caplog.text and "smaller" not in caplog.text  # 0 is not told to shrink


def test_the_load_test_command_imports_no_image_stack_for_a_host_run() -> None:
    """Naming the embedded server's release imported the repository code, preprocess and OpenCV at start, for --host
    runs too (the Locust image ships the load test without preprocess)."""
    import subprocess
    import sys

    modules = "('preprocess', 'cv2', 'dermassist.base.repository')"
    probe = f"import sys, loadtest.run; print(sorted(m for m in {modules} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
