"""The parameter and result types of dig_stages.align: cookbook options, the similarity transform, the result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Every level is sampled: a fixed subset keeps the objective deterministic (smooth for the Newton steps)
# while bounding the cost of one MI evaluation.
DEFAULT_SAMPLES = 1 << 14


def corners(shape: tuple[int, ...]) -> np.ndarray:
    """The four corner pixels of an image of `shape` (h, w, ...) as homogeneous (x, y, 1) rows."""
    h, w = shape[:2]
    return np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float)


@dataclass
class AlignParams:
    """Cookbook `data_processing.alignment` / `registration` keys (stage_algorithms.md §2, §3)."""

    rot_range_deg: tuple[float, float, float] = (-1.0, 1.0, 0.1)
    shift_step: float = 2.0
    bins: int = 64
    interp: str = "bilinear"
    no_resize: bool = True
    # auto-derived from the moving vs reference dims when None
    sx_range: tuple[float, float, float] | None = None
    sy_range: tuple[float, float, float] | None = None
    shift_range: float | None = None
    pyr_levels: int | None = None
    min_mi: float | None = None
    samples: int = DEFAULT_SAMPLES
    seed: int = 0
    ignored: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AlignParams:
        """Build from a cookbook block; unknown keys (e.g. `gpu`) are kept in `ignored` for the metadata."""
        d = dict(d or {})
        known = {k for k in cls.__dataclass_fields__ if k != "ignored"}
        kw: dict[str, Any] = {}
        for k in list(d):
            if k in known:
                v = d.pop(k)
                if k in ("rot_range_deg", "sx_range", "sy_range") and v is not None:
                    v = tuple(float(x) for x in v)
                    if len(v) != 3:
                        raise ValueError(f"align_params.{k}: expected [min, max, step], got {list(v)}")
                kw[k] = v
        if kw.get("interp", "bilinear") not in ("bilinear", "nearest"):
            raise ValueError(f"align_params.interp: expected bilinear or nearest, got {kw['interp']!r}")
        return cls(**kw, ignored=d)


@dataclass
class Transform:
    """Maps reference pixel p to moving pixel q = c_m + R(rot) diag(sx, sy) (p - c_f) + (tx, ty).

    Pixel centres sit at integer coordinates; c_f and c_m are the image centres ((w-1)/2, (h-1)/2).
    """

    rot_deg: float
    sx: float
    sy: float
    tx: float
    ty: float
    ref_center: tuple[float, float]
    mov_center: tuple[float, float]

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix (reference -> moving pixel coordinates)."""
        a = math.radians(self.rot_deg)
        c, s = math.cos(a), math.sin(a)
        lin = np.array([[c * self.sx, -s * self.sy], [s * self.sx, c * self.sy]])
        cf = np.array(self.ref_center)
        off = np.array(self.mov_center) + np.array([self.tx, self.ty]) - lin @ cf
        return np.hstack([lin, off[:, None]])

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) reference points (x, y) to moving points."""
        m = self.matrix()
        return np.asarray(pts, float) @ m[:, :2].T + m[:, 2]


@dataclass
class AlignResult:
    """The warped image and what registration found."""

    image: np.ndarray
    transform: Transform
    mi: float
    nmi: float
    passed: bool
    seconds: float
    levels: int
    evaluations: int

    def metadata(self) -> dict[str, Any]:
        t = asdict(self.transform)
        t["matrix"] = self.transform.matrix().round(8).tolist()
        return {
            "transform": t,
            "mi": round(self.mi, 6),
            "nmi": round(self.nmi, 6),
            "passed": self.passed,
            "seconds": round(self.seconds, 4),
            "pyr_levels": self.levels,
            "evaluations": self.evaluations,
        }
