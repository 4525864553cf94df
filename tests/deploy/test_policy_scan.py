"""checkov, a policy scanner from PyPI, on the rendered Kubernetes manifests and the Dockerfiles.

No check may fail; a skipped check must carry its reason in the manifest (a ``checkov.io/skipN``
annotation beside a comment) or the Dockerfile (a ``# checkov:skip=ID: reason`` comment), and the
set of skipped checks is pinned here so a new one is added knowingly.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_kustomize import ROOT, render

CHECKOV = ROOT / "tools" / "checkov" / "bin" / "checkov"
TARGETS = ("base", "overlays/production", "overlays/mutual-tls", "monitoring")
DOCKERFILES = ("docker/triton/Dockerfile", "docker/demo/Dockerfile", "docker/locust/Dockerfile")
JUSTIFIED_K8S_SKIPS = {"CKV_K8S_11", "CKV_K8S_43"}
JUSTIFIED_DOCKER_SKIPS = {"CKV_DOCKER_2"}  # the Locust image only


def checkov(*args: str) -> dict:
    """Run checkov offline and return its JSON report (one framework)."""
    assert CHECKOV.is_file(), f"{CHECKOV} is missing: `make test` installs checkov into tools/checkov"
    done = subprocess.run([str(CHECKOV), *args, "--skip-download", "-o", "json"],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    (report,) = report if isinstance(report, list) else [report]
    return report


def _judge(report: dict) -> tuple[list[str], set[str]]:
    results = report["results"]
    assert not results["parsing_errors"], results["parsing_errors"]
    failed = [f"{c['check_id']} {c['resource']} ({c['check_name']})" for c in results["failed_checks"]]
    for check in results["skipped_checks"]:
        assert (check["check_result"].get("suppress_comment") or "").strip(), f"{check['check_id']} skipped without a reason"
    return failed, {c["check_id"] for c in results["skipped_checks"]}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rendered")
    for target in TARGETS:
        (folder / (target.replace("/", "_") + ".yaml")).write_text(yaml.safe_dump_all(render(target)))
    return folder


def test_rendered_manifests_pass_the_policy_scan(rendered: Path) -> None:
    report = checkov("-d", str(rendered), "--framework", "kubernetes")
    failed, skipped = _judge(report)
    assert failed == [], failed
    assert skipped == JUSTIFIED_K8S_SKIPS
    assert report["summary"]["passed"] > 100


def test_dockerfiles_pass_the_policy_scan() -> None:
    args = [a for path in DOCKERFILES for a in ("-f", str(ROOT / path))]
    report = checkov(*args, "--framework", "dockerfile")
    failed, skipped = _judge(report)
    assert failed == [], failed
    assert skipped == JUSTIFIED_DOCKER_SKIPS


def test_the_scanner_catches_a_writable_root_filesystem(tmp_path: Path) -> None:
    docs = render("base")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(docs))
    failed, _ = _judge(checkov("-d", str(tmp_path), "--framework", "kubernetes"))
    assert any(f.startswith("CKV_K8S_22 ") for f in failed), failed
