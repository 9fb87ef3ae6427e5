"""Values a regex cannot judge: endpoint URLs (host and port) and storage roots (bucket names, path segments).

Each check returns None when the value is fine, else the reason in words. The compiler's rules and
`compiler.prefs set` both call these, so a saved preference is judged like a command-line value.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PATH = re.compile(r"^(/[A-Za-z0-9._~%-]+)*/?$")
# S3 general-purpose bucket naming rules (AWS S3 User Guide, "Bucket naming rules").
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# Google Cloud Storage bucket names: 3-63 characters, lowercase, digits, '-', '_' and '.'.
_GS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def host_problem(host: str) -> str | None:
    """None for a DNS name or an IP literal, else why not."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if len(host) > 253:
        return "the host name is longer than 253 characters"
    labels = host.rstrip(".").split(".")
    bad = [label for label in labels if not _LABEL.match(label)]
    if bad:
        return (
            f"host '{host}' is not a DNS name: label '{bad[0]}' must be 1-63 letters, digits or '-', "
            "not starting or ending with '-'"
        )
    return None


def endpoint_url_problem(url: str) -> str | None:
    """An image-edit base URL: http(s), a real host, a port 1-65535, a plain path, nothing else."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme '{parts.scheme}' is not http or https"
    if parts.username is not None or parts.password is not None:
        return "carries user credentials; the endpoint takes none in its URL"
    if not parts.hostname:
        return "has no host"
    problem = host_problem(parts.hostname)
    if problem:
        return problem
    if port == 0:
        return "port 0 is not a port to connect to"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "has a query or fragment; give the base URL only"
    if not _PATH.match(parts.path) or any(seg in (".", "..") for seg in parts.path.split("/")):
        return f"path '{parts.path}' must be plain segments (letters, digits, . _ ~ % -), no '.' or '..'"
    return None


def bucket_problem(scheme: str, bucket: str) -> str | None:
    if scheme == "s3":
        if not _S3_BUCKET.match(bucket):
            return (
                f"bucket '{bucket}' breaks S3's naming rules: 3-63 characters of lowercase letters, digits, "
                "'.' and '-', starting and ending with a letter or digit (no '_', no uppercase)"
            )
        if ".." in bucket or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
            return f"bucket '{bucket}' breaks S3's naming rules: no '..', not an IP address"
        if bucket.startswith(_S3_RESERVED_PREFIXES) or bucket.endswith(_S3_RESERVED_SUFFIXES):
            return f"bucket '{bucket}' uses a prefix or suffix S3 reserves"
    elif scheme == "gs" and not _GS_BUCKET.match(bucket):
        return (
            f"bucket '{bucket}' breaks Cloud Storage's naming rules: 3-63 characters of lowercase letters, "
            "digits, '.', '_' and '-', starting and ending with a letter or digit"
        )
    return None


def storage_root_problem(url: str) -> str | None:
    """A storage prefix: a bucket its store accepts and no '.', '..' or empty path segments."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "has no scheme://"
    bucket, _, path = rest.partition("/")
    problem = bucket_problem(scheme, bucket)
    if problem:
        return problem
    segments = path.rstrip("/").split("/") if path.rstrip("/") else []
    if any(seg in ("", ".", "..") for seg in segments):
        return (
            "has an empty, '.' or '..' path segment; storage keys are literal, so it would not mean a parent"
        )
    return None
