"""The S3 probes the storage checks are built of: bounded listings and heads, each turned into report rows."""

from __future__ import annotations

import posixpath

from .report import ERROR, FAIL, OK, Report
from .requirements import Requirement
from .s3 import EndpointUnreachable, NoSuchBucket, NotFound, S3Store, StorageError, dir_prefix, parse_url

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# A basename search (scene USD / real photo not at the documented path) looks at this many keys
# at most, so one misplaced file cannot turn a preflight into a scan of a huge assets tree.
SEARCH_LIMIT = 5000
SETUP_HINT = "run the matching setup flow (setup usecase=<u>, setup_pretrained) or upload it under the root"
SUB_FAILED = object()  # a sub-check already reported its storage error


def s3_join(prefix: str, *parts: str) -> str:
    return posixpath.join(prefix.rstrip("/"), *parts) if prefix else posixpath.join(*parts)


class Probe:
    """One `S3Store` and the `Report` its probes append `Check` rows to."""

    def __init__(self, store: S3Store, report: Report):
        self.store = store
        self.report = report
        self._children: dict[tuple[str, str], tuple[list[str], list[str]]] = {}

    def _sub(self, name: str, target: str, fn, *args):
        """Run one sub-check; a 403 / throttle / 5xx on it becomes that sub-check's error row."""
        try:
            return fn(*args)
        except (NoSuchBucket, EndpointUnreachable, NotFound):
            raise
        except StorageError as exc:
            self.report.add(name, ERROR, target, exc.message, exc.hint)
            return SUB_FAILED

    def _nonempty(self, art: Requirement) -> bool:
        """Row for 'prefix present and holds a non-empty object'; False when it does not."""
        bucket, prefix = parse_url(art.url)
        key = self.store.first_key(bucket, prefix, nonempty=True)
        if key is not None:
            self.report.add(art.role, OK, art.url, f"non-empty (e.g. {key[len(dir_prefix(prefix)) :]})")
            return True
        if self.store.exists_prefix(bucket, prefix):
            self.report.add(
                art.role,
                FAIL,
                art.url,
                "prefix exists but holds only directory markers / zero-byte objects (empty)",
                SETUP_HINT,
            )
        else:
            self.report.add(art.role, FAIL, art.url, "missing: no object under this prefix", SETUP_HINT)
        return False

    def _head_file(self, name: str, bucket: str, key: str, hint: str) -> dict | None:
        url = f"s3://{bucket}/{key}"
        try:
            meta = self.store.head(bucket, key)
        except NotFound:
            self.report.add(name, FAIL, url, "missing", hint)
            return None
        if meta.get("ContentLength", 0) == 0:
            self.report.add(name, FAIL, url, "present but 0 bytes", hint)
            return None
        self.report.add(name, OK, url, f"{meta['ContentLength']} bytes")
        return meta

    def _search_basename(self, bucket: str, prefix: str, basename: str) -> str | None:
        for obj in self.store.iter_objects(bucket, dir_prefix(prefix), max_keys=SEARCH_LIMIT):
            if posixpath.basename(obj["Key"]) == basename and obj.get("Size", 0) > 0:
                return obj["Key"]
        return None

    def _children_of(self, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
        key = (bucket, dir_prefix(prefix))
        if key not in self._children:
            self._children[key] = self.store.list_children(bucket, prefix)
        return self._children[key]

    def _image_in(self, bucket: str, prefix: str) -> tuple[str | None, list[str]]:
        """(first image key, a few other keys seen) in the directory `prefix`, one small listing."""
        keys = self.store.list_keys(bucket, dir_prefix(prefix), max_keys=50)
        for k in keys:
            if k.lower().endswith(IMAGE_EXTS):
                return k, keys
        return None, keys
