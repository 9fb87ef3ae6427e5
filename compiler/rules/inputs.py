"""Values a user types: the image-edit endpoint, free text (Jinja markers), the run name, storage and endpoint
URLs; and the IC-only board's frame count (registered here to keep the rules' order)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from compiler.errors import Diagnostic
from compiler.flows import calls_endpoint, takes_run_name
from compiler.rules.registry import MODEL_ID, Config, err, rule, warn


@rule("A24 B18", "error warning", "image-edit endpoint: a URL is needed; the model id is fixed")
def _endpoint(config: Config, explicit: set[str]) -> list[Diagnostic]:
    if not calls_endpoint(config):
        return []
    book = (
        (config["cookbooks"].get("augmentation_config_ovsl2sl") or {})
        .get("endpoints", {})
        .get("image_edit", {})
    )
    if book.get("model", MODEL_ID) != MODEL_ID:
        return [
            err(
                "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.model",
                "is fixed: the image-edit "
                "model is always nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL (a substitute silently degrades "
                "labels)",
                book.get("model"),
                MODEL_ID,
                "A24",
            )
        ]
    if book.get("url", "http://localhost:8000/v1") != "http://localhost:8000/v1":
        return [
            err(
                "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.url",
                "is not read: choose the endpoint with endpoint=cluster|external and endpoint.url=",
                book.get("url"),
                "endpoint=external endpoint.url=https://<host>/v1",
                "A24",
            )
        ]
    url = config["endpoint"].get("url")
    if not url:
        return [
            err(
                "endpoint.url",
                "is required with endpoint=external (the /v1 base URL reachable from the pods)",
                None,
                "endpoint.url=https://<host>/v1, or save it: python -m compiler.prefs set "
                "external_endpoint_url=https://<host>/v1",
                "A24",
            )
        ]
    if not url.rstrip("/").endswith("/v1"):
        return [
            warn(
                "endpoint.url",
                "does not end with /v1; the client calls <base>/models and <base>/images/edits",
                url,
                "https://<host>/v1",
                "A24",
            )
        ]
    return []


_JINJA = re.compile(r"\{\{|\{%|\{#")
MAX_TEXT = 10_000


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")


@rule(
    "A30 OSMO", "error", "no value may carry Jinja markers (OSMO renders the spec twice) or be absurdly long"
)
def _jinja_in_values(config: Config, explicit: set[str]) -> list[Diagnostic]:
    out = []
    roots = {"knobs": config["knobs"], "cookbooks": config["cookbooks"], "endpoint": config["endpoint"]}
    for root, node in roots.items():
        for path, text in _strings(node, root):
            if _JINJA.search(text):
                out.append(
                    err(
                        path,
                        "contains a Jinja marker ({{, {% or {#) that OSMO's two renders would "
                        "interpret; rephrase it",
                        text,
                        "text without {{, {% or {#",
                        "A30",
                    )
                )
            elif len(text) > MAX_TEXT:
                out.append(
                    err(
                        path,
                        f"is {len(text)} characters long",
                        text[:40] + "...",
                        f"at most {MAX_TEXT} characters",
                    )
                )
    return out


@rule("A1", "warning", "setup flows take no run name (their outputs are fixed artifact URLs)")
def _setup_name(config: Config, explicit: set[str]) -> list[Diagnostic]:
    if not takes_run_name(config) and config.get("name"):
        return [
            warn(
                "name",
                "is ignored: setup flows write fixed artifact URLs under dig_url_root",
                config["name"],
                "(unset)",
                "A1",
            )
        ]
    return []


@rule("A15", "warning", "structural on the IC-only board 1152819000 needs every frame (render_patches=-1)")
def _ic_board_patches(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    if (
        config["flow"]["key"] == "structural"
        and config["board"]["key"] == "1152819000"
        and knobs.get("render_patches") != -1
    ):
        return [
            warn(
                "knobs.render_patches",
                "on board 1152819000 (a single IC, shift ratio 1.0) a few frames yield too few crops",
                knobs["render_patches"],
                "-1",
                "A15",
            )
        ]
    return []


@rule(
    "A3 A4 A24",
    "error",
    "storage roots name a bucket their store accepts and no '..' segments; endpoint URLs a real "
    "host and port",
)
def _url_values(config: Config, explicit: set[str]) -> list[Diagnostic]:
    from compiler.values import endpoint_url_problem, storage_root_problem

    out = []
    for key, value in (
        ("dig_url_root", config.get("dig_url_root")),
        ("knobs.uc3_zip_url_root", config["knobs"].get("uc3_zip_url_root")),
    ):
        problem = isinstance(value, str) and storage_root_problem(value)
        if problem:
            out.append(
                err(
                    key,
                    problem,
                    value,
                    "an OSMO storage prefix such as s3://my-bucket/dig",
                    "A3" if key == "dig_url_root" else "A4",
                )
            )
    url = config["endpoint"].get("url")
    problem = isinstance(url, str) and endpoint_url_problem(url)
    if problem:
        out.append(err("endpoint.url", problem, url, "http(s)://<host>[:<port 1-65535>]/v1", "A24"))
    return out
