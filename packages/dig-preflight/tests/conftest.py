"""Fixtures: a real moto S3 server on 127.0.0.1, canonical DIG buckets, a fault-injecting proxy, a stand-in osmo."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import stat
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT_PREFIX = "dig"

# The canonical storage layout (spec/storage_layout.md), small stand-in bytes for the real files.
LAYOUT: dict[str, bytes] = {
    "models/pretrained/pretrained/NVDINOV2/nv_dinov2_classification_model.ckpt": b"ckpt",
    "models/pretrained/pretrained/nvidia/C-RADIO-V3/model.safetensors": b"st",
    "models/pcb/ag_config.yaml": b"model:\n  anomaly_types:\n    - IC+bridge\n    - passive_component+excess_solder\n"
    b"    - passive_component+missing\n",
    "models/pcb/iter_000014000.pt": b"weights",
    "models/metal_surface/ag_config.yaml": b"anomaly_types: {metal_surface: [MT_Blowhole, MT_Break, MT_Crack, "
    b"MT_Fray, MT_Uneven]}\n",
    "models/metal_surface/iter_000010000.pt": b"weights",
    "models/glass/ag_config.yaml": b"anomaly_types: [[Phone, oil], [Phone, scratch], [Phone, stain]]\n",
    "models/glass/iter_000009000.pt": b"weights",
    "datasets/pcb/raw/defect_spec.jsonl": b"".join(
        json.dumps({"defect_type": t, "spatial_dependency": "cad", "roi_prompt_defect_location": ""}).encode()
        + b"\n"
        for t in ("IC+bridge", "passive_component+excess_solder", "passive_component+missing")
    ),
    "datasets/pcb/raw/semantic_segmentation_labels.json": b"{}",
    "datasets/pcb/raw/PCB/IC/clean_image/0001.png": b"png",
    "datasets/pcb/raw/PCB/IC/mask/bridge/0001.png": b"png",
    "datasets/pcb/raw/PCB/passive_component/mask/excess_solder/0001.png": b"png",
    "datasets/pcb/raw/PCB/passive_component/mask/missing/0001.png": b"png",
    "datasets/pcb/assets/spark_lighting.usd": b"#usda 1.0\n",
    "datasets/pcb/assets/pcba_base.usd": b"#usda 1.0\n",
    "datasets/pcb/assets/pcba_main_s_detail.usd": b"#usda 1.0\n",
    "datasets/pcb/assets/aoi_ring_light.usda": b"#usda 1.0\n",
    "datasets/pcb/assets/materials/board.mdl": b"mdl",
    "datasets/pcb/assets/component/r0603.usd": b"#usda 1.0\n",
    "datasets/pcb/assets/ECAD_3D/board.usd": b"#usda 1.0\n",
    "datasets/pcb/assets/PCBA/pcba.usd": b"#usda 1.0\n",
    "datasets/pcb/assets/input_real_image/0603_H100.jpg": b"jpg",
    "datasets/pcb/assets/input_real_image/115_2819_000.jpg": b"jpg",
    "datasets/metal_surface/raw/defect_spec.jsonl": b"".join(
        json.dumps({"defect_type": f"metal_surface+{d}", "spatial_dependency": "free"}).encode() + b"\n"
        for d in ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
    ),
    **{
        f"datasets/metal_surface/raw/metal_surface/mask/{d}/exp1_num_1.png": b"png"
        for d in ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
    },
    "datasets/metal_surface/raw/metal_surface/clean_image/c1.jpg": b"jpg",
    "datasets/glass/raw/defect_spec.jsonl": b"".join(
        json.dumps({"defect_type": f"Phone+{d}", "spatial_dependency": "free"}).encode() + b"\n"
        for d in ("oil", "scratch", "stain")
    ),
    **{f"datasets/glass/raw/Phone/mask/{d}/m1.png": b"png" for d in ("oil", "scratch", "stain")},
    "uploads/glass-zip/mobile_screen.zip": b"PK\x03\x04zip",
    "runs/old-run/anomaly/inference/reconstructed_image/a.png": b"png",
}

_counter = itertools.count()
_BUCKETS: dict[tuple, str] = {}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """AWS_* variables pointing every client the code creates at the moto server."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Keep the developer's ~/.aws out of the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws_config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws_credentials"))
    return moto_endpoint


@pytest.fixture
def admin(s3_env: str):
    """A boto3 client for arranging buckets (the code under test makes its own)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture
def make_bucket(s3_env: str, bulk_put) -> Callable[..., str]:
    """make_bucket(drop=(), extra={}) -> bucket name holding LAYOUT under dig/, minus keys starting with `drop`.

    Buckets are shared by every test asking for the same content (the preflight never writes,
    which each test asserts); `fresh=True` gives a bucket of the test's own to modify.
    """

    def make(
        drop: tuple[str, ...] = (),
        extra: dict[str, bytes] | None = None,
        layout: dict | None = None,
        fresh: bool = False,
    ) -> str:
        ident = (drop, tuple(sorted((extra or {}).items())), id(layout))
        if not fresh and ident in _BUCKETS:
            return _BUCKETS[ident]
        name = f"dig-test-{os.getpid()}-{next(_counter)}"
        base = {k: v for k, v in (LAYOUT if layout is None else layout).items() if not k.startswith(drop)}
        bulk_put(name, {f"{ROOT_PREFIX}/{k}": v for k, v in {**base, **(extra or {})}.items()})
        if not fresh:
            _BUCKETS[ident] = name
        return name

    return make


@pytest.fixture
def bulk_put() -> Callable[[str, dict[str, bytes]], None]:
    """bulk_put(bucket, {key: body}): load many objects straight into the in-process moto backend.

    Arranging thousands of objects over HTTP would dominate the suite; the code under test
    still reads them back over HTTP.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def put(bucket: str, objects: dict[str, bytes]) -> None:
        if bucket not in backend.buckets:
            backend.create_bucket(bucket, "us-east-1")
        for key, body in objects.items():
            backend.put_object(bucket, key, body)

    return put


@pytest.fixture
def snapshot(admin) -> Callable[[str], list[tuple[str, str]]]:
    """snapshot(bucket) -> sorted (key, etag) of every object, to prove a preflight wrote nothing."""

    def snap(bucket: str) -> list[tuple[str, str]]:
        out = []
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out += [(o["Key"], o["ETag"]) for o in page.get("Contents", [])]
        return sorted(out)

    return snap


class FaultProxy:
    """A real HTTP server in front of moto: answers scripted faults N times, then passes through."""

    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.faults: list[dict] = []
        self.hits: list[tuple[str, str, int]] = []
        self.hosts: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.hosts.append(self.headers.get("Host", ""))
                    fault = next((f for f in proxy.faults if f["match"] in self.path and f["left"] > 0), None)
                    if fault:
                        fault["left"] -= 1
                if fault:
                    # Hits are recorded before answering, so a client that has its answer sees its hit.
                    with proxy.lock:
                        proxy.hits.append((self.command, self.path, fault["status"]))
                    xml = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault['code']}</Code>"
                        f"<Message>injected</Message></Error>"
                    ).encode()
                    payload = b"" if self.command == "HEAD" else xml
                    self.send_response(fault["status"])
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                else:
                    conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    with proxy.lock:
                        proxy.hits.append((self.command, self.path, resp.status))
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in (
                            "connection",
                            "transfer-encoding",
                            "content-length",
                            "server",
                            "date",
                        ):
                            self.send_header(k, v)
                    # A HEAD answer carries the object's length without a body.
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                    self.send_header("Content-Length", length or "0")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, match: str, status: int, code: str, times: int) -> None:
        self.faults.append({"match": match, "status": status, "code": code, "left": times})

    def hits_for(self, match: str) -> list[tuple[str, str, int]]:
        return [h for h in self.hits if match in h[1]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def osmo_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """osmo_stub({"credential list": (rc, stdout, stderr), ...}) puts a fake `osmo` first on PATH.

    The stand-in answers by the joined arguments (minus `--format-type json`, which it accepts
    only after the sub-command unless `group_flag=True`) and logs each call to calls.log.
    """

    def install(answers: dict[str, tuple[int, str, str]], *, group_flag: bool = False) -> Path:
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        (bindir / "answers.json").write_text(json.dumps(answers))
        script = bindir / "osmo"
        script.write_text(
            textwrap.dedent(f"""\
            #!{os.sys.executable}
            import json, sys, pathlib
            here = pathlib.Path(__file__).parent
            args = sys.argv[1:]
            with open(here / "calls.log", "a") as log:
                log.write(" ".join(args) + "\\n")
            group_flag = {group_flag!r}
            if "--format-type" in args:
                i = args.index("--format-type")
                if (i == 1) != group_flag:
                    sys.stderr.write("osmo: error: unrecognized arguments: --format-type json\\n")
                    sys.exit(2)
                args = args[:i] + args[i + 2:]
            answers = json.loads((here / "answers.json").read_text())
            rc, out, err = answers.get(" ".join(args), (1, "", "unknown command " + " ".join(args)))
            sys.stdout.write(out)
            sys.stderr.write(err)
            sys.exit(rc)
            """)
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        return bindir

    return install


@pytest.fixture
def no_osmo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PATH without any osmo executable."""
    import shutil

    if shutil.which("osmo"):
        dirs = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "osmo").exists()]
        monkeypatch.setenv("PATH", os.pathsep.join(dirs))
