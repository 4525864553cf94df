"""The command line without the extras: no DICOM or FHIR library loads until asked, and a missing extra is named."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.support import dicom_images as di

HEAVY = ("pydicom", "highdicom", "pynetdicom", "fhir")
BLOCK = "import sys; [sys.modules.__setitem__(m, None) for m in {mods!r}]; from dermassist_client.cli import main; "


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_command_line_loads_no_dicom_or_fhir_library():
    done = run("import sys, json, dermassist_client.cli as c; c.build_parser(); "
               f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_dicom_file_without_the_dicom_extra_names_the_extra(tmp_path, ham_jpeg):
    dcm = di.save(di.photograph(ham_jpeg, di.Patient()), tmp_path / "a.dcm")
    code = BLOCK.format(mods=("pydicom", "highdicom")) + f"sys.exit(main(['analyze', {str(dcm)!r}, '--url', '127.0.0.1:9']))"
    done = run(code)
    assert done.returncode == 1
    assert f"{dcm}: FAILED:" in done.stderr and "pip install './client[dicom]' (from the DermAssist checkout)" in done.stderr


def test_dicom_listen_without_pynetdicom_names_the_extra_not_a_missing_module(tmp_path):
    """pydicom and highdicom present, pynetdicom missing: the node's command names the extra to install."""
    code = BLOCK.format(mods=("pynetdicom",)) + (
        f"sys.exit(main(['dicom-listen', '--url', '127.0.0.1:9', '--spool', {str(tmp_path / 'spool')!r}]))")
    done = run(code)
    assert done.returncode != 0 and "ModuleNotFoundError" not in done.stderr, done.stderr
    assert "dicom-listen needs the 'dicom' extra (pynetdicom is missing): pip install './client[dicom]'" in done.stderr


def test_fhir_out_without_the_fhir_extra_is_a_usage_error(tmp_path):
    code = BLOCK.format(mods=("fhir", "fhir.resources")) + (
        f"sys.exit(main(['analyze', 'x.jpg', '--fhir-out', {str(tmp_path / 'b.json')!r}, '--url', '127.0.0.1:9']))")
    done = run(code)
    assert done.returncode == 2
    assert "--fhir-out needs the 'fhir' extra" in done.stderr and "pip install './client[fhir]'" in done.stderr


def test_fhir_out_into_a_missing_folder_is_no_usage_error(tmp_path):
    """As with --dicom-out, the missing folder is made when the Bundle is written: here none is (no image answered)."""
    done = run(f"import sys; from dermassist_client.cli import main; sys.exit(main(['analyze', 'x.jpg', '--fhir-out', "
               f"{str(tmp_path / 'nope' / 'b.json')!r}, '--url', '127.0.0.1:9', '--retries', '0']))")
    assert done.returncode == 1 and "x.jpg: FAILED" in done.stderr, done.stderr
    assert not (tmp_path / "nope").exists()


def test_help_lists_every_command_under_a_plain_sentence():
    from dermassist_client.cli import DESCRIPTION, build_parser

    text = build_parser().format_help()
    assert "``" not in text and " ".join(DESCRIPTION.split()) in " ".join(text.split())
    assert all(name in text for name in ("analyze", "demo", "dicom-listen"))


def test_output_paths_that_cannot_be_written_are_refused_before_any_analysis(tmp_path):
    a_file = tmp_path / "photo.jpg"
    a_file.write_bytes(b"x")
    for flag, target, words in (("--fhir-out", tmp_path, "is a folder; name the Bundle's file"),
                                ("--fhir-out", a_file / "b.json", f"{a_file} is a file, not a folder"),
                                ("--dicom-out", a_file, "is a file, not a folder"),
                                ("--dicom-out", a_file / "sub", f"{a_file} is a file, not a folder")):
        done = run(f"import sys; from dermassist_client.cli import main; sys.exit(main(['analyze', 'x.jpg', {flag!r}, "
                   f"{str(target)!r}, '--url', '127.0.0.1:9', '--retries', '0']))")
        assert done.returncode == 2 and words in done.stderr, done.stderr
        assert "x.jpg: FAILED" not in done.stderr  # refused before the first image was tried


def test_a_reader_that_stops_early_ends_the_run_quietly():
    """``dermassist-client analyze ... --json | head -c 10``: the closed pipe is no traceback."""
    code = ("import sys, dermassist_client.cli as c; "
            "c.analyze = lambda args: [print('{\"image\": \"x\"}' * 50, flush=True) for _ in range(100000)] and 0; "
            "sys.exit(c.main(['analyze', 'x.jpg']))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.read(10)
    process.stdout.close()  # what `head -c 10` does once it has its bytes
    assert process.wait(timeout=60) == 141
    errors = process.stderr.read().decode()
    assert first == b'{"image": ' and "Traceback" not in errors and "BrokenPipe" not in errors, errors


def test_the_demo_without_the_demo_extra_names_the_extra() -> None:
    """`pip install ./client` then `dermassist-client demo` ended in ModuleNotFoundError: No module named 'gradio'."""
    code = BLOCK.format(mods=("gradio",)) + "sys.exit(main(['demo', '--url', '127.0.0.1:9']))"
    done = run(code)
    assert done.returncode == 2
    assert "the demo page needs the 'demo' extra" in done.stderr and "pip install './client[demo]'" in done.stderr


def test_python_m_dermassist_client_is_the_command():
    done = subprocess.run([sys.executable, "-m", "dermassist_client", "analyze", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: dermassist-client analyze"), done.stderr


def test_dicom_listen_refuses_a_uid_root_that_is_not_one(tmp_path):
    done = run("import sys; from dermassist_client.cli import main; "
               f"sys.exit(main(['dicom-listen', '--uid-root', '1.2.3', '--spool', {str(tmp_path / 'spool')!r}]))")
    assert done.returncode == 2 and "--uid-root: uid_root must be a DICOM UID root" in done.stderr, done.stderr
    assert not (tmp_path / "spool").exists()  # refused before anything was made
