"""docker-compose.yml: validated offline by Debian's docker-compose, then checked field by field."""
from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _compose(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `apt-get install -y --no-install-recommends docker-compose` (make test does)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict:
    done = _compose("-f", str(COMPOSE), "--profile", "loadtest", "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid():
    done = _compose("-f", str(COMPOSE), "config", "-q")
    assert done.returncode == 0, done.stderr


def test_validator_rejects_a_broken_file(tmp_path: Path):
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["demo"]["depends_on"] = {"tritn": {"condition": "service_healthy"}}
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    assert _compose("-f", "docker-compose.yml", "config", "-q", cwd=tmp_path).returncode != 0


def test_triton_service_gpu_shm_readonly_repository_and_flags(config: dict):
    triton = config["services"]["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert triton["shm_size"]
    # docker-compose 1.29 prints volumes in the short SOURCE:TARGET:MODE form
    (volume,) = [v for v in triton["volumes"] if v.split(":")[1] == "/models"]
    source, _, mode = volume.split(":")
    assert mode == "ro" and source.endswith("model_repository")
    assert "--model-control-mode=none" in triton["command"] and "--strict-readiness=true" in triton["command"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_triton_image_is_built_from_a_pinned_ngc_py3_tag(config: dict):
    build = config["services"]["triton"]["build"]
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    assert "FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}" in dockerfile
    tag = build["args"]["TRITON_TAG"]
    assert re.fullmatch(r"\d\d\.\d\d-py3", tag), tag
    assert f"ARG TRITON_TAG={tag}" in dockerfile
    for need in ("opencv-python-headless", "tensorflow", "COPY preprocess"):
        assert need in dockerfile, need


def test_triton_image_pins_the_python_backend_packages_the_project_pins(config: dict):
    """The serving image runs preprocess with the versions the tests ran it with (numpy<2 above all)."""
    pins = dict(re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", d).groups()
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"] if "==" in d)
    dockerfile = (ROOT / config["services"]["triton"]["build"]["dockerfile"]).read_text()
    image_pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^"]+)"', dockerfile))
    for name in ("numpy", "opencv-python-headless", "pillow"):
        assert image_pins.get(name) == pins[name], f"{name}: image {image_pins.get(name)} vs pyproject {pins[name]}"
    assert image_pins["tensorflow"] == pins["tensorflow-cpu"]  # same TF, GPU build in the image


def test_demo_waits_for_healthy_triton_and_locust_is_a_profile(config: dict):
    services = config["services"]
    assert services["demo"]["depends_on"]["triton"]["condition"] == "service_healthy"
    assert "triton:8001" in services["demo"]["command"]
    for name in ("locust-master", "locust-worker"):
        assert services[name]["profiles"] == ["loadtest"]
    assert "--master" in services["locust-master"]["command"]
    assert "--worker" in services["locust-worker"]["command"]


def test_prometheus_scrapes_tritons_metrics_port(config: dict):
    triton = config["services"]["triton"]
    metrics_flag = next(a for a in triton["command"] if a.startswith("--metrics-port="))
    port = metrics_flag.split("=")[1]
    prom = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"triton:{port}" in targets


def _top_level_imports(path: Path) -> set[str]:
    """First names of the modules ``path`` imports at module level (not inside functions)."""
    import ast

    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_locust_image_ships_every_first_party_package_the_locustfile_imports():
    sources = {"loadtest": "loadtest", "dermassist_client": "client", "preprocess": "preprocess",
               "dermassist": "dermassist", "training": "training"}
    seen, todo, needed = set(), ["loadtest.locustfile"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _top_level_imports(ROOT / (module.replace(".", "/") + ".py")):
            root = name.split(".")[0]
            if root in sources:
                needed.add(root)
                if root == "loadtest":
                    todo.append(name)
    dockerfile = (ROOT / "docker" / "locust" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE))
    assert needed == {"loadtest", "dermassist_client"}, needed
    assert {sources[root] for root in needed} <= copied, (needed, copied)
