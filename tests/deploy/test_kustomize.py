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
TARGETS = ("base", "overlays/production", "overlays/mutual-tls", "monitoring")


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
    assert container["readinessProbe"]["periodSeconds"] * container["readinessProbe"]["failureThreshold"] <= 2
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):  # not the 1 s default: one slow answer
        assert 2 <= container[probe]["timeoutSeconds"] <= container[probe]["periodSeconds"], probe
    assert "--profile=gpu" in container["args"] and "--recovery=reload" in container["args"]
    assert any(a.startswith("--grpc-max-connection-age=") for a in container["args"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def _mounted_secret(pod: dict, container: dict, path: str) -> str:
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    return next(v for v in pod["volumes"] if v["name"] == mount["name"])["secret"]["secretName"]


def test_tls_and_admin_key_come_from_mounted_secrets_never_literals():
    (deployment,) = by_kind(render("base"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
    assert _mounted_secret(pod, container, args["--tls-cert"]) == "dermassist-tls"
    assert _mounted_secret(pod, container, args["--tls-key"]) == "dermassist-tls"
    assert _mounted_secret(pod, container, args["--admin-key-file"]) == "dermassist-admin-key"
    assert not any("admin-key=" in a or a.startswith("--admin-key=") for a in container["args"])
    assert not [e for e in container.get("env", []) if e["name"] == "DERMASSIST_ADMIN_KEY"]
    (mtls,) = by_kind(render("overlays/mutual-tls"), "Deployment")
    mtls_args = mtls["spec"]["template"]["spec"]["containers"][0]["args"]
    ca = next(a.split("=", 1)[1] for a in mtls_args if a.startswith("--tls-client-ca="))
    pod = mtls["spec"]["template"]["spec"]
    # the clients' trust anchor is a CA of its own, not the server certificate's (whose certificates must not call)
    assert _mounted_secret(pod, pod["containers"][0], ca) == "dermassist-client-ca"


def test_pods_run_as_non_root_on_a_read_only_root_filesystem():
    (deployment,) = by_kind(render("base"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", "/dev/shm"}


def test_network_policy_opens_only_grpc_to_client_namespaces_and_metrics_to_prometheus():
    docs = render("base")
    (policy,) = by_kind(docs, "NetworkPolicy")
    (deployment,) = by_kind(docs, "Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} and policy["spec"]["egress"] == []
    rules = {tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in policy["spec"]["ingress"]}
    assert set(rules) == {("grpc",), ("metrics", "http")}  # Triton's metrics port, the guard's /metrics on health
    assert rules[("grpc",)] == [{"namespaceSelector": {"matchLabels": {"dermassist.io/client": "true"}}}]
    (scraper,) = rules[("metrics", "http")]
    assert scraper["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}


def test_disruption_budget_keeps_a_pod_serving_in_production():
    docs = render("overlays/production")
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    (deployment,) = by_kind(docs, "Deployment")
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert hpa["spec"]["minReplicas"] - pdb["spec"]["maxUnavailable"] >= 1


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


def test_the_pod_gets_time_to_leave_the_service_drain_its_calls_and_stop_triton():
    """Rollouts and scale-downs lose no call: new calls still come while the pod leaves the Service (preStop), the
    calls in flight get the guard's drain, tritonserver its stop, and only then may the kubelet kill the pod."""
    from dermassist.guard.config import GuardConfig
    from dermassist.guard.guard import STOP_GRACE_S

    (deployment,) = by_kind(render("overlays/production"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and float(command[1]) >= 5
    drain = [float(a.split("=", 1)[1]) for a in container["args"] if a.startswith("--drain-s=")] or [GuardConfig().drain_s]
    assert pod["terminationGracePeriodSeconds"] >= float(command[1]) + drain[0] + STOP_GRACE_S + 5


def test_production_overlay_pins_image_and_scale():
    docs = render("overlays/production")
    (deployment,) = by_kind(docs, "Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns the scale: an apply must not reset it
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("registry.example.com/dermassist/triton:")
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)


@pytest.mark.parametrize("target", ["base", "overlays/production", "overlays/mutual-tls"])
def test_the_image_is_never_a_docker_hub_name(target: str):
    """A name without a registry host resolves to Docker Hub, where anyone may own `dermassist/...`: with
    `imagePullPolicy: Always` the pod would run whatever is published there, with the GPU, TLS key and admin key."""
    (deployment,) = by_kind(render(target), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    host = image.split("/", 1)[0]
    assert "/" in image and ("." in host or ":" in host or host == "localhost"), image


def test_the_prometheus_operator_monitor_scrapes_the_pods_the_hpa_scales():
    """The operator ignores the prometheus.io annotations: its PodMonitor must select the Deployment's pods in their
    namespace, on the container port named for Triton's metrics, at the annotations' path."""
    (monitor,) = render("monitoring/prometheus-operator")
    base = render("base")
    (deployment,) = by_kind(base, "Deployment")
    (namespace,) = by_kind(base, "Namespace")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"  # where the NetworkPolicy lets the scraper in from
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [namespace["metadata"]["name"]]
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    endpoint, guard = monitor["spec"]["podMetricsEndpoints"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(ports[endpoint["port"]]) == pod["metadata"]["annotations"]["prometheus.io/port"]
    assert endpoint["path"] == pod["metadata"]["annotations"]["prometheus.io/path"]
    # the guard's own series: /metrics on the health port, where `dermassist serve` serves them
    assert (guard["port"], guard["path"]) == ("http", "/metrics") and ports["http"] == 8000


def _flag_value(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(name + "=")), None)


@pytest.mark.parametrize("target", ("base", "overlays/production", "overlays/mutual-tls"))
def test_serve_gives_up_on_start_just_before_the_startup_probe_does(target: str):
    """The startupProbe allowed 300 s, but `serve` gave up at its default --startup-timeout-s (180 s): a GPU node still
    loading its models was restarted with two minutes of the probe's allowance unused. serve's limit (Triton's
    readiness, then the guard's first canary) must end inside the probe's window, and not long before it."""
    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.config import GuardConfig

    (deployment,) = by_kind(render(target), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    probe = container["startupProbe"]
    window = probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe["failureThreshold"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    startup = float(_flag_value(container["args"], "--startup-timeout-s") or env.get("DERMASSIST_STARTUP_TIMEOUT_S")
                    or ServerConfig().startup_timeout_s)
    canary = float(_flag_value(container["args"], "--canary-timeout-s") or GuardConfig().canary_timeout_s)
    margin = window - (startup + canary)  # for the container's own start (Python, the guard) before Triton's
    assert 5 <= margin <= 30, f"startup {startup:g} s + canary {canary:g} s against a {window} s startupProbe"


@pytest.mark.parametrize("target", ("base", "overlays/production", "overlays/mutual-tls"))
def test_liveness_fails_only_after_the_longest_normal_recovery(target: str):
    """The guard turns liveness false once unready past --max-unready-s (operator audit 1): the Deployment's settings
    must leave room for a reload that falls back to a restart within its --startup-timeout-s (the guard refuses to
    start otherwise), and the probe must be the liveness path."""
    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.config import GuardConfig

    (deployment,) = by_kind(render(target), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args, env = container["args"], {e["name"]: e.get("value") for e in container.get("env", [])}
    startup = float(_flag_value(args, "--startup-timeout-s") or env.get("DERMASSIST_STARTUP_TIMEOUT_S")
                    or ServerConfig().startup_timeout_s)
    settings = {name: float(value) for name in ("max_unready_s", "reload_timeout_s", "canary_timeout_s")
                if (value := _flag_value(args, "--" + name.replace("_", "-")) or env.get("DERMASSIST_" + name.upper()))}
    config = GuardConfig(**settings)
    assert config.unready_bound_problem(startup) is None
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert not config.exit_when_not_live and "DERMASSIST_EXIT_WHEN_NOT_LIVE" not in env  # the kubelet restarts it
