"""Check a flow's required storage artifacts with bounded, read-only S3 requests."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from .report import ERROR, FAIL, OK, SKIP, WARN, Report
from .requirements import SCENE_TREES, Requirement
from .s3 import (
    AccessDenied,
    EndpointUnreachable,
    NoSuchBucket,
    NotFound,
    S3Store,
    StorageError,
    dir_prefix,
    parse_url,
)
from .storage_datasets import DatasetChecks
from .storage_probe import SEARCH_LIMIT, SUB_FAILED, s3_join

EXIT_OK, EXIT_MISSING, EXIT_USAGE, EXIT_STORAGE = 0, 1, 2, 3


class _Abort(Exception):
    """Storage cannot be read at all (endpoint down): stop instead of timing out once per check."""


class StoragePreflight(DatasetChecks):
    """Runs `Requirement` checks against one `S3Store`, appending `Check` rows to a `Report`.

    The probes are `storage_probe.Probe`'s, the checkpoint/raw kinds `storage_datasets.DatasetChecks`'.
    """

    # -- driver --------------------------------------------------------------------------------

    def run(self, artifacts: Iterable[Requirement]) -> Report:
        artifacts = list(artifacts)
        bad_buckets: set[str] = set()
        try:
            for bucket in dict.fromkeys(parse_url(a.url)[0] for a in artifacts):
                if not self._check_bucket(bucket):
                    bad_buckets.add(bucket)
            for art in artifacts:
                bucket = parse_url(art.url)[0]
                if bucket in bad_buckets:
                    self.report.add(
                        art.role, SKIP, art.url, f"not checked: bucket {bucket!r} unusable (see above)"
                    )
                    continue
                self._guarded(art)
        except _Abort:
            pass
        self.report.exit_code = self.exit_code()
        self.report.extra["s3_requests"] = self.store.requests
        return self.report

    def exit_code(self) -> int:
        statuses = {c.status for c in self.report.checks}
        if ERROR in statuses:
            return EXIT_STORAGE
        if FAIL in statuses:
            return EXIT_MISSING
        return EXIT_OK

    def _check_bucket(self, bucket: str) -> bool:
        target = f"s3://{bucket}"
        try:
            if not self.store.bucket_exists(bucket):
                _raise_no_bucket(bucket, self.store)
        except NoSuchBucket as exc:
            self.report.add("bucket", FAIL, target, exc.message, exc.hint)
            return False
        except EndpointUnreachable as exc:
            self.report.add("bucket", ERROR, target, exc.message, exc.hint)
            raise _Abort from exc
        except AccessDenied as exc:
            # Prefix-scoped policies (s3:ListBucket with an s3:prefix condition) refuse HeadBucket
            # yet allow the listings the checks need: say so and let each check find out.
            self.report.add("bucket", WARN, target, f"{exc.message}; checking the prefixes anyway")
            return True
        except StorageError as exc:
            self.report.add("bucket", ERROR, target, exc.message, exc.hint)
            return False
        self.report.add("bucket", OK, target, f"reachable at {self.store.endpoint}")
        return True

    def _guarded(self, art: Requirement) -> None:
        try:
            getattr(self, f"_check_{art.kind}")(art)
        except NoSuchBucket as exc:
            self.report.add(art.role, FAIL, art.url, exc.message, exc.hint)
        except EndpointUnreachable as exc:
            self.report.add(art.role, ERROR, art.url, exc.message, exc.hint)
            raise _Abort from exc
        except StorageError as exc:
            self.report.add(art.role, ERROR, art.url, exc.message, exc.hint)

    # -- artifact kinds ------------------------------------------------------------------------

    def _check_prefix(self, art: Requirement) -> None:
        self._nonempty(art)

    def _check_pretrained(self, art: Requirement) -> None:
        # setup_pretrained writes {{output}}/pretrained: the artifact holds a pretrained/ tree,
        # which finetune reads as <input>/pretrained and inference finds by name.
        if not self._nonempty(art):
            return
        bucket, prefix = parse_url(art.url)
        sub = s3_join(prefix, "pretrained")
        name = f"{art.role}: pretrained/"
        if self.store.first_key(bucket, sub, nonempty=True):
            self.report.add(name, OK, f"s3://{bucket}/{dir_prefix(sub)}")
        else:
            self.report.add(
                name,
                FAIL,
                f"s3://{bucket}/{dir_prefix(sub)}",
                "no pretrained/ tree inside (finetune reads <input>/pretrained)",
                "run setup_pretrained, or upload so that the tree sits under models/pretrained/pretrained/",
            )

    def _check_assets(self, art: Requirement) -> None:
        if not self._nonempty(art):
            return
        bucket, prefix = parse_url(art.url)
        scene = art.params.get("scene")
        if scene in SCENE_TREES:
            self._check_scene_tree(art, bucket, prefix, scene)
        for label, rel, hint in (
            (
                "scene",
                art.params.get("scene"),
                "upload the scene USD tree, or compile with knobs.scene_filename=<file>",
            ),
            (
                "real photo",
                art.params.get("real_image"),
                "upload the board photo, or compile with knobs.real_image_filename=<file>",
            ),
        ):
            if rel:
                self._check_asset_file(
                    f"{art.role}: {label} {posixpath.basename(rel)}", bucket, prefix, rel, hint
                )

    def _check_scene_tree(self, art: Requirement, bucket: str, prefix: str, scene: str) -> None:
        # The scene references its peers by relative path: the whole tree must be there.
        tree_dirs, tree_files = SCENE_TREES[scene]
        dirs, files = self._children_of(bucket, prefix)
        lacking = [f"{d}/" for d in tree_dirs if d not in dirs] + [f for f in tree_files if f not in files]
        if lacking:
            self.report.add(
                f"{art.role}: USD tree",
                FAIL,
                art.url,
                f"missing beside {scene}: {', '.join(lacking)} (dangling references)",
                "upload the whole nvidia/Spark-AnomalyGen-USD tree, not only the top-level USD",
            )
        else:
            self.report.add(
                f"{art.role}: USD tree", OK, art.url, f"{', '.join(tree_dirs)} and sublayers present"
            )

    def _check_asset_file(self, name: str, bucket: str, prefix: str, rel: str, hint: str) -> None:
        """One file the pods read at <assets>/<rel>, or (as they do) found by its basename anywhere below."""
        key = s3_join(prefix, rel)
        try:
            meta = self._sub(name, f"s3://{bucket}/{key}", self.store.head, bucket, key)
        except NotFound:
            meta = None
        if meta is SUB_FAILED:
            return
        if meta and meta.get("ContentLength", 0) > 0:
            self.report.add(name, OK, f"s3://{bucket}/{key}", f"{meta['ContentLength']} bytes")
            return
        # The pods fall back to a recursive basename search (knobs §0.12): do the same, bounded.
        found = self._search_basename(bucket, prefix, posixpath.basename(rel))
        if found:
            self.report.add(name, OK, f"s3://{bucket}/{found}", f"not at {rel}; found by basename search")
        else:
            self.report.add(
                name,
                FAIL,
                f"s3://{bucket}/{key}",
                f"missing (also no {posixpath.basename(rel)!r} anywhere in the first {SEARCH_LIMIT} keys)",
                hint,
            )

    def _check_zip(self, art: Requirement) -> None:
        bucket, prefix = parse_url(art.url)
        fname = art.params["file"]
        key = s3_join(prefix, fname)
        hint = f"upload the Roboflow COCO export renamed to {fname} under this prefix (uc3_zip_url_root)"
        name = f"{art.role}: {fname}"
        if self._head_file(name, bucket, key, hint) is None and self.store.exists_prefix(bucket, key):
            self.report.checks[-1].detail = f"is a directory ({fname}/...), not a file: a key-form upload"
            self.report.checks[
                -1
            ].hint = f"upload the file itself to the prefix: osmo data upload <prefix>/ {fname}"

    def _check_run_absent(self, art: Requirement) -> None:
        bucket, prefix = parse_url(art.url)
        keys = self.store.list_keys(bucket, dir_prefix(prefix), max_keys=1)
        if keys:
            self.report.add(
                art.role,
                FAIL,
                f"{art.url}/",
                f"already exists (e.g. {keys[0][len(dir_prefix(prefix)) :]}); submitting would overwrite it",
                "choose a fresh run name, e.g. <flow>-<8 hex chars>",
            )
        else:
            self.report.add(art.role, OK, f"{art.url}/", "free: nothing stored under this run name")


def _raise_no_bucket(bucket: str, store: S3Store) -> None:
    raise NoSuchBucket(
        f"bucket {bucket!r} does not exist at {store.endpoint}",
        bucket=bucket,
        hint="check the bucket name in dig_url_root, or create the bucket and run the setup flows",
    )


__all__ = ["StoragePreflight", "EXIT_OK", "EXIT_MISSING", "EXIT_USAGE", "EXIT_STORAGE"]
