"""Kubernetes manifests: render every overlay, validate every object, check cross-references.

The overlays are rendered by a small kustomize-compatible renderer (below) that implements the
features deploy/k8s uses: resources, components, namespace, images, replicas, strategic-merge
patches, ConfigMap/Secret generators with kustomize's content-hash suffix and the name
references it rewrites. Where `kubectl kustomize` is installed, a test renders with it too and
requires the same objects, so the renderer cannot drift from the real tool.

Built-in kinds are validated against the Kubernetes JSON schemas bundled in kubernetes-validate
(strict: unknown fields fail); the operators' custom resources against deploy/k8s/schemas.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from detectors.engine import Scanner
from detectors.privacy import Fingerprinter
from detectors.ruleset import load_rule_file, load_rules
from streams.collectors.config import COLLECTOR_KINDS, parse_config
from streams.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
CRD_SCHEMAS = K8S / "schemas"
# Oldest Kubernetes minor the manifests must work on, and the newest the package knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
IMAGE = "roriwatch"
WORKER_METRICS_PORT = Settings().metrics_port
# Env names the manifests set that streams/settings.py does not read: the collectors' --bootstrap.
MANIFEST_ONLY_SETTINGS = {"RORIWATCH_KAFKA_BOOTSTRAP"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "PriorityClass", "CustomResourceDefinition"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


# --------------------------------------------------------------------------- the renderer


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not implement, or is wrong."""


_SMP_MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
                   "volumes": "name", "volumeMounts": "mountPath", "envFrom": None}
_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "components", "namespace", "images",
                       "replicas", "patches", "configMapGenerator", "secretGenerator"}


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _strategic_merge(base[key], value, key) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _SMP_MERGE_KEYS.get(field):
        key = _SMP_MERGE_KEYS[field]
        merged = [dict(item) for item in base]
        for item in patch:
            match = next((m for m in merged if m.get(key) == item.get(key)), None)
            if match is None:
                merged.append(item)
            else:
                merged[merged.index(match)] = _strategic_merge(match, item)
        return merged
    return patch


def _go_json(value: Any) -> str:
    # encoding/json.Marshal: sorted keys, no spaces, UTF-8, and <, >, & escaped.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def kustomize_hash(obj: dict[str, Any]) -> str:
    """The suffix kustomize appends to generated names (api/hasher: name is hashed as "")."""
    if obj["kind"] == "ConfigMap":
        encoded = {"kind": "ConfigMap", "name": "", "data": obj.get("data", {})}
    else:
        encoded = {"kind": "Secret", "type": obj.get("type", "Opaque"), "name": "",
                   "data": obj.get("data", {})}
    digest = hashlib.sha256(_go_json(encoded).encode("utf-8")).hexdigest()
    return digest[:10].translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m",
                                                "e": "t"}))


class Renderer:
    """Build a kustomization directory into a list of objects, like `kustomize build`."""

    def render(self, directory: Path) -> list[dict[str, Any]]:
        """Render the top-level kustomization: generated names get their hash suffix last."""
        objects = self._build(directory, top=True)
        renames: dict[tuple[str, str], str] = {}
        for obj in objects:
            meta = obj["metadata"]
            if meta.pop("__hash__", False):
                new = f"{meta['name']}-{kustomize_hash(obj)}"
                renames[(obj["kind"], meta["name"])] = new
                meta["name"] = new
        for obj in objects:
            _rename_references(obj, renames)
        return objects

    def _build(self, directory: Path, top: bool = False) -> list[dict[str, Any]]:
        path = directory / "kustomization.yaml"
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        unknown = set(spec) - _KUSTOMIZATION_KEYS
        if unknown:
            raise KustomizeError(f"{path}: renderer does not implement {sorted(unknown)}")
        objects: list[dict[str, Any]] = []
        for entry in spec.get("resources", []):
            target = (directory / entry).resolve()
            objects += self._build(target) if target.is_dir() else _load_yaml_docs(target)
        for entry in spec.get("components", []):
            objects = self._apply(directory / entry, objects, component=True)
        return self._transform(directory, spec, objects)

    def _apply(self, directory: Path, objects: list[dict[str, Any]], component: bool) -> list:
        spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
        if component and spec.get("kind") != "Component":
            raise KustomizeError(f"{directory} is listed as a component but is not one")
        added: list[dict[str, Any]] = []
        for entry in spec.get("resources", []):
            added += _load_yaml_docs((directory / entry).resolve())
        return self._transform(directory, spec, objects + added)

    def _transform(self, directory: Path, spec: dict, objects: list) -> list[dict[str, Any]]:
        objects = [copy.deepcopy(obj) for obj in objects]
        for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
            for generator in spec.get(key, []):
                objects = self._generate(directory, kind, generator, objects)
        for patch in spec.get("patches", []):
            if set(patch) != {"path"}:
                raise KustomizeError("only `patches: - path: FILE` is implemented")
            for body in _load_yaml_docs(directory / patch["path"]):
                target = _find(objects, body["kind"], body["metadata"]["name"])
                objects[objects.index(target)] = _strategic_merge(target, body)
        if "namespace" in spec:
            for obj in objects:
                if obj["kind"] not in CLUSTER_SCOPED:
                    obj["metadata"]["namespace"] = spec["namespace"]
        for image in spec.get("images", []):
            for container in _containers(objects):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    new_name = image.get("newName", name)
                    container["image"] = f"{new_name}:{image['newTag']}" if "newTag" in image \
                        else new_name
        for replicas in spec.get("replicas", []):
            for obj in objects:
                if obj["kind"] in WORKLOADS and obj["metadata"]["name"] == replicas["name"]:
                    obj["spec"]["replicas"] = replicas["count"]
        return objects

    def _generate(self, directory: Path, kind: str, generator: dict, objects: list) -> list:
        data: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            for line in (directory / env_file).read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    data[key] = value
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        for entry in generator.get("files", []):
            key, _, file_path = entry.rpartition("=")
            data[key or Path(file_path).name] = (directory / file_path).read_text(
                encoding="utf-8")
        if kind == "Secret":
            data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        name = generator["name"]
        behavior = generator.get("behavior", "create")
        hashed = not generator.get("options", {}).get("disableNameSuffixHash", False)
        if behavior == "merge":
            existing = _find(objects, kind, name)
            existing["data"] = {**existing.get("data", {}), **data}
            return objects
        if behavior != "create":
            raise KustomizeError(f"generator behavior {behavior} is not implemented")
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind,
                               "metadata": {"name": name, "__hash__": hashed}, "data": data}
        if kind == "Secret":
            obj["type"] = "Opaque"
        return [*objects, obj]


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KustomizeError(f"no {kind} named {name}")


def _pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict, dict]]:
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def _containers(objects: list[dict[str, Any]], init: bool = True) -> Iterator[dict]:
    for _, spec in _pod_specs(objects):
        yield from spec.get("containers", [])
        if init:
            yield from spec.get("initContainers", [])


def _rename_references(obj: dict[str, Any], renames: dict[tuple[str, str], str]) -> None:
    def renamed(kind: str, name: str) -> str:
        return renames.get((kind, name), name)

    if obj["kind"] not in WORKLOADS:
        return
    spec = obj["spec"]["template"]["spec"]
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            volume["configMap"]["name"] = renamed("ConfigMap", volume["configMap"]["name"])
        if "secret" in volume:
            volume["secret"]["secretName"] = renamed("Secret", volume["secret"]["secretName"])
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    source[key]["name"] = renamed(kind, source[key]["name"])
        for env in container.get("env", []):
            ref = env.get("valueFrom", {})
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in ref:
                    ref[key]["name"] = renamed(kind, ref[key]["name"])


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """Rendered objects of one overlay (cached: rendering is deterministic)."""
    return tuple(Renderer().render(K8S / "overlays" / overlay))


# --------------------------------------------------------------------------- helpers


def _by_kind(objects, kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def _one(objects, kind: str, name: str) -> dict[str, Any]:
    return _find(list(objects), kind, name)


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _pod_labels(objects) -> list[tuple[dict, dict[str, str]]]:
    return [(obj, obj["spec"]["template"]["metadata"]["labels"]) for obj, _ in _pod_specs(objects)]


def _workers(objects) -> list[dict[str, Any]]:
    """The stream-worker workloads (component=worker), of every role."""
    return [obj for obj, labels in _pod_labels(objects)
            if labels["app.kubernetes.io/component"] == "worker"]


def _worker_role(workload: dict[str, Any]) -> str:
    """The --role a worker workload runs (``all`` when it passes none, as the CLI does)."""
    args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("--role") + 1] if "--role" in args else "all"


def _config_data(objects, name: str) -> dict[str, str]:
    return _one(objects, "ConfigMap", name)["data"]


def _settings_env(objects) -> dict[str, str]:
    [settings] = [cm for cm in _by_kind(objects, "ConfigMap")
                  if cm["metadata"]["name"].startswith("roriwatch-settings")]
    return settings["data"]


def _secret_keys(objects) -> dict[str, set[str]]:
    """Secret name → keys, from Secrets and from ExternalSecrets that create them."""
    keys = {s["metadata"]["name"]: set(s.get("data", {})) for s in _by_kind(objects, "Secret")}
    for external in _by_kind(objects, "ExternalSecret"):
        target = external["spec"].get("target", {}).get("name", external["metadata"]["name"])
        keys.setdefault(target, set()).update(d["secretKey"] for d in external["spec"]["data"])
    return keys


def _container_port(container: dict, port: int | str) -> dict:
    for item in container.get("ports", []):
        if port in (item.get("name"), item["containerPort"]):
            return item
    raise AssertionError(f"container {container['name']} has no port {port}")


def _env_value(container: dict, objects, name: str) -> str | None:
    for env in container.get("env", []):
        if env["name"] == name:
            return env.get("value")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = _config_data(objects, source["configMapRef"]["name"])
            if name in data:
                return data[name]
    return None


def _settings_read_by_code() -> set[str]:
    text = (ROOT / "streams" / "settings.py").read_text(encoding="utf-8")
    return {"RORIWATCH_" + name for name in re.findall(r'"([A-Z][A-Z0-9_]+)"', text)}


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_stack(overlay):
    kinds = {obj["kind"] for obj in render(overlay)}
    assert {"Namespace", "ServiceAccount", "ConfigMap", "Secret" if overlay == "dev"
            else "ExternalSecret", "Deployment", "Service", "ServiceMonitor",
            "PodMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy",
            "PersistentVolumeClaim"} <= kinds
    assert ("ScaledObject" if overlay == "prod" else "HorizontalPodAutoscaler") in kinds
    names = [(o["kind"], o["metadata"]["name"]) for o in render(overlay)]
    assert len(names) == len(set(names)), "duplicate objects"
    namespace = {"dev": "roriwatch-dev", "prod": "roriwatch"}[overlay]
    for obj in render(overlay):
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renderer_agrees_with_kubectl_kustomize(overlay):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python renderer alone is used")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr

    def key(obj: dict) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    theirs = {key(o): o for o in yaml.safe_load_all(result.stdout) if o}
    ours = {key(o): o for o in render(overlay)}
    assert sorted(ours) == sorted(theirs)
    for name, obj in ours.items():
        assert obj == theirs[name], f"{name} differs from kubectl kustomize"


def test_hash_suffix_matches_kustomize_for_special_characters():
    # Fixed point taken from kubectl kustomize (v5.5): literals a=b<&> and c=đá, name x.
    cm = {"kind": "ConfigMap", "data": {"a": "b<&>", "c": "đá"}}
    assert kustomize_hash(cm) == "b86hf4k2bd"


# --------------------------------------------------------------------------- schemas


def _crd_validator(obj: dict) -> jsonschema.Draft7Validator:
    group_version = obj["apiVersion"].replace("/", "-")
    path = CRD_SCHEMAS / f"{obj['kind'].lower()}-{group_version}.json"
    assert path.is_file(), f"no schema for {obj['kind']} {obj['apiVersion']} in {CRD_SCHEMAS}"
    return jsonschema.Draft7Validator(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_its_schema(overlay, version):
    errors = []
    for obj in render(overlay):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith(
                ("apps/", "policy/", "networking.k8s.io/", "autoscaling/")):
            errors += [f"{name}: {e.message} at {list(e.absolute_path)}"
                       for e in _crd_validator(obj).iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_crd_schemas_reject_unknown_fields():
    monitor = copy.deepcopy(_one(render("prod"), "ServiceMonitor", "roriwatch-worker"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert list(_crd_validator(monitor).iter_errors(monitor))


def test_keda_hpa_behavior_is_a_valid_kubernetes_behavior():
    scaled_objects = _by_kind(render("prod"), "ScaledObject")
    assert scaled_objects
    for scaled in scaled_objects:
        behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "probe"},
               "spec": {"scaleTargetRef": scaled["spec"]["scaleTargetRef"], "maxReplicas": 1,
                        "behavior": behavior}}
        kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[0], strict=True)


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configmap_and_secret_key_used_exists(overlay):
    objects = render(overlay)
    configmaps = {cm["metadata"]["name"]: set(cm["data"]) for cm in _by_kind(objects, "ConfigMap")}
    secrets = _secret_keys(objects)
    problems = []
    for obj, spec in _pod_specs(objects):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        for volume in spec.get("volumes", []):
            for source, name_key, known in (("configMap", "name", configmaps),
                                             ("secret", "secretName", secrets)):
                if source in volume:
                    name = volume[source][name_key]
                    if volume[source].get("optional") and name not in known:
                        continue  # e.g. fingerprint watch-lists: none is a valid setup
                    if name not in known:
                        problems.append(f"{where}: volume {volume['name']}: no {source} {name}")
                        continue
                    for item in volume[source].get("items", []):
                        if item["key"] not in known[name]:
                            problems.append(f"{where}: {name} has no key {item['key']}")
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if not any(p["metadata"]["name"] == claim
                           for p in _by_kind(objects, "PersistentVolumeClaim")):
                    problems.append(f"{where}: no PersistentVolumeClaim {claim}")
        for container in spec["containers"] + spec.get("initContainers", []):
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            missing = mounts - {v["name"] for v in spec.get("volumes", [])} - {
                t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
            problems += [f"{where}: mount of undefined volume {m}" for m in missing]
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                known = configmaps if "configMapRef" in source else secrets
                if ref["name"] not in known:
                    problems.append(f"{where}: envFrom {ref['name']} does not exist")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                for key, known in (("configMapKeyRef", configmaps), ("secretKeyRef", secrets)):
                    if key in ref and ref[key]["key"] not in known.get(ref[key]["name"], set()):
                        problems.append(f"{where}: {env['name']}: no key {ref[key]['key']} "
                                        f"in {ref[key]['name']}")
    for auth in _by_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            if ref["key"] not in secrets.get(ref["name"], set()):
                problems.append(f"TriggerAuthentication: no key {ref['key']} in {ref['name']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_labels_match_selectors(overlay):
    objects = render(overlay)
    pods = _pod_labels(objects)
    for obj, labels in pods:
        assert _matches(obj["spec"]["selector"], labels), obj["metadata"]["name"]
    services = _by_kind(objects, "Service")
    for service in services:
        selected = [o for o, labels in pods if _matches(
            {"matchLabels": service["spec"]["selector"]}, labels)]
        assert selected, f"Service {service['metadata']['name']} selects no pods"
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "PodMonitor"):
        for obj in _by_kind(objects, kind):
            selector = obj["spec"].get("podSelector", obj["spec"].get("selector"))
            if selector == {}:
                continue  # the namespace-wide default deny
            assert any(_matches(selector, labels) for _, labels in pods), \
                f"{kind} {obj['metadata']['name']} selects no pods"
    for monitor in _by_kind(objects, "ServiceMonitor"):
        assert any(_matches(monitor["spec"]["selector"], s["metadata"]["labels"])
                   for s in services), "ServiceMonitor selects no Service"
    for stateful in _by_kind(objects, "StatefulSet"):
        service = _one(objects, "Service", stateful["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None", "a StatefulSet's service is headless"
    for scaler in _by_kind(objects, "ScaledObject") + _by_kind(objects, "HorizontalPodAutoscaler"):
        ref = scaler["spec"]["scaleTargetRef"]
        _one(objects, ref["kind"], ref["name"])
    for pod_spec in (spec for _, spec in _pod_specs(objects)):
        _one(objects, "ServiceAccount", pod_spec["serviceAccountName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_ports_match_the_scrape_config(overlay):
    objects = render(overlay)
    settings = _settings_env(objects)
    assert int(settings["RORIWATCH_METRICS_PORT"]) == WORKER_METRICS_PORT
    # Worker: ServiceMonitor port name -> Service port -> container port -> settings.
    [monitor] = _by_kind(objects, "ServiceMonitor")
    workers = _workers(objects)
    assert workers
    for worker in workers:
        labels = worker["spec"]["template"]["metadata"]["labels"]
        [service] = [s for s in _by_kind(objects, "Service")
                     if _matches({"matchLabels": s["spec"]["selector"]}, labels)
                     and _matches(monitor["spec"]["selector"], s["metadata"]["labels"])]
        container = worker["spec"]["template"]["spec"]["containers"][0]
        for endpoint in monitor["spec"]["endpoints"]:
            [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            target = _container_port(container, port["targetPort"])
            assert target["containerPort"] == int(settings["RORIWATCH_METRICS_PORT"])
        annotations = worker["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == WORKER_METRICS_PORT
        probe = " ".join(container["readinessProbe"]["exec"]["command"])
        assert f"127.0.0.1:{WORKER_METRICS_PORT}/metrics" in probe
    # Collectors: PodMonitor port name -> container port -> the collector config's metrics.port.
    [pod_monitor] = _by_kind(objects, "PodMonitor")
    collectors = [d for d in _by_kind(objects, "Deployment")
                  if _matches(pod_monitor["spec"]["selector"],
                              d["spec"]["template"]["metadata"]["labels"])]
    assert len(collectors) == 3
    for deployment in collectors:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        config = _collector_config(objects, deployment)
        for endpoint in pod_monitor["spec"]["podMetricsEndpoints"]:
            assert _container_port(container, endpoint["port"])["containerPort"] == \
                config.metrics.port
        assert config.metrics.address == "0.0.0.0"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == config.metrics.port


def _collector_config(objects, deployment: dict):
    """Parse the config file a collector Deployment passes with --config."""
    spec = deployment["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    config_path = Path(args[args.index("--config") + 1])
    [mount] = [m for m in spec["containers"][0]["volumeMounts"]
               if config_path.parent == Path(m["mountPath"])]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    data = _config_data(objects, volume["configMap"]["name"])
    [item] = [i for i in volume["configMap"]["items"] if i["path"] == config_path.name]
    return parse_config(yaml.safe_load(data[item["key"]]), origin=str(config_path),
                        config_dir=Path("/"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_collectors_run_a_valid_config_of_their_kind(overlay):
    objects = render(overlay)
    collectors = [d for d in _by_kind(objects, "Deployment") if d not in _workers(objects)]
    assert len(collectors) == 3
    for deployment in collectors:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        assert args[0] == "collect" and args[1] in COLLECTOR_KINDS
        config = _collector_config(objects, deployment)
        assert config.sources_for(args[1]), f"{args[1]} config has no {args[1]} sources"
        state_mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "state"]
        assert state_mounts == [str(config.state_dir)], "checkpoints must be on the volume"
        assert "$(RORIWATCH_KAFKA_BOOTSTRAP)" in args
        for source in config.sources_for(args[1]):
            for address in source.options.get("listen", []):
                parts = urlsplit(address)
                port = _container_port(container, f"syslog-{parts.scheme}")
                assert port["containerPort"] == parts.port
                assert port["protocol"] == parts.scheme.upper()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_through_what_the_settings_need(overlay):
    objects = render(overlay)
    settings = _settings_env(objects)
    kafka = urlsplit(settings["RORIWATCH_BROKER"]).port
    elasticsearch = urlsplit(settings["RORIWATCH_ES_URL"]).port
    # Only index pods write to Elasticsearch; scan pods must not even reach it.
    needed = {
        ("worker", "scan"): {kafka, 53},
        ("worker", "index"): {kafka, elasticsearch, 53},
        ("collector", None): {int(settings["RORIWATCH_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1]), 53,
                              443},
    }
    forbidden = {("worker", "scan"): {elasticsearch}}
    policies = _by_kind(objects, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
               and not p["spec"].get("egress") for p in policies), "no default deny"
    for obj, labels in _pod_labels(objects):
        kind = (labels["app.kubernetes.io/component"], labels.get("roriwatch.io/role"))
        mine = [p for p in policies if p["spec"]["podSelector"]
                and _matches(p["spec"]["podSelector"], labels)]
        egress_ports = {port["port"] for p in mine for rule in p["spec"].get("egress", [])
                        for port in rule.get("ports", [])}
        assert needed[kind] <= egress_ports, (obj["metadata"]["name"], egress_ports)
        assert not forbidden.get(kind, set()) & egress_ports, (obj["metadata"]["name"],
                                                              egress_ports)
        ingress_ports = {port["port"] for p in mine for rule in p["spec"].get("ingress", [])
                         for port in rule.get("ports", [])}
        container = obj["spec"]["template"]["spec"]["containers"][0]
        for port in ingress_ports:
            _container_port(container, port)  # named ports must exist on the container
        assert "metrics" in ingress_ports, f"{obj['metadata']['name']} cannot be scraped"


# --------------------------------------------------------------------------- hardening


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_read_only_with_limits_and_probes(overlay):
    uid = _dockerfile_uid()
    for obj, spec in _pod_specs(render(overlay)):
        name = obj["metadata"]["name"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in security["capabilities"], where
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][section]), where
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), \
                f"{where}: a read-only root needs a writable /tmp"
        for container in spec["containers"]:
            assert "livenessProbe" in container and "readinessProbe" in container, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_dockerfile_image_with_a_tag(overlay):
    images = {c["image"] for c in _containers(render(overlay))}
    assert len(images) == 1, "every component runs the one roriwatch image"
    [image] = images
    name, _, tag = image.rpartition(":")
    assert name.endswith("/" + IMAGE) and tag and tag != "latest"
    if overlay == "prod":
        project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        version = re.search(r'^version = "([^"]+)"', project, re.M).group(1)
        assert tag.split("@")[0] == version, "prod image tag must be the package version"


def _dockerfile_uid() -> int:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\d+)(?::\d+)?\s*$", text, re.M)
    assert users, "the Dockerfile must switch to a numeric non-root USER"
    return int(users[-1])


def test_dockerfile_is_multi_stage_pinned_and_non_root():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert len(stages) >= 2, "build and runtime stages"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert all(image == "${PYTHON_IMAGE}" for image, _ in stages)
    assert "COPY --from=build" in text
    assert _dockerfile_uid() != 0
    assert re.search(r'^ENTRYPOINT \["roriwatch"\]', text, re.M)
    assert f"EXPOSE {WORKER_METRICS_PORT}" in text
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[ignored.index("*") + 1:], "allow-list after '*'"
    assert {"!streams/", "!detectors/", "!pyproject.toml"} <= set(ignored)
    # Everything the build COPYs must be let through the allow-list.
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.M):
        for item in source.split():
            assert f"!{item}" in ignored or f"!{item}/" in ignored, item


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_env_names_are_settings_the_code_reads(overlay):
    objects = render(overlay)
    names = set(_settings_env(objects))
    for container in _containers(objects):
        names |= {env["name"] for env in container.get("env", [])}
    unknown = {n for n in names if n.startswith("RORIWATCH_")} - _settings_read_by_code() \
        - MANIFEST_ONLY_SETTINGS
    assert not unknown, f"not read by streams/settings.py: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_configmap_loads(overlay, tmp_path):
    objects = render(overlay)
    env = dict(_settings_env(objects))
    key_file = tmp_path / "hmac-key"
    key_file.write_text("synthetic-test-key-0123456789abcdef")
    env["RORIWATCH_HMAC_KEY_FILE"] = str(key_file)
    # What the Secret adds through env (secretKeyRef); synthetic values.
    for container in _containers(objects, init=False):
        for item in container.get("env", []):
            if "secretKeyRef" in item.get("valueFrom", {}):
                env[item["name"]] = "synthetic-" + item["valueFrom"]["secretKeyRef"]["key"]
    settings = load_settings(env)
    assert settings.production is (overlay == "prod")
    if overlay == "prod":
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism and settings.kafka_ssl_cafile
        assert settings.es_url.startswith("https://") and settings.es_ca_certs
    assert settings.fingerprinter() is not None
    for path in settings.rules_files:
        mounted = [m for c in _containers(objects, init=False) for m in c["volumeMounts"]
                   if Path(path).parent == Path(m["mountPath"])]
        assert mounted, f"{path} is not mounted"


# Which file-valued settings each container reads: they must be files in its mounted volumes.
FILES_NEEDED = {
    "worker": ("RORIWATCH_HMAC_KEY_FILE", "RORIWATCH_KAFKA_SSL_CAFILE", "RORIWATCH_ES_CA_CERTS",
               "RORIWATCH_RULES_FILES"),
    "es-setup": ("RORIWATCH_ES_CA_CERTS",),
    "collector": ("RORIWATCH_KAFKA_SSL_CAFILE",),
}


def _mounted_files(objects, spec: dict, container: dict) -> set[str]:
    """Absolute paths of the files a container sees through its ConfigMap/Secret volumes."""
    files = set()
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        source = volume.get("configMap") or volume.get("secret")
        if source is None:
            continue
        if "items" in source:
            names = [item["path"] for item in source["items"]]
        elif source.get("optional"):
            continue
        elif "configMap" in volume:
            names = list(_config_data(objects, source["name"]))
        else:
            names = list(_secret_keys(objects)[source["secretName"]])
        files |= {str(Path(mount["mountPath"]) / name) for name in names}
    return files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_file_settings_point_at_mounted_files(overlay):
    objects = render(overlay)
    env = _settings_env(objects)
    for obj, spec in _pod_specs(objects):
        for container in spec["containers"] + spec.get("initContainers", []):
            files = _mounted_files(objects, spec, container)
            # A container's own `env` overrides the ConfigMap (index pods blank the key file).
            seen = {**env, **{item["name"]: item["value"] for item in container.get("env", [])
                              if "value" in item}}
            for name in FILES_NEEDED[container["name"]]:
                for path in filter(None, seen[name].split(":")):
                    assert path in files, f"{obj['metadata']['name']}/{container['name']}: " \
                                          f"{name}={path} is not a mounted file"
    assert "RORIWATCH_HMAC_KEY" not in env, "the key must come from the Secret, never the ConfigMap"


def test_index_pods_hold_neither_the_fingerprint_key_nor_the_rules():
    """Least privilege: indexing never fingerprints, so the key lives in scan pods only."""
    for overlay in OVERLAYS:
        objects = render(overlay)
        for obj, spec in _pod_specs(objects):
            role = obj["metadata"].get("labels", {}).get("roriwatch.io/role")
            volumes = {v["name"] for v in spec.get("volumes", [])}
            secret_items = {item["key"] for v in spec.get("volumes", []) if "secret" in v
                            for item in v["secret"].get("items", [])}
            if role == "index":
                assert "hmac-key" not in secret_items and "rules" not in volumes, obj["metadata"]
            elif role == "scan":
                assert "hmac-key" in secret_items, obj["metadata"]


def test_watchlist_rules_in_the_configmap_load_and_pass_their_examples():
    path = K8S / "base" / "config" / "keyword-watchlists.yaml"
    rules = load_rule_file(path)
    assert rules and all(rule.category == "watchlist" for rule in rules)
    scanner = Scanner(load_rules([path]), Fingerprinter(b"synthetic-test-key-0123456789"))
    for rule in rules:
        for text in rule.examples_match:
            assert rule.id in {f.detector for f in scanner.scan(text)}, (rule.id, text)
        for text in rule.examples_no_match:
            assert rule.id not in {f.detector for f in scanner.scan(text)}, (rule.id, text)


def test_keda_scales_each_roles_consumer_group_within_the_partitions():
    from streams.app import consumer_group

    objects = render("prod")
    env = _settings_env(objects)
    settings = Settings(app_id=env["RORIWATCH_APP_ID"])
    feeds = {env[f"RORIWATCH_TOPIC_{feed.upper()}"] for feed in Settings().feed_topics()}
    topics_of_role = {"scan": feeds, "index": {env["RORIWATCH_TOPIC_ALERTS"]}}
    scaled_roles = []
    for scaled in _by_kind(objects, "ScaledObject"):
        spec = scaled["spec"]
        target = _one(objects, spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"])
        role = _worker_role(target)
        scaled_roles.append(role)
        assert spec["maxReplicaCount"] <= int(env["RORIWATCH_TOPIC_PARTITIONS"])
        labels = target["spec"]["template"]["metadata"]["labels"]
        [pdb] = [p for p in _by_kind(objects, "PodDisruptionBudget")
                 if _matches(p["spec"]["selector"], labels)]
        assert spec["minReplicaCount"] > pdb["spec"]["maxUnavailable"], \
            f"a drain keeps one {role} worker"
        assert {t["metadata"]["topic"] for t in spec["triggers"]} == topics_of_role[role]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            assert trigger["metadata"]["consumerGroup"] == consumer_group(settings, role)
            assert trigger["metadata"]["bootstrapServers"] == env["RORIWATCH_KAFKA_BOOTSTRAP"]
            _one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert sorted(scaled_roles) == ["index", "scan"]
    assert urlsplit(env["RORIWATCH_BROKER"]).netloc == env["RORIWATCH_KAFKA_BOOTSTRAP"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_run_split_roles_each_with_only_what_it_needs(overlay):
    """Production layout: one scan and one index workload (docs/reliability.md, slow consumer).

    In a combined worker a slow Elasticsearch stops detection; split, only the index role needs
    Elasticsearch, so only it gets the set-up init container and the API key.
    """
    objects = render(overlay)
    workers = {_worker_role(w): w for w in _workers(objects)}
    assert sorted(workers) == ["index", "scan"] and len(_workers(objects)) == 2
    for role, workload in workers.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["roriwatch.io/role"] == role
        budgets = [p for p in _by_kind(objects, "PodDisruptionBudget")
                   if _matches(p["spec"]["selector"], labels)]
        assert len(budgets) == 1, f"{role}: a pod selected by two budgets cannot be evicted"
        spec = workload["spec"]["template"]["spec"]
        env = {e["name"] for c in spec["containers"] + spec.get("initContainers", [])
               for e in c.get("env", [])}
        init = [c["name"] for c in spec.get("initContainers", [])]
        if role == "index":  # writes to Elasticsearch: templates first, and its key
            assert init == ["es-setup"] and "RORIWATCH_ES_API_KEY" in env
        else:  # never talks to Elasticsearch: no key to leak
            assert not init and "RORIWATCH_ES_API_KEY" not in env


def test_dev_broker_and_bootstrap_agree():
    env = _settings_env(render("dev"))
    assert urlsplit(env["RORIWATCH_BROKER"]).netloc == env["RORIWATCH_KAFKA_BOOTSTRAP"]


def test_commands_in_the_manifests_exist():
    from streams.cli import build_parser

    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    used = {c["args"][0] for c in _containers(render("prod"))}
    assert "collect" in commands
    missing = used - commands
    if missing and importlib.util.find_spec("streams.pipeline_commands") is None:
        pytest.skip(f"{sorted(missing)} come with streams/pipeline_commands.py, not merged yet")
    assert not missing, f"roriwatch has no command(s) {sorted(missing)}"


def test_prometheus_rule_is_generated_from_rules_yml():
    name = "roriwatch_sync_prometheusrule"
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "deploy" / "prometheus" / "sync_prometheusrule.py")
    sync_prometheusrule = importlib.util.module_from_spec(spec)
    sys.modules[name] = sync_prometheusrule
    spec.loader.exec_module(sync_prometheusrule)
    current = sync_prometheusrule.TARGET.read_text(encoding="utf-8")
    assert current == sync_prometheusrule.render(), \
        "stale: run python deploy/prometheus/sync_prometheusrule.py"
