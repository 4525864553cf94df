"""``dermassist-client analyze`` as a subprocess: human lines, JSON lines, exit codes and reasons."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dermassist.base.server import free_ports
from tests.conftest import HAM_IMAGES

pytestmark = pytest.mark.integration

HAM = str(HAM_IMAGES / "ISIC_0024311.jpg")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dermassist_client.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_json_lines_one_per_image(triton_server):
    other = str(sorted(p for p in HAM_IMAGES.glob("*.jpg") if str(p) != HAM)[0])
    done = cli("analyze", HAM, other, "--url", triton_server.config.grpc_address, "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"] for line in lines] == [HAM, other]
    for line in lines:
        assert line["top_class"] in {"AK", "BCC", "DF", "MEL", "NV", "BKL", "SCC", "VASC"}
        assert line["label"] == (line["top_class"] if line["diagnosis_given"] else None)
        assert abs(sum(line["probabilities"].values()) - 1) < 1e-4
        assert line["original_size"] == [600, 450] and line["model_name"] == "dermassist"
        x0, y0, x1, y1 = line["bbox"]
        assert 0 <= x0 < x1 <= 600 and 0 <= y0 < y1 <= 450


def test_json_carries_the_triage_the_server_sent(triton_server):
    from dermassist_client import DermAssistClient

    direct = DermAssistClient(triton_server.config.grpc_address).analyze(HAM)
    done = cli("analyze", HAM, "--url", triton_server.config.grpc_address, "--json")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert isinstance(line["refer"], bool) and isinstance(line["assessable"], bool)
    assert (line["refer"], line["assessable"], line["note"]) == (direct.refer, direct.assessable, direct.note)
    assert line["refer_score"] == pytest.approx(direct.refer_score)
    assert line["ood_score"] == pytest.approx(direct.ood_score)
    assert line["refer_score"] == pytest.approx(sum(line["probabilities"][c] for c in ("MEL", "BCC", "SCC", "AK")),
                                                abs=1e-5)


def test_human_output_over_http_starts_with_the_triage(triton_server):
    from dermassist_client import DermAssistClient
    from dermassist_client.verdict import verdict_line, verdict_of_result

    direct = DermAssistClient(triton_server.config.http_address, "http").analyze(HAM)
    done = cli("analyze", HAM, "--url", triton_server.config.http_address, "--protocol", "http")
    assert done.returncode == 0, done.stderr
    # the note's own full stop gives way to the "; " that ends the verdict part
    assert done.stdout.startswith(f"{HAM}: {verdict_line(verdict_of_result(direct)).rstrip('.')}; ")
    assert direct.note == "" or direct.note.rstrip(".") in done.stdout
    assert ".;" not in done.stdout
    assert "model dermassist v1" in done.stdout and len(done.stdout.splitlines()) == 1


def test_a_failed_image_gives_nonzero_exit_and_its_reason(triton_server, tmp_path):
    bad = tmp_path / "scan.jpg"
    bad.write_text("definitely not a jpeg")
    done = cli("analyze", str(bad), HAM, "--url", triton_server.config.grpc_address, "--json")
    assert done.returncode == 1
    assert f"{bad}: FAILED: {bad} is not an image" in done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["image"] for r in records] == [str(bad), HAM] and records[0]["error"]["kind"] == "InvalidImageError"


def test_unreachable_server_fails_every_image_with_the_reason():
    (port,) = free_ports(1)
    done = cli("analyze", HAM, HAM, "--url", f"127.0.0.1:{port}", "--retries", "1", "--timeout", "5")
    assert done.returncode == 3 and done.stdout == ""  # 3: the server could not be reached; the run stopped
    assert done.stderr.count("FAILED") == 1 and "1 more file(s) were not tried" in done.stderr
    assert f"cannot connect to 127.0.0.1:{port}" in done.stderr or "unavailable" in done.stderr


def test_bad_url_is_a_usage_error():
    done = cli("analyze", HAM, "--url", "http://somewhere:8001")
    assert done.returncode == 2 and "without a scheme" in done.stderr
