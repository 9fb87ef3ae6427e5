"""Benchmark: S3 requests and wall time of a full Day 0 pcb preflight as the bucket grows (moto server).

Baseline, measured in the same run: one full listing of the DIG root (what a check that lists
everything, like parsing `osmo data list` output, costs). Usage:
    .venv/bin/python bench/preflight.py [--sizes 1000 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

SPEC = b"".join(
    json.dumps({"defect_type": t, "spatial_dependency": "cad"}).encode() + b"\n"
    for t in ("IC+bridge", "passive_component+excess_solder", "passive_component+missing")
)
LAYOUT = {
    "models/pretrained/pretrained/NVDINOV2/nv_dinov2_classification_model.ckpt": b"c",
    "models/pcb/ag_config.yaml": b"anomaly_types: [IC+bridge, passive_component+excess_solder, "
    b"passive_component+missing]\n",
    "models/pcb/iter_000014000.pt": b"w",
    "datasets/pcb/raw/defect_spec.jsonl": SPEC,
    "datasets/pcb/raw/PCB/IC/mask/bridge/0001.png": b"p",
    "datasets/pcb/raw/PCB/passive_component/mask/excess_solder/0001.png": b"p",
    "datasets/pcb/raw/PCB/passive_component/mask/missing/0001.png": b"p",
    "datasets/pcb/assets/spark_lighting.usd": b"u",
    **{
        f"datasets/pcb/assets/{f}": b"u"
        for f in (
            "pcba_main_s_detail.usd",
            "pcba_base.usd",
            "aoi_ring_light.usda",
            "component/c.usd",
            "ECAD_3D/e.usd",
            "PCBA/p.usd",
        )
    },
}
# Where the bulk of a real bucket sits: pretrained weights, clean images, asset trees, old runs.
FILLER_DIRS = (
    "models/pretrained/pretrained/nvidia/shards",
    "datasets/pcb/raw/PCB/IC/clean_image",
    "datasets/pcb/assets/materials",
    "runs/day0-0001/anomaly/inference/reconstructed_image",
)


def load_bucket(backend, bucket: str, n_objects: int) -> None:
    backend.create_bucket(bucket, "us-east-1")
    for key, body in LAYOUT.items():
        backend.put_object(bucket, f"dig/{key}", body)
    for i in range(n_objects - len(LAYOUT)):
        backend.put_object(bucket, f"dig/{FILLER_DIRS[i % len(FILLER_DIRS)]}/{i:06d}.bin", b"x")


def preflight_once(bucket: str) -> tuple[int, float, int]:
    import yaml
    from dig_preflight.report import Report
    from dig_preflight.requirements import requirements
    from dig_preflight.s3 import S3Store
    from dig_preflight.storage import StoragePreflight

    golden = Path(__file__).resolve().parents[1] / "golden/day0/pcb__0603_H100__pretrained.yaml"
    doc = yaml.safe_load(golden.read_text().replace("s3://osmo-workflows/dig", f"s3://{bucket}/dig"))
    t0 = time.perf_counter()
    store = S3Store()
    report = StoragePreflight(store, Report("bench")).run(requirements(doc, name="bench-new"))
    return store.requests, time.perf_counter() - t0, report.exit_code


def full_scan_once(bucket: str) -> tuple[int, float, int]:
    from dig_preflight.s3 import S3Store

    t0 = time.perf_counter()
    store = S3Store()
    n = len(store.list_keys(bucket, "dig/"))
    return store.requests, time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    print(
        f"Day 0 pcb preflight vs full listing of the root; median of {args.runs} runs; moto server {host}:{port}"
    )
    print(
        f"{'objects':>8} | {'preflight req':>13} {'preflight ms':>12} | {'full-scan req':>13} {'full-scan ms':>12}"
        f" | {'req ratio':>9} {'time ratio':>10}"
    )
    try:
        for n in args.sizes:
            bucket = f"bench-{n}"
            load_bucket(backend, bucket, n)
            pre = [preflight_once(bucket) for _ in range(args.runs)]
            assert all(code == 0 for _, _, code in pre), "bench bucket should pass the preflight"
            scan = [full_scan_once(bucket) for _ in range(args.runs)]
            assert all(count == n for _, _, count in scan)
            p_req = statistics.median(r for r, _, _ in pre)
            p_ms = statistics.median(t for _, t, _ in pre) * 1000
            s_req = statistics.median(r for r, _, _ in scan)
            s_ms = statistics.median(t for _, t, _ in scan) * 1000
            print(
                f"{n:>8} | {p_req:>13.0f} {p_ms:>12.1f} | {s_req:>13.0f} {s_ms:>12.1f}"
                f" | {s_req / p_req:>8.2f}x {s_ms / p_ms:>9.2f}x"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
