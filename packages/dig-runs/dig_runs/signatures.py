"""What OSMO states, exit codes and error-log lines mean: the one place `watch` reads them from.

Sources: spec/osmo_cli.md §3 (states and OSMO's own classes), §4 (task and CLI exit codes),
spec/failure_modes.md §C (runtime signatures, with their fix) and §D (quiet-but-healthy windows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# osmo_cli.md §3
LIVE_WORKFLOW = ("PENDING", "RUNNING", "WAITING")
CANCELED = ("FAILED_CANCELED", "FAILED_EXEC_TIMEOUT", "FAILED_QUEUE_TIMEOUT")
INFRASTRUCTURE = (
    "FAILED_SERVER_ERROR",
    "FAILED_EVICTED",
    "FAILED_START_ERROR",
    "FAILED_IMAGE_PULL",
    "FAILED_BACKEND_ERROR",
    "FAILED_START_TIMEOUT",
    "FAILED_PREEMPTED",
)


def is_terminal(status: str | None) -> bool:
    """COMPLETED and every FAILED* status (matching only FAILED|CANCELLED loops forever, §3 pitfall)."""
    return bool(status) and (status == "COMPLETED" or status.startswith("FAILED"))


# `dig watch` exit codes: one per terminal class (README "Running on OSMO").
EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELED = 3
EXIT_INFRASTRUCTURE = 4
EXIT_SUBMISSION = 5
EXIT_INTERRUPTED = 130


def terminal_class(status: str) -> tuple[str, int]:
    """(class name, watch exit code) of a terminal workflow status."""
    if status == "COMPLETED":
        return "completed", EXIT_COMPLETED
    if status in CANCELED:
        return "canceled", EXIT_CANCELED
    if status in INFRASTRUCTURE:
        return "infrastructure", EXIT_INFRASTRUCTURE
    if status == "FAILED_SUBMISSION":
        return "submission", EXIT_SUBMISSION
    return "failed", EXIT_FAILED


@dataclass(frozen=True)
class ExitClass:
    low: int
    high: int
    cause: str
    fix: str


# osmo_cli.md §4: task exit codes (when several apply the highest wins).
EXIT_CLASSES = (
    ExitClass(
        1,
        255,
        "the task's own process exited non-zero",
        "read the task's error log (`dig logs RUN --task T --error`)",
    ),
    ExitClass(
        256,
        257,
        "OSMO's task init failed",
        "retry (`dig restart RUN`); if it repeats, report it to the OSMO admin",
    ),
    ExitClass(
        2010,
        2010,
        "OSMO could not download an input",
        "check the input URL exists (`dig preflight workflow FILE`)",
    ),
    ExitClass(
        2012,
        2012,
        "OSMO could not upload the task's output",
        "check write access to dig_url_root and the output folder is not empty",
    ),
    ExitClass(
        2013, 2014, "data credentials were refused", "check the storage credential (`osmo credential list`)"
    ),
    ExitClass(3000, 3000, "an upstream task failed", "fix the upstream failure first"),
    ExitClass(
        3001,
        3006,
        "infrastructure (backend, server, start error, eviction, start timeout or preemption)",
        "retry may help: `dig restart RUN`",
    ),
)


def exit_class(code: int | None) -> ExitClass | None:
    if code is None:
        return None
    return next((c for c in EXIT_CLASSES if c.low <= code <= c.high), None)


@dataclass(frozen=True)
class Signature:
    ref: str  # failure_modes.md §C row
    pattern: str  # regular expression searched in the task's error log
    cause: str
    fix: str

    def search(self, text: str) -> re.Match[str] | None:
        return re.search(self.pattern, text, re.MULTILINE)


# failure_modes.md §C, most specific first.
SIGNATURES = (
    Signature(
        "C1",
        r"nvoptix\.bin not mounted",
        "the pod template does not mount /usr/share/nvidia/nvoptix.bin",
        "run `dig preflight pod-template` and apply its patch (needs the user's approval)",
    ),
    Signature(
        "C2",
        r"/dev/shm is (?P<gib>\d+) GiB",
        "/dev/shm is {gib} GiB; the pod template needs >= 16 GiB (32 preferred)",
        "run `dig preflight pod-template` (it prints the dshm sizeLimit patch)",
    ),
    Signature(
        "C5",
        r"/tmp/pcba_target\.yaml not mounted",
        "the cookbook localpath upload failed",
        "recompile and resubmit; check the workflow's files: section",
    ),
    Signature(
        "C6",
        r"0 ROI pairs emitted",
        "the render ran but no semantic region matched crop.classes",
        "align the cookbook `semantics` with the USD mesh paths",
    ),
    Signature(
        "C9",
        r"sdg_pipeline\.py produced no frames",
        "the structural render failed quietly",
        "inspect the Kit --exec line and `osmo workflow events` for nvoptix",
    ),
    Signature(
        "C10",
        r"crop_components\.py: no trigger_\d+ found|crop_components\.py produced no per-mode rgb crops",
        "the structural render produced no usable cells",
        "check the upstream render, or empty cells (render_patches)",
    ),
    Signature(
        "C14",
        r"usd2roi_register\.py exited (?P<code>\d+)",
        "Day 1 registration failed (likely MI < min_mi)",
        "widen registration.sx_range/sy_range/rot_range_deg, lower min_mi, recheck camera.translate",
    ),
    Signature(
        "C15",
        r"0 ROI crops emitted",
        "registration worked but no class matched",
        "fix `semantics` in the board's usd2roi_nvpcb.yaml",
    ),
    Signature(
        "C17",
        r"no material subdirs under|no per-mode rgb crops under|No per-material/per-cell ROIs found|No RGB crops under",
        "image-edit found nothing usable from upstream",
        "check the render/crop stage outputs",
    ),
    Signature(
        "C18",
        r"No space left on device.*|0 image-edit images emitted|[Ee]ndpoint.*(timed out|timeout)",
        "the image-edit endpoint failed or is undersized",
        "run `dig endpoint check`; the NIMService must keep sharedMemorySizeLimit: 32Gi (`dig endpoint manifest`)",
    ),
    Signature(
        "C19",
        r"training dataset not at|prep_testcase\.sh not in image",
        "finetune input mount or image problem",
        "check the dataset URL and the image digest",
    ),
    Signature(
        "C21",
        r"OOMKilled",
        "the task ran out of memory shortly after the ranks spawned",
        "raise memory with the GPU count (spec/endpoint_and_sizing.md §2 sizing rule)",
    ),
    Signature(
        "C22",
        r"(clean|cad_mask) crop/.*tree not found under",
        "the Day 0 chained inputs are malformed",
        "check the usd2roi-components and augment outputs of this run",
    ),
    Signature(
        "C23",
        r"no material dirs under|no clean images staged|no ROI crops staged",
        "AnomalyGen got an empty upstream",
        "check the upstream stage outputs",
    ),
    Signature(
        "C24",
        r"spatial_dependency=cad but no semantic_segmentation_labels\.json",
        "the CAD labels JSON is missing",
        "recompile with knobs.default_spatial_dependency=free",
    ),
    Signature(
        "C29",
        r"download_checkpoints failed",
        "the checkpoint download failed (Hugging Face gating or network)",
        "accept the model license and check HF_TOKEN (`dig preflight credentials`)",
    ),
    Signature(
        "C31",
        r"0 files in ",
        "the HF token lacks access, the license is not accepted or the repo is wrong",
        "check the token's access (`dig preflight credentials`)",
    ),
    Signature(
        "C33",
        r"nvcr\.io.*(unauthorized|denied|toomanyrequests|429)|pull access denied",
        "pulling from nvcr.io failed (auth or rate limiting)",
        "add the nvcr_io REGISTRY credential (field auth)",
    ),
    Signature(
        "C34",
        r"[Dd]isk quota exceeded|ephemeral local storage usage exceeds",
        "storage exhausted",
        "raise the task's storage knob",
    ),
    Signature(
        "C12",
        r"Permission denied.*/osmo/data/output",
        "the output mount is not writable",
        "a pod-template/OSMO issue: do not chmod the mount; ask the OSMO admin",
    ),
    Signature(
        "C13",
        r"No Files in Output Folder",
        "the task produced an empty output",
        "read the task's log for the stage that wrote nothing",
    ),
)


# osmo_cli.md §3 failure statuses set by OSMO itself (no log line of the task says why).
STATUS_CAUSES = {
    "FAILED_IMAGE_PULL": (
        "the task image could not be pulled",
        "check the image and tag; for nvcr.io add the nvcr_io REGISTRY credential (field auth), failure_modes.md C33",
    ),
    "FAILED_EXEC_TIMEOUT": (
        "the group ran past its exec_timeout",
        "raise the flow's exec timeout or make the run smaller, then resubmit",
    ),
    "FAILED_QUEUE_TIMEOUT": (
        "the group waited past its queue_timeout without being scheduled",
        "check pool capacity and pending pods (`osmo workflow events ID`), or --priority; "
        "a node without nvoptix.bin keeps render pods pending (failure_modes.md C3)",
    ),
    "FAILED_CANCELED": ("the workflow was canceled", "resubmit if that was not intended"),
    "FAILED_EVICTED": (
        "the pod was evicted (node pressure or ephemeral storage)",
        "retry with `dig restart RUN`; if it repeats raise the task's storage (failure_modes.md C34)",
    ),
    "FAILED_PREEMPTED": ("the pod was preempted by higher-priority work", "retry with `dig restart RUN`"),
    "FAILED_START_ERROR": (
        "the pod failed to start",
        "retry with `dig restart RUN`; `osmo workflow events ID` says why",
    ),
    "FAILED_START_TIMEOUT": (
        "the pod did not start in time",
        "retry with `dig restart RUN`; check `osmo workflow events ID`",
    ),
    "FAILED_BACKEND_ERROR": ("the cluster backend failed", "retry with `dig restart RUN`"),
    "FAILED_SERVER_ERROR": ("the OSMO server failed", "retry with `dig restart RUN`"),
}


@dataclass
class Diagnosis:
    cause: str
    fix: str
    ref: str
    line: str = ""


def classify(log_text: str, exit_code: int | None, task_status: str) -> Diagnosis:
    """Cause and fix of one failed task: a §C signature in its error log, else its exit-code class."""
    for sig in SIGNATURES:
        m = sig.search(log_text)
        if m:
            line = log_text[log_text.rfind("\n", 0, m.start()) + 1 :].split("\n", 1)[0].strip()
            return Diagnosis(sig.cause.format(**m.groupdict()), sig.fix, f"failure_modes.md {sig.ref}", line)
    if task_status in STATUS_CAUSES:
        kind, _ = terminal_class(task_status)
        cause, fix = STATUS_CAUSES[task_status]
        return Diagnosis(f"{cause} ({kind})", fix, "osmo_cli.md §3")
    cls = exit_class(exit_code)
    if cls:
        return Diagnosis(f"exit code {exit_code}: {cls.cause}", cls.fix, "osmo_cli.md §4")
    return Diagnosis(
        f"{task_status} without a known signature",
        "read the task's error log (`dig logs RUN --task T --error`)",
        "unclassified",
    )


# failure_modes.md §D: long quiet stretches that are healthy. (task-name pattern, what to expect)
QUIET_WINDOWS = (
    (r"^usd2roi-day1$", "Day 1 Kit cold boot ~5-7 min, then MI registration ~15-30 s"),
    (
        r"usd2roi|sdg-and-crop|structural",
        "Isaac Sim warmup 7-10 min with sparse logs; silent between per-cell crop emissions",
    ),
    (r"image-edit|augment", "pauses while waiting on the image-edit endpoint"),
    (r"finetune", "torchrun startup and dataset validation before the first step log"),
)


def quiet_window(task_name: str) -> str | None:
    return next((text for pattern, text in QUIET_WINDOWS if re.search(pattern, task_name)), None)
