"""Read-only S3 access shared by the preflights and run outputs: URL parsing, client factory, typed errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

DEFAULT_MAX_ATTEMPTS = 4
# ListObjectsV2 returns at most 1000 keys per page whatever MaxKeys says.
_PAGE_LIMIT = 1000


class StorageError(Exception):
    """A storage call failed; `bucket`, `key` say where, `hint` says what to do."""

    def __init__(self, message: str, *, bucket: str | None = None, key: str | None = None, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.bucket = bucket
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NoSuchBucket(StorageError):
    """The bucket does not exist at this endpoint."""


class AccessDenied(StorageError):
    """HTTP 403, or no usable credentials."""


class NotFound(StorageError):
    """HTTP 404 on a key."""


class EndpointUnreachable(StorageError):
    """The endpoint could not be reached (DNS, refused connection, timeout)."""


class Throttled(StorageError):
    """The store kept answering 503 SlowDown / 429 after every retry."""


class ServerError(StorageError):
    """The store kept answering 5xx (other than throttling) after every retry."""


def parse_url(url: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into `(bucket, prefix)`; the prefix has no leading `/`.

    A trailing `/` on the prefix is kept as given; use `dir_prefix` for directory semantics.
    """
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"S3 URL has no bucket: {url!r} (expected s3://bucket/prefix)")
    return bucket, prefix.lstrip("/")


def dir_prefix(prefix: str) -> str:
    """`a/b` -> `a/b/` so a listing of `models/pcb` never matches `models/pcb2/`; `''` stays `''`."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _env(name: str) -> str | None:
    # An empty variable (common in .env files and CI matrices) means "unset".
    value = os.environ.get(name)
    return value if value else None


def make_client(
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    max_attempts: int | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> Any:
    """A boto3 S3 client; arguments win over `AWS_ENDPOINT_URL`, `AWS_PROFILE`, `AWS_REGION`/`AWS_DEFAULT_REGION`.

    With an endpoint (MinIO-like stores) addressing is path-style. Retries use botocore's
    `standard` mode, bounded by `max_attempts` (else `AWS_MAX_ATTEMPTS`, else 4) total attempts.
    """
    import boto3  # imported here: boto3 costs ~0.2 s and callers like `--help` need none of it
    from botocore.config import Config
    from botocore.exceptions import ProfileNotFound

    endpoint = endpoint_url or _env("AWS_ENDPOINT_URL")
    profile = profile or _env("AWS_PROFILE")
    region = region or _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or "us-east-1"
    if max_attempts is None:
        max_attempts = int(_env("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        s3={"addressing_style": "path"} if endpoint else {},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    try:
        session = boto3.session.Session(profile_name=profile)
    except ProfileNotFound as exc:
        raise StorageError(
            f"AWS profile {profile!r} not found",
            hint="fix AWS_PROFILE / --profile or add the profile to ~/.aws/config",
        ) from exc
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccountProblem",
    "InvalidToken",
    "ExpiredToken",
}


def _where(bucket: str | None, key: str | None) -> str:
    if key is None:
        return f"s3://{bucket}"
    return f"s3://{bucket}/{key}"


class S3Store:
    """Read-only S3 operations with a request counter and errors translated to `StorageError`.

    `requests` counts HTTP attempts actually sent (retries included), so callers and
    benchmarks can prove a check costs O(artifacts), not O(objects in the bucket).
    """

    def __init__(self, client: Any = None, **client_kwargs: Any):
        self._client = client
        self._client_kwargs = client_kwargs
        self.requests = 0
        if client is not None:
            client.meta.events.register("before-send.s3", self._count)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(**self._client_kwargs)
            self._client.meta.events.register("before-send.s3", self._count)
        return self._client

    @property
    def endpoint(self) -> str:
        return self.client.meta.endpoint_url

    def _count(self, **_: Any) -> None:
        self.requests += 1

    @contextlib.contextmanager
    def _translate(self, bucket: str, key: str | None = None) -> Iterator[None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )
        from botocore.exceptions import ConnectTimeoutError as _ConnectTimeout

        where = _where(bucket, key)
        try:
            yield
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise self._from_client_error(code, status, bucket, key, where) from exc
        except (EndpointConnectionError, _ConnectTimeout, ReadTimeoutError, ConnectionClosedError) as exc:
            raise EndpointUnreachable(
                f"cannot reach the S3 endpoint {self.endpoint} while reading {where}: {exc}",
                bucket=bucket,
                key=key,
                hint="check AWS_ENDPOINT_URL / --endpoint-url, the network and any port-forward to the store",
            ) from exc
        except NoCredentialsError as exc:
            raise AccessDenied(
                f"no AWS credentials found for reading {where}",
                bucket=bucket,
                key=key,
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE for this store",
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 client error reading {where}: {exc}", bucket=bucket, key=key) from exc

    def _from_client_error(
        self, code: str, status: int, bucket: str, key: str | None, where: str
    ) -> StorageError:
        if code == "NoSuchBucket":
            return NoSuchBucket(
                f"bucket {bucket!r} does not exist at {self.endpoint}",
                bucket=bucket,
                key=key,
                hint="check the bucket name in dig_url_root, or create the bucket and upload the artifacts",
            )
        if code in _DENIED_CODES or status == 403:
            return AccessDenied(
                f"access denied (HTTP 403, {code or 'Forbidden'}) reading {where}",
                bucket=bucket,
                key=key,
                hint=f"grant s3:ListBucket and s3:GetObject on bucket {bucket!r} to these credentials, "
                "or use a profile that has them",
            )
        if code in {"NoSuchKey", "NotFound", "404"} or status == 404:
            return NotFound(
                f"{where} not found",
                bucket=bucket,
                key=key,
                hint="upload it, or check the key / dig_url_root",
            )
        if code in _THROTTLE_CODES or status in (429, 503):
            return Throttled(
                f"the store kept throttling ({code or status}) reading {where} after every retry",
                bucket=bucket,
                key=key,
                hint="retry later or raise AWS_MAX_ATTEMPTS; check the store's request rate limits",
            )
        if status >= 500:
            return ServerError(
                f"the store answered HTTP {status} ({code}) reading {where} after every retry",
                bucket=bucket,
                key=key,
                hint="check the store's health/logs and retry",
            )
        return StorageError(f"S3 error {code} (HTTP {status}) reading {where}", bucket=bucket, key=key)

    # -- listing -------------------------------------------------------------------------------

    def iter_objects(
        self, bucket: str, prefix: str, *, max_keys: int | None = None, page_size: int = _PAGE_LIMIT
    ) -> Iterator[dict]:
        """Yield `{"Key", "Size", ...}` under `prefix` (raw S3 prefix), at most `max_keys` of them."""
        token: str | None = None
        seen = 0
        while True:
            want = page_size if max_keys is None else min(page_size, max_keys - seen)
            if want <= 0:
                return
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": want}
            if token:
                kwargs["ContinuationToken"] = token
            with self._translate(bucket, prefix or None):
                page = self.client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                yield obj
                seen += 1
                if max_keys is not None and seen >= max_keys:
                    return
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def list_keys(self, bucket: str, prefix: str, *, max_keys: int | None = None) -> list[str]:
        """Keys under `prefix` (raw S3 prefix semantics), at most `max_keys`."""
        return [obj["Key"] for obj in self.iter_objects(bucket, prefix, max_keys=max_keys)]

    def list_children(
        self, bucket: str, prefix: str, *, max_keys: int = _PAGE_LIMIT
    ) -> tuple[list[str], list[str]]:
        """One delimiter listing of the directory `prefix`: `(sub-directory names, file names)`.

        Names are relative to `prefix`, sub-directories without the trailing `/`. One request for
        up to `max_keys` entries: cost is bounded whatever lies deeper in the tree.
        """
        base = dir_prefix(prefix)
        with self._translate(bucket, base or None):
            page = self.client.list_objects_v2(
                Bucket=bucket, Prefix=base, Delimiter="/", MaxKeys=min(max_keys, _PAGE_LIMIT)
            )
        dirs = [p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        files = [o["Key"][len(base) :] for o in page.get("Contents", []) if o["Key"] != base]
        return dirs, files

    def exists_prefix(self, bucket: str, prefix: str) -> bool:
        """True when at least one object lies under the directory `prefix` (one request)."""
        with self._translate(bucket, dir_prefix(prefix) or None):
            page = self.client.list_objects_v2(Bucket=bucket, Prefix=dir_prefix(prefix), MaxKeys=1)
        return page.get("KeyCount", len(page.get("Contents", []))) > 0

    def first_key(
        self, bucket: str, prefix: str, *, nonempty: bool = False, scan_limit: int = 1000
    ) -> str | None:
        """First real object under the directory `prefix`, skipping `…/` directory markers.

        With `nonempty=True` zero-byte objects are skipped too. At most `scan_limit` keys are
        examined (small pages), so a prefix full of markers cannot turn this into a full scan.
        """
        for obj in self.iter_objects(bucket, dir_prefix(prefix), max_keys=scan_limit, page_size=50):
            if obj["Key"].endswith("/"):
                continue
            if nonempty and obj.get("Size", 0) == 0:
                continue
            return obj["Key"]
        return None

    def bucket_exists(self, bucket: str) -> bool:
        """HEAD the bucket: True, False on 404; 403 and others raise."""
        try:
            with self._translate(bucket):
                self.client.head_bucket(Bucket=bucket)
        except NotFound:
            return False
        return True

    # -- objects -------------------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> dict:
        """HEAD one object: its metadata dict (`ContentLength`, `ETag`, ...); `NotFound` if absent."""
        with self._translate(bucket, key):
            return self.client.head_object(Bucket=bucket, Key=key)

    def download(self, bucket: str, key: str, dest_path: str | os.PathLike) -> str:
        """Copy one object to `dest_path` atomically (temp file in the same directory, then rename)."""
        dest = os.fspath(dest_path)
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=parent)
        try:
            with os.fdopen(fd, "wb") as out, self._translate(bucket, key):
                body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
                shutil.copyfileobj(body, out, 1 << 20)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return dest

    def get_bytes(self, bucket: str, key: str, *, max_bytes: int = 1 << 20) -> bytes:
        """Read a small object (a config or spec file) into memory; at most `max_bytes`."""
        from botocore.exceptions import ClientError

        with self._translate(bucket, key):
            try:
                body = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes - 1}")[
                    "Body"
                ]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # a zero-byte object has no byte 0
                raise
            return body.read()
