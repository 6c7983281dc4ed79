"""The Kubernetes manifests and the Grafana dashboard, validated offline.

`kubectl kustomize` renders base, each overlay, and overlays with the optional components;
every core resource is checked against the current Kubernetes schema (strict); the
ServiceMonitor (a CRD) is checked for shape. The settings the ConfigMap sets must be ones the
service reads, and every metric the dashboard, the autoscaler and the adapter rules name must
be one the running service exports.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.settings import ENV_PREFIX, ServiceSettings
from tests.builders import ROOT, real_images
from tests.serverlib import Server

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.37.0"
OVERLAYS = ["gpu", "cpu"]
COMPONENTS = ["prometheus-operator", "ingress-nginx", "tensorrt-cache"]
# The API groups of Kubernetes itself: base must apply on a cluster without any CRD.
CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
MONITORING_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="needs kubectl (apt-get install kubectl)"
)

Resource = dict[str, Any]


def kustomize(folder: Path) -> list[Resource]:
    output = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def render(name: str) -> list[Resource]:
    """An overlay by name, or "base"."""
    return kustomize(K8S / (name if name == "base" else f"overlays/{name}"))


def render_with(tmp_path: Path, overlay: str, components: list[str]) -> list[Resource]:
    """An overlay with components added (those it does not take already), the way a user's
    own overlay would take them."""
    own = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    components = [c for c in components if f"../../components/{c}" not in own.get("components", [])]
    folder = tmp_path / f"{overlay}-with-components"
    folder.mkdir()
    up = os.path.relpath(K8S, folder)  # kustomize refuses absolute paths
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{up}/overlays/{overlay}"],
                "components": [f"{up}/components/{name}" for name in components],
            }
        )
    )
    return kustomize(folder)


def by_kind(resources: list[Resource]) -> dict[str, Resource]:
    """The one resource of each kind (Services: see services())."""
    return {r["kind"]: r for r in resources if r["kind"] != "Service"}


def services(resources: list[Resource]) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == "Service"}


def pod_spec(resources: list[Resource]) -> dict[str, Any]:
    return by_kind(resources)["Deployment"]["spec"]["template"]["spec"]


def containers(resources: list[Resource]) -> list[dict[str, Any]]:
    pod = pod_spec(resources)
    return [*pod["containers"], *pod.get("initContainers", [])]


def settings_data(resources: list[Resource]) -> dict[str, str]:
    return by_kind(resources)["ConfigMap"]["data"]


def setting(resources: list[Resource], name: str) -> int:
    """An integer setting as the pods get it: the ConfigMap's value, else the default."""
    value = settings_data(resources).get(ENV_PREFIX + name.upper())
    return int(value if value is not None else ServiceSettings.model_fields[name].default)


def quantity(text: str | int) -> float:
    """A Kubernetes quantity ("512Mi", "2Gi", "3", "500m") as a number (bytes, cores)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"(\d+)(m|[KMG]i?)?", str(text))
    assert match, text
    return int(match[1]) * units.get(match[2] or "", 1)


@needs_kubectl
@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_manifests_render_and_validate_strictly(name: str) -> None:
    import kubernetes_validate

    resources = render(name)
    kinds = sorted(r["kind"] for r in resources)
    core = ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
            "PodDisruptionBudget", "Service", "Service"]  # fmt: skip
    # The GPU pool scales on Prometheus metrics, so it takes the ServiceMonitor component.
    assert kinds == sorted(core + (["ServiceMonitor"] if name == "gpu" else []))
    for resource in resources:
        if resource["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in Kubernetes itself; checked below
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_component_composes_with_every_overlay(overlay: str, tmp_path: Path) -> None:
    import kubernetes_validate

    resources = render_with(tmp_path, overlay, COMPONENTS)
    kinds = {r["kind"] for r in resources}
    assert {"ServiceMonitor", "Ingress", "PersistentVolumeClaim"} <= kinds
    for resource in resources:
        if not resource["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("name", ["base", "cpu"])
def test_applies_without_custom_resource_definitions(name: str) -> None:
    """No monitoring.coreos.com (or any other CRD) kind: `kubectl apply -k` works on a
    cluster without the Prometheus Operator."""
    groups = {r["apiVersion"] for r in render(name)}
    assert groups <= CORE_GROUPS, groups - CORE_GROUPS


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_have_a_port_of_their_own(overlay: str, tmp_path: Path) -> None:
    """The pod serves metrics on a port named `metrics` (the service's own setting); the
    public Service never carries it; the component's ServiceMonitor scrapes exactly it."""
    resources = render_with(tmp_path, overlay, ["prometheus-operator"])
    (server,) = pod_spec(resources)["containers"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports["http"] == setting(resources, "port")
    assert ports["metrics"] == int(settings_data(resources)["CYCLEGAN_METRICS_PORT"])
    assert ports["metrics"] != ports["http"]

    monitor = by_kind(resources)["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [
        s
        for s in services(resources).values()
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme",
                                 "relabelings"}  # fmt: skip
        scraped = [p for s in selected for p in s["spec"]["ports"] if p["name"] == "metrics"]
        assert [p["targetPort"] for p in scraped] == ["metrics"]

    public = services(resources)["cyclegan-translation"]["spec"]["ports"]
    assert [p["targetPort"] for p in public] == ["http"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_the_api_and_metrics_only_from_monitoring(overlay: str) -> None:
    policy = by_kind(render(overlay))["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["egress"] == []
    rules = {p["port"]: rule for rule in policy["ingress"] for p in rule["ports"]}
    assert set(rules) == {"http", "metrics"}
    assert all(p["protocol"] == "TCP" for rule in policy["ingress"] for p in rule["ports"])
    assert "from" not in rules["http"]  # the API: from anywhere
    assert [p["port"] for p in rules["metrics"]["ports"]] == ["metrics"]  # alone in its rule
    monitoring = {"namespaceSelector": {"matchLabels": MONITORING_NAMESPACE}}
    assert rules["metrics"]["from"] == [monitoring]  # that namespace alone


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_spread_across_nodes_and_zones(overlay: str) -> None:
    rules = {c["topologyKey"]: c for c in pod_spec(render(overlay))["topologySpreadConstraints"]}
    assert set(rules) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert rules["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    for rule in rules.values():
        assert rule["maxSkew"] == 1
        assert rule["labelSelector"] == {"matchLabels": SELECTOR}  # the Deployment's own pods
        assert rule["matchLabelKeys"] == ["pod-template-hash"]  # each rollout spreads itself
        assert rule["nodeTaintsPolicy"] == "Honor"  # GPU nodes do not count for the CPU pool


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_is_a_share_that_holds_from_min_to_max(overlay: str) -> None:
    """A percentage: a drain may always take a pod (never blocked at the HPA's minimum), and
    never more than a quarter of them, at any scale the HPA allows."""
    kinds = by_kind(render(overlay))
    budget = kinds["PodDisruptionBudget"]["spec"]
    assert "minAvailable" not in budget
    share = budget["maxUnavailable"]
    assert isinstance(share, str) and share.endswith("%")
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    for pods in range(hpa["minReplicas"], hpa["maxReplicas"] + 1):
        may_go = math.ceil(pods * int(share[:-1]) / 100)  # Kubernetes rounds maxUnavailable up
        assert 1 <= may_go <= math.ceil(pods / 4), (pods, may_go)


def image_reference_is_pinned(image: str) -> bool:
    """A digest, or a tag other than latest (a registry's :port is not a tag)."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and name.rsplit(":", 1)[1] not in ("", "latest")


def test_image_reference_check() -> None:
    assert image_reference_is_pinned("registry.example.com:5000/cyclegan:0.1.0")
    assert image_reference_is_pinned("cyclegan@sha256:" + "a" * 64)
    assert not image_reference_is_pinned("registry.example.com:5000/cyclegan")
    assert not image_reference_is_pinned("cyclegan:latest")


@needs_kubectl
@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_every_image_is_pinned(name: str) -> None:
    resources = render(name)
    images = {box["image"] for box in containers(resources)}
    assert images and all(image_reference_is_pinned(i) for i in images), images
    if name != "base":  # one image per pod: the init container is the server's own image
        assert len(images) == 1


def nginx_size(text: str) -> float:
    """An nginx size ("21m", "512k", "1g", "0" = no limit) in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", text)
    assert match, text
    size = int(match[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match[2].lower()]
    return size or math.inf


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_example_lets_the_largest_allowed_upload_through(
    overlay: str, tmp_path: Path
) -> None:
    resources = render_with(tmp_path, overlay, ["ingress-nginx"])
    ingress = by_kind(resources)["Ingress"]
    notes = ingress["metadata"]["annotations"]
    body_limit = nginx_size(notes["nginx.ingress.kubernetes.io/proxy-body-size"])
    assert body_limit >= setting(resources, "max_bytes")
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > setting(
        resources, "request_timeout_s"
    )
    ports = {p["name"] for p in services(resources)["cyclegan-translation"]["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "cyclegan-translation" and backend["port"]["name"] in ports


@needs_kubectl
@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_home_is_a_writable_volume(name: str) -> None:
    """The root filesystem is read-only: HOME (caches, CUDA's kernel cache) must point into a
    volume the container may write."""
    resources = render(name)
    volumes = {v["name"]: v for v in pod_spec(resources)["volumes"]}
    for box in containers(resources):
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        home = {e["name"]: e.get("value") for e in box.get("env", [])}.get("HOME")
        assert home, f"{box['name']}: no HOME"
        writable = [
            m
            for m in box["volumeMounts"]
            if not m.get("readOnly") and (home + "/").startswith(m["mountPath"].rstrip("/") + "/")
        ]
        assert writable, f"{box['name']}: HOME {home} is on no writable volume"
        assert "emptyDir" in volumes[writable[0]["name"]]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_drain_and_run_unprivileged(overlay: str) -> None:
    resources = render(overlay)
    pod = pod_spec(resources)
    container = pod["containers"][0]
    timeout = setting(resources, "request_timeout_s")
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > timeout + pause
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # room for engine builds
    assert pod["securityContext"]["runAsNonRoot"] is True
    for box in containers(resources):
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
    rollout = by_kind(resources)["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0


@needs_kubectl
def test_gpu_overlay_schedules_on_gpus_and_builds_engines_there() -> None:
    resources = render("gpu")
    pod = pod_spec(resources)
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]
    init = pod["initContainers"][0]
    command = " ".join(init["args"])
    assert "python -m compile tensorrt" in command and "--skip-existing" in command
    max_batch = int(init["args"][init["args"].index("--max-batch") + 1])
    assert max_batch == setting(resources, "max_batch_size")
    assert init["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert settings_data(resources)["CYCLEGAN_BACKEND"] == "tensorrt"
    assert "gpu" in pod["containers"][0]["image"]


def mounts(box: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in box.get("volumeMounts", [])}


@needs_kubectl
@pytest.mark.parametrize("shared", [False, True])
def test_tensorrt_plan_cache_is_written_by_the_init_container_alone(
    shared: bool, tmp_path: Path
) -> None:
    """Plans are code: only the init container mounts the cache (read-write); the server reads
    its own pod's copy, read-only. Shared (the component), the cache is a ReadWriteMany claim."""
    resources = render_with(tmp_path, "gpu", ["tensorrt-cache"] if shared else [])
    pod = pod_spec(resources)
    (server,), (init,) = pod["containers"], pod["initContainers"]
    assert "engine-cache" not in mounts(server)
    assert mounts(server)["models"]["readOnly"] is True
    assert not mounts(init)["engine-cache"].get("readOnly")
    assert init["image"] == server["image"]
    cache = {v["name"]: v for v in pod["volumes"]}["engine-cache"]
    if shared:
        assert set(cache) == {"name", "persistentVolumeClaim"}
        claim = by_kind(resources)["PersistentVolumeClaim"]
        assert cache["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    else:
        assert set(cache) == {"name", "emptyDir"}


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_sets_only_settings_the_service_reads(overlay: str) -> None:
    data = settings_data(render(overlay))
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
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_labels_are_complete_and_selectors_minimal(overlay: str, tmp_path: Path) -> None:
    resources = render_with(tmp_path, overlay, COMPONENTS)
    kinds = by_kind(resources)
    for resource in resources:
        assert set(resource["metadata"]["labels"]) >= LABELS, resource["kind"]
    versions = {r["metadata"]["labels"]["app.kubernetes.io/version"] for r in resources}
    assert len(versions) == 1, versions  # the components carry base's labels
    deployment = kinds["Deployment"]["spec"]
    selectors = [
        deployment["selector"]["matchLabels"],
        *(s["spec"]["selector"] for s in services(resources).values()),
        kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
        kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:  # the version never goes in a selector (they are immutable)
        assert selector == SELECTOR
    assert set(deployment["template"]["metadata"]["labels"]) >= LABELS


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down_and_bounded(overlay: str) -> None:
    resources = render(overlay)
    kinds = by_kind(resources)
    deployment = kinds["Deployment"]["spec"]
    assert "replicas" not in deployment  # the HPA owns the scale
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    pod = deployment["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # *_PORT variables would clash with CYCLEGAN_*
    scratch = 0
    for volume in pod["volumes"]:
        if "emptyDir" in volume:
            assert volume["emptyDir"]["sizeLimit"], volume["name"]
            scratch += quantity(volume["emptyDir"]["sizeLimit"])
    for box in containers(resources):
        assert box["resources"]["requests"]["ephemeral-storage"], box["name"]
        assert box["resources"]["limits"]["ephemeral-storage"], box["name"]
    # emptyDirs count against the pod's ephemeral storage: full, they must not get it evicted.
    limit = sum(quantity(c["resources"]["limits"]["ephemeral-storage"]) for c in pod["containers"])
    assert scratch <= limit


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_wait_longer_than_the_readiness_check(overlay: str) -> None:
    from serving.generator_client import READY_CHECK_TIMEOUT_S

    container = pod_spec(render(overlay))["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] > READY_CHECK_TIMEOUT_S, probe


@needs_kubectl
def test_cpu_pod_memory_holds_the_image_budget() -> None:
    """The CPU pod's limit holds the models and processes (measured about 0.8 GiB with the
    default model) plus the front's image-memory budget."""
    resources = render("cpu")
    limit = pod_spec(resources)["containers"][0]["resources"]["limits"]
    assert quantity(limit["memory"]) >= (setting(resources, "image_memory_mb") + 1024) * 2**20


@needs_kubectl
def test_cpu_pod_gets_what_it_is_limited_to() -> None:
    """Requests equal limits (Guaranteed QoS): the CPU quota the service sizes its threads by is
    what the scheduler reserved, and memory is never overcommitted under it."""
    resources = pod_spec(render("cpu"))["containers"][0]["resources"]
    for name in ("cpu", "memory"):
        assert quantity(resources["requests"][name]) == quantity(resources["limits"][name]), name
    assert quantity(resources["requests"]["cpu"]) >= 1


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
    names = set(re.findall(r"^(cyclegan_[a-z_]+)", httpx.get(server.metrics_url).text, re.M))
    return names | {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_dashboard_and_autoscaler_use_metrics_the_service_exports(server: Server) -> None:
    live = exported(server)
    public = httpx.get(f"{server.url}/metrics", timeout=30)  # the port the Ingress exposes
    assert "cyclegan_requests_total" not in public.text
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
