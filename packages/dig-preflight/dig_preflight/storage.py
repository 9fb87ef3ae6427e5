"""Check a flow's required storage artifacts with bounded, read-only S3 requests."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable

from .report import ERROR, FAIL, OK, SKIP, WARN, Report
from .requirements import SCENE_TREES, Requirement, checkpoint_filename
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

EXIT_OK, EXIT_MISSING, EXIT_USAGE, EXIT_STORAGE = 0, 1, 2, 3
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# A basename search (scene USD / real photo not at the documented path) looks at this many keys
# at most, so one misplaced file cannot turn a preflight into a scan of a huge assets tree.
SEARCH_LIMIT = 5000
SETUP_HINT = "run the matching setup flow (setup usecase=<u>, setup_pretrained) or upload it under the root"


def _join(prefix: str, *parts: str) -> str:
    return posixpath.join(prefix.rstrip("/"), *parts) if prefix else posixpath.join(*parts)


_FAILED = object()  # a sub-check already reported its storage error


class _Abort(Exception):
    """Storage cannot be read at all (endpoint down): stop instead of timing out once per check."""


class StoragePreflight:
    """Runs `Requirement` checks against one `S3Store`, appending `Check` rows to a `Report`."""

    def __init__(self, store: S3Store, report: Report):
        self.store = store
        self.report = report
        self._children: dict[tuple[str, str], tuple[list[str], list[str]]] = {}

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

    # -- helpers -------------------------------------------------------------------------------

    def _sub(self, name: str, target: str, fn, *args):
        """Run one sub-check; a 403 / throttle / 5xx on it becomes that sub-check's error row."""
        try:
            return fn(*args)
        except (NoSuchBucket, EndpointUnreachable, NotFound):
            raise
        except StorageError as exc:
            self.report.add(name, ERROR, target, exc.message, exc.hint)
            return _FAILED

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

    # -- artifact kinds ------------------------------------------------------------------------

    def _check_prefix(self, art: Requirement) -> None:
        self._nonempty(art)

    def _check_pretrained(self, art: Requirement) -> None:
        # setup_pretrained writes {{output}}/pretrained: the artifact holds a pretrained/ tree,
        # which finetune reads as <input>/pretrained and inference finds by name.
        if not self._nonempty(art):
            return
        bucket, prefix = parse_url(art.url)
        sub = _join(prefix, "pretrained")
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

    def _check_checkpoint(self, art: Requirement) -> None:
        if not self._nonempty(art):
            return
        bucket, prefix = parse_url(art.url)
        step = int(art.params["step"])
        hint = f"upload ag_config.yaml and {checkpoint_filename(step)} to {art.url}/ or compile with knobs.checkpoint_step=<the step it holds>"
        cfg_name = f"{art.role}: ag_config.yaml"
        self._sub(
            cfg_name,
            art.url,
            self._check_ag_config,
            art,
            cfg_name,
            bucket,
            _join(prefix, "ag_config.yaml"),
            hint,
        )
        fname = checkpoint_filename(step)
        step_name = f"{art.role}: step {step}"
        try:
            if (
                self._sub(step_name, f"{art.url}/{fname}", self.store.head, bucket, _join(prefix, fname))
                is _FAILED
            ):
                return
        except NotFound:
            have = sorted(
                int(posixpath.basename(k)[5:-3])
                for k in self.store.list_keys(bucket, _join(prefix, "iter_"), max_keys=100)
                if posixpath.basename(k)[5:-3].isdigit() and k.endswith(".pt")
            )
            found = ", ".join(str(s) for s in have) if have else "none"
            self.report.add(
                f"{art.role}: step {step}",
                FAIL,
                f"{art.url}/{fname}",
                f"checkpoint step {step} absent; steps present: {found}",
                f"compile with knobs.checkpoint_step={have[-1]}" if have else hint,
            )
            return
        self.report.add(f"{art.role}: step {step}", OK, f"{art.url}/{fname}")

    def _check_ag_config(self, art: Requirement, name: str, bucket: str, key: str, hint: str) -> None:
        url = f"s3://{bucket}/{key}"
        try:
            data = self.store.get_bytes(bucket, key)
        except NotFound:
            self.report.add(name, FAIL, url, "missing", hint)
            return
        if not data:
            self.report.add(name, FAIL, url, "present but 0 bytes", hint)
            return
        self.report.add(name, OK, url, f"{len(data)} bytes read")
        pairs = art.params.get("pairs")
        taxonomy = _ckpt_taxonomy(data)
        if not pairs or taxonomy is None:
            return  # no configured types, or the config does not state its taxonomy in a known form
        tax_name = f"{art.role}: anomaly types"
        missing = [f"{m}+{d}" for m, d in pairs if f"{m}+{d}" not in taxonomy]
        if missing:
            self.report.add(
                tax_name,
                FAIL,
                url,
                f"{', '.join(missing)} not in the checkpoint's anomaly_types ({', '.join(sorted(taxonomy))})",
                "set anomaly_types_json to pairs the checkpoint was trained on (validate_jsonl.py rejects others)",
            )
        else:
            self.report.add(tax_name, OK, url, f"all {len(pairs)} pairs in the checkpoint's anomaly_types")

    def _check_raw(self, art: Requirement) -> None:
        if not self._nonempty(art):
            return
        bucket, prefix = parse_url(art.url)
        spec_key = _join(prefix, "defect_spec.jsonl")
        name = f"{art.role}: defect_spec.jsonl"
        spec_types: list[list[str]] | None = None
        try:
            data = self._sub(name, f"s3://{bucket}/{spec_key}", self.store.get_bytes, bucket, spec_key)
        except NotFound:
            self.report.add(
                name,
                FAIL,
                f"s3://{bucket}/{spec_key}",
                "missing at the dataset root (finetune reads it there)",
                'upload defect_spec.jsonl (one {"defect_type": "<MATERIAL>+<DEFECT>", ...} per line)',
            )
        else:
            if data is not _FAILED:
                spec_types, problem = _parse_defect_spec(data.decode("utf-8", "replace"))
                if problem:
                    self.report.add(
                        name,
                        FAIL,
                        f"s3://{bucket}/{spec_key}",
                        problem,
                        "fix the file: one JSON object per line",
                    )
                else:
                    self.report.add(name, OK, f"s3://{bucket}/{spec_key}", f"{len(spec_types)} defect types")
        pairs = art.params.get("pairs") or spec_types
        if not pairs:
            self.report.add(
                f"{art.role}: masks", SKIP, art.url, "no anomaly types given and none readable from the spec"
            )
            return
        for material, defect in pairs:
            name = f"{art.role}: mask {material}/{defect}"
            self._sub(name, art.url, self._check_mask, art, bucket, prefix, material, defect)

    def _check_mask(self, art: Requirement, bucket: str, prefix: str, material: str, defect: str) -> None:
        # The pods' submask rule: <root>/<M>/mask/<D>/, the same under the root's first
        # sub-directory (one wrapper level, e.g. pcb's PCB/), then flat <root>/<D>/ (custom uploads).
        direct = _join(prefix, material, "mask", defect)
        dirs, _ = self._children_of(bucket, prefix)
        candidates = [direct]
        if dirs and dirs[0] != material:
            wrapped = _join(prefix, dirs[0], material, "mask", defect)
            # Try first where the root listing says the material lives: one request per pair.
            candidates = [direct, wrapped] if material in dirs else [wrapped, direct]
        candidates.append(_join(prefix, defect))
        name = f"{art.role}: mask {material}/{defect}"
        seen_other: list[str] = []
        for cand in candidates:
            image, keys = self._image_in(bucket, cand)
            if image:
                self.report.add(
                    name, OK, f"s3://{bucket}/{dir_prefix(cand)}", f"e.g. {posixpath.basename(image)}"
                )
                return
            seen_other += keys
        tried = ", ".join(f"{c[len(dir_prefix(prefix)) :]}/" for c in candidates)
        detail = f"no mask image for [{material!r}, {defect!r}]; tried {tried}"
        if seen_other:
            detail += f" (found non-images: {', '.join(posixpath.basename(k) for k in seen_other[:3])})"
        self.report.add(
            name,
            FAIL,
            art.url,
            detail,
            "upload at least one mask image to <raw>/<material>/mask/<defect>/, or fix knobs.anomaly_types_json "
            "to match the checkpoint's ag_config.yaml anomaly_types",
        )

    def _check_assets(self, art: Requirement) -> None:
        if not self._nonempty(art):
            return
        bucket, prefix = parse_url(art.url)
        scene = art.params.get("scene")
        if scene in SCENE_TREES:
            # The scene references its peers by relative path: the whole tree must be there.
            tree_dirs, tree_files = SCENE_TREES[scene]
            dirs, files = self._children_of(bucket, prefix)
            lacking = [f"{d}/" for d in tree_dirs if d not in dirs] + [
                f for f in tree_files if f not in files
            ]
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
            if not rel:
                continue
            name = f"{art.role}: {label} {posixpath.basename(rel)}"
            key = _join(prefix, rel)
            try:
                meta = self._sub(name, f"s3://{bucket}/{key}", self.store.head, bucket, key)
            except NotFound:
                meta = None
            if meta is _FAILED:
                continue
            if meta and meta.get("ContentLength", 0) > 0:
                self.report.add(name, OK, f"s3://{bucket}/{key}", f"{meta['ContentLength']} bytes")
                continue
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
        key = _join(prefix, fname)
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


def _ckpt_taxonomy(data: bytes) -> set[str] | None:
    """`{"<MATERIAL>+<DEFECT>", ...}` from an ag_config.yaml's `anomaly_types`, wherever it is nested.

    Accepts lists of "M+D" strings, of [M, D] pairs, or a {material: [defects]} mapping; None
    when the key is absent or in another form (then nothing is claimed either way).
    """
    import yaml

    try:
        doc = yaml.safe_load(data.decode("utf-8", "replace"))
    except yaml.YAMLError:
        return None
    stack, found = [doc], None
    while stack and found is None:
        node = stack.pop()
        if isinstance(node, dict):
            if "anomaly_types" in node:
                found = node["anomaly_types"]
            else:
                stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if isinstance(found, dict):
        out = {f"{m}+{d}" for m, ds in found.items() if isinstance(ds, list) for d in ds}
    elif isinstance(found, list) and all(isinstance(x, str) and "+" in x for x in found):
        out = set(found)
    elif isinstance(found, list) and all(isinstance(x, list) and len(x) == 2 for x in found):
        out = {f"{m}+{d}" for m, d in found}
    else:
        return None
    return out or None


def _parse_defect_spec(text: str) -> tuple[list[list[str]], str | None]:
    """`([material, defect], ...)` from defect_spec.jsonl text, or a problem description."""
    pairs: list[list[str]] = []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return [], "file is empty"
    for n, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            return [], f"line {n} is not JSON: {exc.msg}"
        dtype = entry.get("defect_type") if isinstance(entry, dict) else None
        if not isinstance(dtype, str) or "+" not in dtype:
            return [], f"line {n}: defect_type must be '<MATERIAL>+<DEFECT>', got {dtype!r}"
        material, _, defect = dtype.partition("+")
        pairs.append([material, defect])
    return pairs, None


__all__ = ["StoragePreflight", "EXIT_OK", "EXIT_MISSING", "EXIT_USAGE", "EXIT_STORAGE"]
