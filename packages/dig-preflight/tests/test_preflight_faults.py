"""Storage faults over real HTTP: IAM-denied access, throttling / 5xx with bounded retries, endpoints."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest
from dig_preflight.cli import main


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main(["urls", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def bad(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["status"] in ("fail", "error")]


def _set_auth(endpoint: str, count: str) -> None:
    # moto's own switch (what its set_initial_no_auth_action_count decorator calls in server mode).
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@pytest.fixture
def iam_user(s3_env: str):
    """make(statements) -> (access key id, secret) of a fresh IAM user whose only policy is `statements`."""
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_env, region_name="us-east-1")
    made = []

    def make(statements: list[dict]) -> tuple[str, str]:
        name = f"reader-{len(made)}-{id(statements)}"
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="p",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        made.append(name)
        _skip_unless_moto_verifies_listings(s3_env, key["AccessKeyId"], key["SecretAccessKey"])
        return key["AccessKeyId"], key["SecretAccessKey"]

    return make


ALLOW_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def _skip_unless_moto_verifies_listings(endpoint: str, key_id: str, secret: str) -> None:
    """Skip when the moto server refuses every signed ListObjectsV2 of an IAM user.

    moto 5.2.1 answers SignatureDoesNotMatch to a correctly signed ListObjectsV2 (HeadBucket and
    object reads verify), so every policy test would see 403 everywhere and pass or fail for
    the wrong reason. Probe it with the allow-all policy first and say why when it cannot work.
    """
    import boto3
    from botocore.exceptions import ClientError

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="dig-signature-probe"
    )
    _set_auth(endpoint, "0")
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        s3.list_objects_v2(Bucket="dig-signature-probe", Prefix="dig/models/", MaxKeys=50)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "SignatureDoesNotMatch":
            import moto

            pytest.skip(
                f"moto {moto.__version__} rejects signed ListObjectsV2 requests of IAM users "
                "(SignatureDoesNotMatch): IAM policy denial cannot be tested against it"
            )
    finally:
        _set_auth(endpoint, "inf")


@pytest.mark.parametrize(
    ("deny", "denied_under"),
    [
        # Explicit Deny of listing the bucket. AWS also denies HeadBucket then; moto authorizes
        # HeadBucket separately, so every listing-based check is refused.
        ({"Action": "s3:ListBucket", "Resource": "arn:aws:s3:::{b}"}, "dig/"),
        # Explicit Deny of reads below datasets/: the bucket and models/ are fine, the dataset files are not.
        ({"Action": "s3:GetObject", "Resource": "arn:aws:s3:::{b}/dig/datasets/*"}, "dig/datasets/"),
    ],
    ids=["deny-list-bucket", "deny-get-datasets"],
)
def test_preflight_access_denied_by_iam_policy(
    capsys, monkeypatch, make_bucket, snapshot, s3_env, iam_user, deny, denied_under
):
    # Which 403 comes first depends on the workflow's task order and on moto's policy evaluation
    # order (5.2 differs from 5.0): assert on the set of refused rows, never on their order.
    bucket = make_bucket()
    before = snapshot(bucket)
    stmt = {"Effect": "Deny", **{k: v.format(b=bucket) for k, v in deny.items()}}
    key_id, secret = iam_user([ALLOW_ALL, stmt])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    _set_auth(s3_env, "0")
    try:
        rc, report = run(capsys, "--flow", "day0", "--usecase", "pcb", "--root", f"s3://{bucket}/dig")
    finally:
        _set_auth(s3_env, "inf")
    assert rc == 3
    refused = bad(report)
    assert refused and all(r["status"] == "error" for r in refused)
    assert all("access denied (HTTP 403" in r["detail"] and bucket in r["hint"] for r in refused)
    assert all(f"s3://{bucket}/{denied_under}" in r["target"] for r in refused), refused
    if denied_under == "dig/datasets/":
        names = [r["name"] for r in refused]
        assert any(n.endswith("defect_spec.jsonl") for n in names), names
        # models/ stays readable: the checkpoint files are checked and pass.
        assert any(c["name"].endswith("ag_config.yaml") and c["status"] == "ok" for c in report["checks"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    assert snapshot(bucket) == before


def test_preflight_throttling_is_retried_then_passes(capsys, monkeypatch, make_bucket, snapshot, fault_proxy):
    bucket = make_bucket()
    before = snapshot(bucket)
    fault_proxy.fail("defect_spec.jsonl", 503, "SlowDown", times=2)
    fault_proxy.fail("iter_000014000.pt", 500, "InternalError", times=1)
    rc, report = run(
        capsys,
        "--flow",
        "day0",
        "--usecase",
        "pcb",
        "--root",
        f"s3://{bucket}/dig",
        "--endpoint-url",
        fault_proxy.url,
        "--max-attempts",
        "4",
    )
    assert rc == 0, bad(report)
    assert [h[2] for h in fault_proxy.hits_for("defect_spec.jsonl")] == [503, 503, 206]
    assert [h[2] for h in fault_proxy.hits_for("iter_000014000.pt")] == [500, 200]
    # The store's request counter counts every attempt that went on the wire, retries included.
    assert report["s3_requests"] == len(fault_proxy.hits)
    assert snapshot(bucket) == before


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [(503, "SlowDown", "kept throttling"), (500, "InternalError", "answered HTTP 500")],
)
def test_preflight_persistent_faults_stop_after_max_attempts(
    capsys, make_bucket, snapshot, fault_proxy, status, code, kind
):
    bucket = make_bucket()
    before = snapshot(bucket)
    fault_proxy.fail("defect_spec.jsonl", status, code, times=1000)
    rc, report = run(
        capsys,
        "--flow",
        "day1",
        "--usecase",
        "pcb",
        "--root",
        f"s3://{bucket}/dig",
        "--endpoint-url",
        fault_proxy.url,
        "--max-attempts",
        "3",
    )
    assert rc == 3
    assert len(fault_proxy.hits_for("defect_spec.jsonl")) == 3  # bounded: exactly max-attempts, then stop
    (err,) = bad(report)
    assert err["name"] == "raw dataset (infer-all-defects): defect_spec.jsonl" and err["status"] == "error"
    assert kind in err["detail"] and "dig/datasets/pcb/raw/defect_spec.jsonl" in err["detail"]
    # The other checks still ran and passed.
    assert sum(c["status"] == "ok" for c in report["checks"]) >= 8
    assert snapshot(bucket) == before


def test_preflight_custom_endpoint_uses_path_style(capsys, monkeypatch, make_bucket, snapshot, fault_proxy):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    bucket = make_bucket()
    before = snapshot_via(fault_proxy.url, bucket)
    rc, report = run(
        capsys,
        "--flow",
        "day1",
        "--usecase",
        "metal_surface",
        "--root",
        f"s3://{bucket}/dig",
        "--endpoint-url",
        fault_proxy.url,
    )
    assert rc == 0
    assert fault_proxy.hits and all(path.startswith(f"/{bucket}") for _, path, _ in fault_proxy.hits)
    assert set(fault_proxy.hosts) == {
        fault_proxy.url.removeprefix("http://")
    }  # no <bucket>.host virtual hosting
    assert snapshot_via(fault_proxy.url, bucket) == before


def snapshot_via(endpoint: str, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_preflight_empty_endpoint_variable_means_unset(monkeypatch):
    from dig_preflight.s3 import make_client

    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    client = make_client()
    assert client.meta.endpoint_url.startswith("https://s3.")
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.s3 in (None, {})  # AWS proper: virtual-hosted addressing
    custom = make_client(endpoint_url="http://127.0.0.1:9", max_attempts=7)
    assert custom.meta.config.s3 == {"addressing_style": "path"}
    assert custom.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}


def test_preflight_endpoint_unreachable_aborts(capsys, s3_env):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, report = run(
        capsys,
        "--flow",
        "day0",
        "--root",
        "s3://any-bucket/dig",
        "--endpoint-url",
        f"http://127.0.0.1:{port}",
        "--max-attempts",
        "1",
    )
    assert rc == 3
    assert [c["name"] for c in report["checks"]] == ["bucket"]  # stopped instead of timing out per check
    assert "cannot reach the S3 endpoint" in report["checks"][0]["detail"]


def test_preflight_access_denied_everywhere(capsys, monkeypatch, make_bucket, snapshot, s3_env, iam_user):
    bucket = make_bucket()
    before = snapshot(bucket)
    key_id, secret = iam_user(
        [
            ALLOW_ALL,
            {
                "Effect": "Deny",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ]
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    _set_auth(s3_env, "0")
    try:
        rc, report = run(capsys, "--flow", "day1", "--usecase", "glass", "--root", f"s3://{bucket}/dig")
    finally:
        _set_auth(s3_env, "inf")
    assert rc == 3
    rows = report["checks"]
    # A refused HeadBucket is only a warning (prefix-scoped policies refuse it); every check then says 403.
    assert rows[0]["name"] == "bucket" and rows[0]["status"] == "warn" and "403" in rows[0]["detail"]
    assert [r["status"] for r in rows[1:]] == ["error"] * 3
    assert all("access denied (HTTP 403" in r["detail"] for r in rows[1:])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    assert snapshot(bucket) == before
