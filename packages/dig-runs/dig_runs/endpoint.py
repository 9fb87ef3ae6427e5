"""The in-cluster image-edit endpoint: its NIMService manifest and a `GET /v1/models` health check.

The service name, namespace and port come from the `endpoint` group (conf/endpoint/cluster.yaml, the
URL the compiled tasks call); the model id from the compiler's rules; the operator facts below are
spec/endpoint_and_sizing.md §1.3 (= osmo_cli.md §7, the upstream references/nim manifest).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import yaml

IMAGE = {"repository": "vllm/vllm-omni", "tag": "v0.20.0", "pullPolicy": "IfNotPresent"}
AUTH_SECRET = "ngc-api-secret"  # required by the operator's schema, unused by the container
HF_SECRET = "hf-token-secret"
SHM = "32Gi"  # without it the pod crash-loops with `No space left on device` (failure_modes.md C18)
PVC_SIZE = "150Gi"
RESOURCES = {"nvidia.com/gpu": 1, "memory": "128Gi", "ephemeral-storage": "50Gi"}


def endpoint_group(option: str = "cluster") -> dict[str, Any]:
    from compiler.paths import CONF_DIR

    return yaml.safe_load((CONF_DIR / "endpoint" / f"{option}.yaml").read_text(encoding="utf-8"))


def model_id() -> str:
    from compiler.rules import MODEL_ID

    return MODEL_ID


def manifest(option: str = "cluster") -> dict[str, Any]:
    group = endpoint_group(option)
    url = urlparse(group.get("url") or "")
    host = (url.hostname or "").split(".")
    if len(host) < 3 or host[2] != "svc":
        raise ValueError(
            f"endpoint={option}: url {group.get('url')!r} is not an in-cluster service URL "
            "(http://<name>.<namespace>.svc.cluster.local:<port>/v1); a manifest is for endpoint=cluster"
        )
    name, namespace, port = host[0], host[1], url.port or 80
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "image-edit-endpoint"}
    probe = {
        "enabled": True,
        "probe": {
            "httpGet": {"path": "/v1/models", "port": port},
            "initialDelaySeconds": 60,
            "periodSeconds": 30,
            "failureThreshold": 120,
            "timeoutSeconds": 5,
        },
    }
    return {
        "apiVersion": "apps.nvidia.com/v1alpha1",
        "kind": "NIMService",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "labels": labels,
            "image": IMAGE,
            "authSecret": AUTH_SECRET,
            "command": ["vllm", "serve"],
            "args": [model_id(), "--omni", "--host", "0.0.0.0", "--port", str(port)],
            "env": [
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": HF_SECRET, "key": "HF_TOKEN"}}},
                {"name": "HF_HOME", "value": "/model-store/huggingface"},
            ],
            "storage": {
                "pvc": {"create": True, "size": PVC_SIZE, "volumeAccessMode": "ReadWriteMany"},
                "sharedMemorySizeLimit": SHM,
            },
            "replicas": 1,
            "userID": 0,
            "groupID": 0,
            "resources": {"limits": dict(RESOURCES), "requests": dict(RESOURCES)},
            "startupProbe": probe,
            "readinessProbe": probe,
            "livenessProbe": {
                "enabled": True,
                "probe": {
                    "tcpSocket": {"port": port},
                    "initialDelaySeconds": 180,
                    "periodSeconds": 30,
                    "failureThreshold": 10,
                    "timeoutSeconds": 5,
                },
            },
            "expose": {"service": {"type": "ClusterIP", "port": port}},
        },
    }


def manifest_text(option: str = "cluster") -> str:
    head = (
        f"# NIMService for the in-cluster image-edit endpoint, written by `dig endpoint manifest` from "
        f"conf/endpoint/{option}.yaml.\n# Apply: kubectl apply -f <this file>; then kubectl -n "
        f"{manifest(option)['metadata']['namespace']} wait --for=condition=Ready nimservice.apps.nvidia.com/"
        f"{manifest(option)['metadata']['name']} --timeout=60m\n# The pool needs >= 2 GPUs: this service holds one.\n"
    )
    return head + yaml.dump(
        manifest(option), Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=1000
    )


class _NoAliases(yaml.SafeDumper):
    """Repeated blocks (labels, probes) written out in full: kubectl users read this file."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass
class Check:
    url: str
    ok: bool
    reachable: bool
    latency_ms: float | None
    models: list[str]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def check(url: str, *, timeout: float = 5.0) -> Check:
    """GET <base>/models; the fixed model id must be listed (endpoint_and_sizing.md §1.1)."""
    base = url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    target = base + "/models"
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:  # noqa: S310 - a user-given http(s) URL
            body = resp.read()
    except urllib.error.HTTPError as exc:
        ms = (time.perf_counter() - start) * 1000
        return Check(base, False, True, ms, [], f"GET {target}: HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(base, False, False, None, [], f"GET {target}: unreachable ({reason})")
    ms = (time.perf_counter() - start) * 1000
    try:
        models = [str(m.get("id")) for m in json.loads(body).get("data") or []]
    except (ValueError, AttributeError):
        return Check(base, False, True, ms, [], f"GET {target}: not a model list (JSON with data[].id)")
    want = model_id()
    if want not in models:
        return Check(
            base,
            False,
            True,
            ms,
            models,
            f"serves {', '.join(models) or 'no model'}, not {want} (a substitute silently degrades the labels)",
        )
    return Check(base, True, True, ms, models, f"{want} served; {ms:.0f} ms")
