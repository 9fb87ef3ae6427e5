"""Check the OSMO POD_TEMPLATE for the nvoptix.bin mount and a large enough /dev/shm; print the patch."""

from __future__ import annotations

import copy
import difflib
import json
import re
from typing import Any

from .osmo import OsmoMissing, run_osmo
from .report import FAIL, OK, SKIP, WARN, Report

EXIT_VERIFIED, EXIT_NEEDS_PATCH, EXIT_FORBIDDEN, EXIT_CONFLICT, EXIT_ENV = 0, 1, 2, 3, 4
NVOPTIX_PATH = "/usr/share/nvidia/nvoptix.bin"
TEMPLATE_NAME = "default_user"
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}
GIB = 2**30


def parse_quantity(value: Any) -> int | None:
    """Kubernetes resource quantity (`32Gi`, `32G`, `32768Mi`, bytes) -> bytes; None if unparsable."""
    m = _QUANTITY.match(str(value).strip())
    if not m or m.group(2) not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _template_body(doc: Any, name: str) -> tuple[dict, list[str]]:
    """The pod template `name` (with `spec`) inside `osmo config show POD_TEMPLATE` output, and its path."""
    if isinstance(doc, dict) and isinstance(doc.get(name), dict):
        return doc[name], [name]
    if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
        return doc, []
    raise ValueError(
        f"no pod template {name!r} (with a spec) in the POD_TEMPLATE JSON; keys: {sorted(doc)[:8]}"
    )


def _volumes(body: dict) -> list[dict]:
    return [v for v in (body.get("spec", {}).get("volumes") or []) if isinstance(v, dict)]


def _mounts(body: dict) -> list[dict]:
    out: list[dict] = []
    for c in body.get("spec", {}).get("containers") or []:
        if isinstance(c, dict):
            out += [m for m in c.get("volumeMounts") or [] if isinstance(m, dict)]
    return out


def check_template(
    doc: Any, report: Report, *, min_dshm_gib: int = 16, name: str = TEMPLATE_NAME, nvoptix: bool = True
) -> Report:
    """Rows for the nvoptix volume (render pods; `nvoptix=False` for training-only runs) and the dshm
    sizeLimit; exit 0 or 1; `report.extra['patch']` when 1."""
    body, path = _template_body(doc, name)
    vols = {v.get("name"): v for v in _volumes(body)}
    mounts = {m.get("name"): m for m in _mounts(body)}
    fix_nvoptix = _check_nvoptix(vols, mounts, report, nvoptix)
    fix_dshm = _check_dshm(vols, report, min_dshm_gib)
    if fix_nvoptix or fix_dshm:
        patched = copy.deepcopy(doc)
        pbody = patched
        for p in path:
            pbody = pbody[p]
        _apply_fix(pbody, nvoptix=fix_nvoptix, dshm=fix_dshm, min_dshm_gib=min_dshm_gib)
        before = json.dumps(doc, indent=2, sort_keys=True).splitlines()
        after = json.dumps(patched, indent=2, sort_keys=True).splitlines()
        report.extra["patch"] = "\n".join(
            difflib.unified_diff(
                before, after, "POD_TEMPLATE (current)", "POD_TEMPLATE (patched)", lineterm=""
            )
        )
        report.extra["patched_template"] = patched
        report.exit_code = EXIT_NEEDS_PATCH
    else:
        report.exit_code = EXIT_VERIFIED
    return report


def _check_nvoptix(vols: dict, mounts: dict, report: Report, wanted: bool) -> bool:
    """The nvoptix hostPath volume's row(s); True when the patch must add or fix it."""
    nv = vols.get("nvoptix")
    got = (nv or {}).get("hostPath", {}).get("path") if nv else None
    if not wanted:
        report.add("nvoptix volume", SKIP, "", "--checks train: training pods need only /dev/shm")
        return False
    if got != NVOPTIX_PATH:
        report.add(
            "nvoptix volume",
            FAIL,
            "spec.volumes[name=nvoptix].hostPath.path",
            f"got {got!r}, want {NVOPTIX_PATH!r}" if nv else "no volume named 'nvoptix'",
            "apply the patch below (Kit ray tracing needs the host's OptiX cache)",
        )
        return True
    report.add("nvoptix volume", OK, f"hostPath {NVOPTIX_PATH}")
    mount = mounts.get("nvoptix", {}).get("mountPath")
    if mount != NVOPTIX_PATH:
        report.add(
            "nvoptix mount",
            WARN,
            f"volumeMounts nvoptix -> {mount}",
            f"volume present but not mounted at {NVOPTIX_PATH} in the template's containers "
            "(OSMO may add the mount itself; the render steps check it in the pod)",
        )
    return False


def _check_dshm(vols: dict, report: Report, min_dshm_gib: int) -> bool:
    """The /dev/shm emptyDir's row; True when the patch must add or enlarge it."""
    dshm = vols.get("dshm")
    limit = (dshm or {}).get("emptyDir", {}).get("sizeLimit") if dshm else None
    size = parse_quantity(limit) if limit is not None else None
    if dshm is None:
        report.add(
            "/dev/shm size",
            FAIL,
            "spec.volumes[name=dshm]",
            "no emptyDir volume named 'dshm'",
            f"apply the patch below (/dev/shm >= {min_dshm_gib}Gi; 32Gi preferred)",
        )
    elif size is None:
        report.add(
            "/dev/shm size",
            FAIL,
            "spec.volumes[name=dshm].emptyDir.sizeLimit",
            f"sizeLimit {limit!r} is not a Kubernetes quantity" if limit is not None else "no sizeLimit",
            "apply the patch below",
        )
    elif size < min_dshm_gib * GIB:
        report.add(
            "/dev/shm size",
            FAIL,
            "spec.volumes[name=dshm].emptyDir.sizeLimit",
            f"{limit} = {size / GIB:.1f} GiB < {min_dshm_gib} GiB",
            "apply the patch below",
        )
    else:
        report.add(
            "/dev/shm size", OK, f"dshm sizeLimit {limit}", f"{size / GIB:.1f} GiB >= {min_dshm_gib} GiB"
        )
        return False
    return True


def _apply_fix(body: dict, *, nvoptix: bool, dshm: bool, min_dshm_gib: int) -> None:
    spec = body.setdefault("spec", {})
    vols = spec.setdefault("volumes", [])
    # Mounts go into the containers the template already declares; a template without
    # containers only gets the volumes (what the upstream gate checks), never an invented container.
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    size = f"{max(min_dshm_gib, 32)}Gi"
    wanted = []
    if nvoptix:
        wanted.append(
            (
                {"name": "nvoptix", "hostPath": {"path": NVOPTIX_PATH, "type": "File"}},
                {"name": "nvoptix", "mountPath": NVOPTIX_PATH, "readOnly": True},
            )
        )
    if dshm:
        wanted.append(
            (
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}},
                {"name": "dshm", "mountPath": "/dev/shm"},
            )
        )
    for vol, mount in wanted:
        vols[:] = [v for v in vols if v.get("name") != vol["name"]] + [vol]
        for c in containers:
            ms = c.setdefault("volumeMounts", [])
            ms[:] = [m for m in ms if m.get("name") != mount["name"]] + [mount]


def load_from_osmo(report: Report) -> Any | None:
    """`osmo config show POD_TEMPLATE` as JSON; on failure sets the exit code (2 / 3 / 4) and returns None."""
    try:
        res = run_osmo("config", "show", "POD_TEMPLATE")
    except OsmoMissing:
        report.add(
            "read POD_TEMPLATE",
            FAIL,
            "osmo CLI",
            "osmo CLI not on PATH",
            "install the osmo CLI and `osmo login`, or pass --file with the template JSON",
        )
        report.exit_code = EXIT_ENV
        return None
    if res.returncode != 0:
        status = res.http_status()
        if status == 403:
            report.add(
                "read POD_TEMPLATE",
                FAIL,
                "osmo config show POD_TEMPLATE",
                "HTTP 403: no read permission",
                "ask the user whether the OSMO admin already configured the nvoptix mount and "
                "/dev/shm >= 16Gi; if not sure, stop and contact the admin (`osmo profile list` shows roles)",
            )
            report.exit_code = EXIT_FORBIDDEN
        elif status == 409:
            report.add(
                "read POD_TEMPLATE",
                WARN,
                "osmo config show POD_TEMPLATE",
                "HTTP 409: config CLI disabled on this deployment (ConfigMap mode)",
                "pre-submit gate skipped; the in-pod checks of the render/finetune steps remain",
            )
            report.exit_code = EXIT_CONFLICT
        else:
            report.add(
                "read POD_TEMPLATE",
                FAIL,
                "osmo config show POD_TEMPLATE",
                f"exited {res.returncode}: {res.stderr.strip()[:300]}",
                "fix the osmo login/config and re-run",
            )
            report.exit_code = EXIT_ENV
        return None
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError as exc:
        report.add(
            "read POD_TEMPLATE",
            FAIL,
            "osmo config show POD_TEMPLATE",
            f"output is not JSON: {exc.msg}",
            "update the osmo CLI",
        )
        report.exit_code = EXIT_ENV
        return None
