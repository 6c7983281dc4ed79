"""The Kubernetes manifests and the Grafana dashboard, validated offline.

`kubectl kustomize` renders each overlay; every resource is checked against the current
Kubernetes schema (strict); the ServiceMonitor (a CRD) is checked for shape. The settings the
ConfigMap sets must be ones the service reads, and every metric the dashboard, the autoscaler
and the adapter rules name must be one the running service exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import httpx
import pytest
import yaml

from serving.settings import ENV_PREFIX, ServiceSettings
from tests.builders import ROOT, real_images
from tests.serverlib import Server

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.37.0"
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="needs kubectl (apt-get install kubectl)"
)


def render(overlay: str) -> list[dict[str, Any]]:
    output = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def by_kind(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["kind"]: r for r in resources}


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_overlays_render_and_validate_strictly(overlay: str) -> None:
    import kubernetes_validate

    resources = render(overlay)
    kinds = sorted(r["kind"] for r in resources)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceMonitor",
        ]
    )
    for resource in resources:
        if resource["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in Kubernetes itself; checked below
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_service_monitor_scrapes_the_service(overlay: str) -> None:
    kinds = by_kind(render(overlay))
    monitor, service = kinds["ServiceMonitor"], kinds["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
        assert set(endpoint) <= {
            "port",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "relabelings",
        }


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_pods_drain_and_run_unprivileged(overlay: str) -> None:
    kinds = by_kind(render(overlay))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    settings = kinds["ConfigMap"]["data"]
    timeout = int(settings["CYCLEGAN_REQUEST_TIMEOUT_S"])
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > timeout + pause
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # room for engine builds
    assert pod["securityContext"]["runAsNonRoot"] is True
    for box in [container, *pod.get("initContainers", [])]:
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert kinds["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1


@needs_kubectl
def test_gpu_overlay_schedules_on_gpus_and_builds_engines_there() -> None:
    kinds = by_kind(render("gpu"))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]
    init = pod["initContainers"][0]
    assert "python -m compile tensorrt" in " ".join(init["args"]) and "--skip-existing" in " ".join(
        init["args"]
    )
    assert init["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert kinds["ConfigMap"]["data"]["CYCLEGAN_BACKEND"] == "tensorrt"
    assert "gpu" in pod["containers"][0]["image"]


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_configmap_sets_only_settings_the_service_reads(overlay: str) -> None:
    data = by_kind(render(overlay))["ConfigMap"]["data"]
    known = {ENV_PREFIX + name.upper() for name in ServiceSettings.model_fields}
    assert set(data) <= known, set(data) - known
    ServiceSettings.model_validate(
        {key[len(ENV_PREFIX) :].lower(): value for key, value in data.items()}
    )


SELECTOR = {
    "app.kubernetes.io/name": "cyclegan-translation",
    "app.kubernetes.io/instance": "cyclegan-translation",
}
LABELS = {*SELECTOR, "app.kubernetes.io/component", "app.kubernetes.io/part-of",
          "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}  # fmt: skip


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_labels_are_complete_and_selectors_minimal(overlay: str) -> None:
    resources = render(overlay)
    kinds = by_kind(resources)
    for resource in resources:
        assert set(resource["metadata"]["labels"]) >= LABELS, resource["kind"]
    deployment = kinds["Deployment"]["spec"]
    selectors = [
        deployment["selector"]["matchLabels"],
        kinds["Service"]["spec"]["selector"],
        kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
        kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:  # the version never goes in a selector (they are immutable)
        assert selector == SELECTOR
    assert set(deployment["template"]["metadata"]["labels"]) >= LABELS


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_pods_are_locked_down_and_bounded(overlay: str) -> None:
    kinds = by_kind(render(overlay))
    deployment = kinds["Deployment"]["spec"]
    assert "replicas" not in deployment  # the HPA owns the scale
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    pod = deployment["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # *_PORT variables would clash with CYCLEGAN_*
    for volume in pod["volumes"]:
        if "emptyDir" in volume:
            assert volume["emptyDir"]["sizeLimit"], volume["name"]
    for box in [*pod["containers"], *pod.get("initContainers", [])]:
        assert box["resources"]["requests"]["ephemeral-storage"], box["name"]
        assert box["resources"]["limits"]["ephemeral-storage"], box["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_probes_wait_longer_than_the_readiness_check(overlay: str) -> None:
    from serving.service import READY_CHECK_TIMEOUT_S

    container = by_kind(render(overlay))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] > READY_CHECK_TIMEOUT_S, probe


@needs_kubectl
@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_network_policy_admits_http_only_and_no_egress(overlay: str) -> None:
    kinds = by_kind(render(overlay))
    policy = kinds["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["egress"] == []
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


@needs_kubectl
def test_cpu_pod_memory_holds_the_image_budget() -> None:
    """The CPU pod's limit holds the models and processes (measured about 0.8 GiB with the
    default model) plus the front's image-memory budget."""
    kinds = by_kind(render("cpu"))
    limit = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limit["memory"].endswith("Gi")
    settings = ServiceSettings.model_validate(
        {k[len(ENV_PREFIX) :].lower(): v for k, v in kinds["ConfigMap"]["data"].items()}
    )
    assert settings.image_memory_mb + 1024 <= int(limit["memory"][:-2]) * 1024


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bcyclegan_[a-z_]+", text))


def exported(server: Server) -> set[str]:
    """Metric names on a live /metrics after a request, with histogram series folded in."""
    data = real_images("testA", 1)[0].read_bytes()
    httpx.post(
        f"{server.url}/translate/horse2zebra",
        content=data,
        headers={"content-type": "image/jpeg"},
        timeout=60,
    )
    names = set(re.findall(r"^(cyclegan_[a-z_]+)", httpx.get(f"{server.url}/metrics").text, re.M))
    return names | {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_dashboard_and_autoscaler_use_metrics_the_service_exports(server: Server) -> None:
    live = exported(server)
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "cyclegan-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert queries and metric_names(" ".join(queries)) <= live, (
        metric_names(" ".join(queries)) - live
    )
    hpa = yaml.safe_load((K8S / "base" / "hpa.yaml").read_text())
    assert {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]} <= live
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())["rules"][
        "custom"
    ]
    series = {re.match(r"(\w+)", rule["seriesQuery"]).group(1) for rule in rules}  # type: ignore[union-attr]
    assert series <= live
    exposed = {rule["name"]["as"] for rule in rules}
    assert {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]} <= exposed
