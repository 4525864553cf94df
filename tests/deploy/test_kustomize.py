"""deploy/: rendered with `kubectl kustomize`, validated against Kubernetes 1.32 schemas, then checked."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.32.0"
TARGETS = ("base", "overlays/production", "monitoring")


def render(target: str) -> list[dict]:
    """kubectl kustomize deploy/<target> -> list of documents."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (needed to render deploy/)"
    done = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(target: str):
    docs = render(target)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_misspelled_field():
    deployment = by_kind(render("base"), "Deployment")[0]
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_deployment_gpu_probes_and_read_only_repository():
    (deployment,) = by_kind(render("base"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "--model-control-mode=none" in container["args"]
    assert any(a.startswith("--grpc-max-connection-age=") for a in container["args"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_services_expose_grpc_and_http_and_a_headless_variant():
    services = {s["metadata"]["name"]: s for s in by_kind(render("base"), "Service")}
    ports = {p["name"]: p["port"] for p in services["triton"]["spec"]["ports"]}
    assert ports["grpc"] == 8001 and ports["http"] == 8000
    assert services["triton-headless"]["spec"]["clusterIP"] == "None"


def test_hpa_scales_on_the_adapter_metric_of_queue_time_per_request():
    (hpa,) = by_kind(render("base"), "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    (config_map,) = by_kind(render("monitoring"), "ConfigMap")
    rules = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    (rule,) = [r for r in rules if r["name"]["as"] == metric]
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]


def test_production_overlay_pins_image_and_scale():
    docs = render("overlays/production")
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("registry.example.com/dermassist/triton:")
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
