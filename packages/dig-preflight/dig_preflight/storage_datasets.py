"""Storage checks of the training inputs: a finetuned checkpoint (ag_config.yaml, its step) and a raw dataset
(defect_spec.jsonl, one mask image per anomaly type)."""

from __future__ import annotations

import json
import posixpath

from .report import FAIL, OK, SKIP
from .requirements import Requirement, checkpoint_filename
from .s3 import NotFound, dir_prefix, parse_url
from .storage_probe import SUB_FAILED, Probe, s3_join


class DatasetChecks(Probe):
    """`_check_<kind>` for the checkpoint and raw-dataset artifact kinds."""

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
            s3_join(prefix, "ag_config.yaml"),
            hint,
        )
        fname = checkpoint_filename(step)
        step_name = f"{art.role}: step {step}"
        try:
            if (
                self._sub(step_name, f"{art.url}/{fname}", self.store.head, bucket, s3_join(prefix, fname))
                is SUB_FAILED
            ):
                return
        except NotFound:
            have = sorted(
                int(posixpath.basename(k)[5:-3])
                for k in self.store.list_keys(bucket, s3_join(prefix, "iter_"), max_keys=100)
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
        spec_key = s3_join(prefix, "defect_spec.jsonl")
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
            if data is not SUB_FAILED:
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
        direct = s3_join(prefix, material, "mask", defect)
        dirs, _ = self._children_of(bucket, prefix)
        candidates = [direct]
        if dirs and dirs[0] != material:
            wrapped = s3_join(prefix, dirs[0], material, "mask", defect)
            # Try first where the root listing says the material lives: one request per pair.
            candidates = [direct, wrapped] if material in dirs else [wrapped, direct]
        candidates.append(s3_join(prefix, defect))
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
