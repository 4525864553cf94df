"""docker-compose.yml: validated offline by Debian's docker-compose, then checked field by field."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _compose(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """docker-compose with the shipped defaults (no DERMASSIST_* variable of the caller's shell), plus ``env``."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `apt-get install -y --no-install-recommends docker-compose` (make test does)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DERMASSIST_", "COMPOSE_"))}
    return subprocess.run([binary, *args], cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def render(*files: Path, env: dict[str, str] | None = None) -> dict:
    """The merged configuration of ``files`` (the loadtest profile included), as docker-compose prints it."""
    done = _compose(*(a for f in files for a in ("-f", str(f))), "--profile", "loadtest", "config", env=env)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return render(COMPOSE)


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
    # compose's default 10 s before SIGKILL would cut the guard's drain of the calls in flight and Triton's stop
    from dermassist.guard.config import GuardConfig
    from dermassist.guard.guard import STOP_GRACE_S

    minutes, secs = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", triton["stop_grace_period"]).groups(default="0")
    seconds = 60 * int(minutes) + int(secs)
    assert seconds >= GuardConfig().drain_s + STOP_GRACE_S + 5
    # docker-compose 1.29 prints volumes in the short SOURCE:TARGET:MODE form
    (volume,) = [v for v in triton["volumes"] if v.split(":")[1] == "/models"]
    source, _, mode = volume.split(":")
    assert mode == "ro" and source.endswith("model_repository")
    assert "--profile=gpu" in triton["command"] and "--recovery=reload" in triton["command"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_triton_exits_when_it_cannot_heal_so_the_restart_policy_acts(config: dict):
    """Docker never restarts a container for a failing health check: a pod that cannot heal must exit (operator
    audit 1); the variable must be one the guard reads, as the value it parses."""
    from dermassist.guard.config import GuardConfig

    triton = config["services"]["triton"]
    assert triton["restart"] == "unless-stopped"
    environment = triton["environment"]
    assert GuardConfig.resolve({}, {k: v for k, v in environment.items() if k.startswith("DERMASSIST_")}).exit_when_not_live


def test_triton_serves_tls_with_secrets_and_writes_the_audit_trail_to_a_volume(config: dict):
    triton = config["services"]["triton"]
    args = dict(a.split("=", 1) for a in triton["command"] if "=" in a)
    secrets = {s["source"] if isinstance(s, dict) else s for s in triton["secrets"]}
    for flag in ("--tls-cert", "--tls-key", "--admin-key-file"):
        name = args[flag].removeprefix("/run/secrets/")
        assert name in secrets and name in config["secrets"], flag
    assert not any(a.startswith("--admin-key=") for a in triton["command"])
    assert "DERMASSIST_ADMIN_KEY" not in (triton.get("environment") or {})
    audit_dir = str(Path(args["--audit-log"]).parent)
    assert any(v.split(":")[1] == audit_dir for v in triton["volumes"])
    # docker-compose 1.29 prints host-bound ports as "IP:HOST:TARGET/tcp"
    assert all(isinstance(p, str) for p in triton["ports"]), triton["ports"]
    public = [p for p in triton["ports"] if not p.startswith("127.0.0.1:")]
    assert public == ["0.0.0.0:8001:8001/tcp"]  # gRPC over TLS is the only port published beyond the host


def test_every_service_runs_non_root_on_a_read_only_root_filesystem(config: dict):
    for name, service in config["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("user") and not service["user"].startswith("0"), name
        assert service.get("cap_drop") == ["ALL"], name


def test_triton_image_is_built_from_a_pinned_ngc_py3_tag(config: dict):
    build = config["services"]["triton"]["build"]
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    assert "FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}" in dockerfile
    tag = build["args"]["TRITON_TAG"]
    assert re.fullmatch(r"\d\d\.\d\d-py3", tag), tag
    assert f"ARG TRITON_TAG={tag}" in dockerfile
    # the image built from it is named after its release (docs/operations.md: change both together)
    assert config["services"]["triton"]["image"] == "dermassist/triton:" + tag.removesuffix("-py3")
    for need in ("opencv-python-headless", "tensorflow", "COPY preprocess"):
        assert need in dockerfile, need


def _project_pins() -> dict[str, str]:
    return dict(re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", d).groups()  # type: ignore[union-attr]
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"] if "==" in d)


def _image_pins(dockerfile: Path) -> dict[str, str]:
    return dict(re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^"]+)"', dockerfile.read_text()))


# What each image installs that the tests ran at a pinned version: an unpinned one (gradio, keras, grpcio came in
# unpinned through other packages) would be whatever PyPI had on the day the image was built.
IMAGE_PACKAGES = {
    "triton": ("numpy", "opencv-python-headless", "pillow", "simplejpeg", "tensorflow", "keras", "tritonclient", "grpcio",
               "protobuf", "cryptography"),
    "demo": ("gradio", "tritonclient", "grpcio", "protobuf", "numpy", "pillow"),
    "locust-master": ("locust", "tritonclient", "grpcio", "protobuf", "numpy", "opencv-python-headless", "pillow"),
}


@pytest.mark.parametrize("service", sorted(IMAGE_PACKAGES))
def test_each_image_pins_what_it_installs_at_the_projects_versions(config: dict, service: str):
    """An image runs our code with the versions the tests ran it with (numpy<2 above all), each pinned once, in
    pyproject.toml (the GPU image's tensorflow is the same release as the tests' tensorflow-cpu)."""
    pins = _project_pins()
    pins["tensorflow"] = pins["tensorflow-cpu"]
    image_pins = _image_pins(ROOT / config["services"][service]["build"]["dockerfile"])
    for name in IMAGE_PACKAGES[service]:
        assert name in image_pins, f"{service} image installs {name} unpinned"
    for name, version in image_pins.items():
        assert version == pins.get(name), f"{service} image: {name}=={version}, pyproject.toml {pins.get(name)}"


def test_demo_waits_for_healthy_triton_and_locust_is_a_profile(config: dict):
    services = config["services"]
    assert services["demo"]["depends_on"]["triton"]["condition"] == "service_healthy"
    assert services["demo"]["command"][0] == "demo" and "triton:8001" in services["demo"]["command"]
    assert "--ssl" in services["demo"]["command"]
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


def test_prometheus_scrapes_the_guards_own_metrics_on_its_health_port(config: dict):
    """The guard serves dermassist_* metrics at /metrics on --http-port (operator audit 4)."""
    triton = config["services"]["triton"]
    port = next(a for a in triton["command"] if a.startswith("--http-port=")).split("=")[1]
    prom = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "dermassist-guard"]
    assert job["metrics_path"] == "/metrics"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"triton:{port}"]


def test_locust_image_ships_every_project_module_the_locustfile_imports():
    """Follow the locustfile's imports (any depth, lazy ones too) and find each module under a COPY of the image."""
    from dermassist.layers import imports_of, project_modules, unit_of

    modules = project_modules(ROOT)
    needed: set[str] = set()
    todo = ["loadtest.locustfile"]
    while todo:
        module = todo.pop()
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        for name in (module, *parents):
            if name in modules and name not in needed:
                needed.add(name)
                todo += [imp.target for imp in imports_of(name, modules[name], modules)]
    server_side = sorted(m for m in needed if unit_of(m) not in ("loadtest", "dermassist_client"))
    assert all(m == "dermassist" or unit_of(m) == "dermassist.base" for m in server_side), server_side
    dockerfile = (ROOT / "docker" / "locust" / "Dockerfile").read_text()
    copied = [Path(source) for source in re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE)]
    files = sorted(modules[m].relative_to(ROOT) for m in needed)
    missing = [f for f in files if not any(c == f or c in f.parents for c in copied)]
    assert not missing, f"the Locust image lacks {missing} (COPY sources: {copied})"


def test_the_build_context_holds_what_the_images_copy_and_no_secrets():
    """Compose builds from the checkout's root: without .dockerignore, .venv (gigabytes) and secrets/ go to the daemon."""
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: everything not named below stays out
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for dockerfile in (ROOT / "docker").glob("*/Dockerfile"):
        for source in re.findall(r"^COPY\s+(\S+)\s", dockerfile.read_text(), flags=re.MULTILINE):
            copied.add(source.split("/")[0])
    assert copied and copied <= allowed, copied - allowed
    assert not allowed & {"secrets", ".venv", ".git", "data", "reports", "tools", ".cache", "training"}


def test_our_images_are_built_here_never_pulled(config: dict):
    """An image named dermassist/... would be pulled from Docker Hub, where anyone may own that name: every service
    running one of ours builds it (`pull_policy: build`), the Locust workers included."""
    ours = {name: service for name, service in config["services"].items() if service["image"].startswith("dermassist/")}
    assert set(ours) == {"triton", "demo", "locust-master", "locust-worker"}
    for name, service in ours.items():
        assert service.get("pull_policy") == "build", name
        assert (ROOT / service["build"]["dockerfile"]).is_file(), name


def _header_comment() -> str:
    """The comment block at the top of docker-compose.yml, as one line of text."""
    lines = COMPOSE.read_text().splitlines()
    return " ".join(line.lstrip("# ").strip() for line in lines[:next(i for i, ln in enumerate(lines) if not ln.startswith("#"))])


def test_the_comment_says_ca_crt_never_signs_client_certificates():
    """The client CA of mutual TLS is a trust anchor of its own (deploy/components/mutual-tls); the comment said ca.crt
    'also signs client certificates when mutual TLS is on'."""
    header = _header_comment()
    assert "also signs client certificates" not in header
    assert re.search(r"ca\.crt \(the CA that signed the server certificate.*never signs client certificates", header)
    component = (ROOT / "deploy" / "components" / "mutual-tls" / "kustomization.yaml").read_text()
    assert "It is not the\n# CA of the server's certificate" in component  # what the comment now agrees with


def test_the_locust_master_expects_the_workers_the_docs_scale_to_and_is_bounded(config: dict):
    """--expect-workers 2 while the docs scale to 4; no bound on the wait; no --stop-timeout (calls cancelled)."""
    from loadtest.config import ScenarioConfig
    from loadtest.runner import stop_timeout_s

    command = config["services"]["locust-master"]["command"]
    expected = command[command.index("--expect-workers") + 1]
    readme = (ROOT / "README.md").read_text().split("## Load-testing a GPU host", 1)[1].split("\n## ", 1)[0]
    scales = set(re.findall(r"--scale locust-worker=(\d+)", _header_comment() + readme))
    assert scales == {expected}, (scales, expected)
    assert 0 < int(command[command.index("--expect-workers-max-wait") + 1]) <= 300
    deadline_s = float(config["services"]["locust-master"]["environment"]["LOADTEST_DEADLINE_S"])  # compose's own
    assert command[command.index("--stop-timeout") + 1] == str(stop_timeout_s(ScenarioConfig(deadline_s=deadline_s)))


def test_the_locust_containers_get_real_images_from_a_bare_checkout(tmp_path: Path):
    """The default folder was ../shared/data/..., which a fresh checkout does not have; now the client package's
    bundled HAM10000 examples (DERMASSIST_SAMPLES picks another folder)."""
    env = {k: v for k, v in os.environ.items() if k != "DERMASSIST_SAMPLES"}
    binary = shutil.which("docker-compose")
    assert binary
    done = subprocess.run([binary, "-f", str(COMPOSE), "--profile", "loadtest", "config"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name in ("locust-master", "locust-worker"):
        service = services[name]
        target = service["environment"]["LOADTEST_IMAGE_SOURCE"]
        (source,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == target]
        assert Path(source) == ROOT / "client" / "dermassist_client" / "samples", source
        assert len(list(Path(source).glob("*.jpg"))) >= 4 and (Path(source) / "ATTRIBUTION.md").is_file()
    done = subprocess.run([binary, "-f", str(COMPOSE), "--profile", "loadtest", "config"], cwd=ROOT,
                          env={**env, "DERMASSIST_SAMPLES": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert f"{tmp_path}:/samples:ro" in done.stdout


def test_the_locust_image_carries_the_bundled_images_the_corpus_falls_back_to():
    """Without LOADTEST_IMAGE_SOURCE the corpus takes the installed client package's samples: the image installs the
    package (not only copies it) and the package ships them."""
    dockerfile = (ROOT / "docker" / "locust" / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install [^\n]*/app/client$", dockerfile, flags=re.MULTILINE)
    package_data = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"samples/*.jpg", "samples/ATTRIBUTION.md"} <= set(package_data["dermassist_client"])


@pytest.mark.parametrize("address", ["10.20.30.40", "127.0.0.1", "[fd00::5]"])
def test_the_grpc_port_binds_the_address_in_dermassist_grpc_bind(address: str):
    """The audit finding: "8001:8001" published gRPC on every interface with no say. DERMASSIST_GRPC_BIND names the
    interface (the hospital network's); its default stays 0.0.0.0 (above), for the clients on other hosts."""
    triton = render(COMPOSE, env={"DERMASSIST_GRPC_BIND": address})["services"]["triton"]
    grpc = [p for p in triton["ports"] if p.endswith(":8001:8001/tcp")]
    assert grpc == [f"{address.strip('[]')}:8001:8001/tcp"]
    assert sorted(p for p in triton["ports"] if p not in grpc) == ["127.0.0.1:8000:8000/tcp", "127.0.0.1:8002:8002/tcp"]


def test_a_grpc_bind_that_is_no_address_is_refused():
    done = _compose("-f", str(COMPOSE), "config", "-q", env={"DERMASSIST_GRPC_BIND": "hospital-lan"})
    assert done.returncode != 0 and "ports" in done.stderr, done.stderr


# The base image of each image: (compose service, build arg or None for a pulled image, compose variable, repository,
# tag as shipped). The shipped files name tags, not digests (none can be looked up from here); each tag's variable
# may carry a digest, "TAG@sha256:...", which pins the image whatever the tag points to later.
BASE_IMAGES = [
    ("triton", "TRITON_TAG", "DERMASSIST_TRITON_TAG", "nvcr.io/nvidia/tritonserver", "25.10-py3"),
    ("demo", "PYTHON_TAG", "DERMASSIST_PYTHON_TAG", "python", "3.11-slim"),
    ("locust-master", "PYTHON_TAG", "DERMASSIST_PYTHON_TAG", "python", "3.11-slim"),
    ("locust-worker", "PYTHON_TAG", "DERMASSIST_PYTHON_TAG", "python", "3.11-slim"),
    ("prometheus", None, "DERMASSIST_PROMETHEUS_TAG", "prom/prometheus", "v3.5.0"),
]
FAKE_DIGEST = "sha256:" + "0" * 64  # a placeholder for the test, never a pin


def _base_image(service: dict, arg: str | None) -> str:
    """The base image reference a service ends up with: its Dockerfile's FROM with the build arg compose passes (the
    ARG's default must equal it), or the image compose pulls."""
    if arg is None:
        return service["image"]
    dockerfile = (ROOT / service["build"]["dockerfile"]).read_text()
    (reference,) = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    value = service["build"]["args"][arg]
    assert re.search(rf"^ARG {arg}=(\S+)$", dockerfile, flags=re.MULTILINE)[1] == value.split("@")[0]  # type: ignore[index]
    assert reference.count("${") == 1 and f"${{{arg}}}" in reference, reference
    return reference.replace(f"${{{arg}}}", value)


@pytest.mark.parametrize("service, arg, variable, repository, tag", BASE_IMAGES)
def test_each_base_image_is_a_tag_as_shipped_and_an_operator_can_pin_its_digest(config: dict, service: str,
                                                                               arg: str | None, variable: str,
                                                                               repository: str, tag: str):
    assert _base_image(config["services"][service], arg) == f"{repository}:{tag}"
    pinned = render(COMPOSE, env={variable: f"{tag}@{FAKE_DIGEST}"})["services"][service]
    assert _base_image(pinned, arg) == f"{repository}:{tag}@{FAKE_DIGEST}"


def test_every_base_image_is_covered():
    """A new Dockerfile or pulled image gets its variable and a row above."""
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    covered = {row[0] for row in BASE_IMAGES}
    assert set(raw) == covered, set(raw) ^ covered
    assert {p.parent.name for p in (ROOT / "docker").glob("*/Dockerfile")} == {"triton", "demo", "locust"}
    for name, service in raw.items():
        if "build" not in service:
            assert "${DERMASSIST_" in service["image"], name


def test_the_demo_page_marks_the_classes_the_shipped_release_never_learnt(config: dict):
    """The thin client's page cannot read the served model's record of its untrained classes (``dermassist demo``
    reads it), so compose passes them: they must be the shipped release's, or the page shows a percentage of a class
    the model never saw and drops the warning (review finding 1)."""
    from dermassist_client.cli import build_parser
    from training.export.release import untrained_of
    from training.release import read_release

    args = build_parser().parse_args(config["services"]["demo"]["command"])
    assert tuple(args.not_learnt or ()) == untrained_of(read_release())


def test_the_served_models_are_the_folder_in_dermassist_model_repository():
    """A new release goes into a folder of its own and the service is pointed at it; the old folder is the way back
    (upgrade audit, H5: the checkout's ./model_repository was the only folder compose could serve)."""
    triton = render(COMPOSE, env={"DERMASSIST_MODEL_REPOSITORY": "/srv/dermassist/models-2026.12"})["services"]["triton"]
    assert "/srv/dermassist/models-2026.12:/models:ro" in triton["volumes"]
