"""Mesh building blocks of the synthetic board USDs: boxes, quads, one mesh prim of pieces, a new stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pxr import Gf, Usd, UsdGeom, Vt

BOARD_TOP = 1.57  # mm, board thickness (the 0603_H100 demo instance sits at world z 1.57)


def box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> tuple[list, list]:
    """(points, quad faces) of an axis-aligned box."""
    pts = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return pts, faces


def quad(x0: float, x1: float, y0: float, y1: float, z: float) -> tuple[list, list]:
    return [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], [(0, 1, 2, 3)]


def mesh(
    stage: Usd.Stage, path: str, pieces: list[tuple[list, list]], color: tuple[float, float, float]
) -> None:
    """One Mesh prim at `path` of all `pieces` (points, faces), with its extent and display colour."""
    points: list = []
    counts: list[int] = []
    indices: list[int] = []
    for pts, faces in pieces:
        base = len(points)
        points += pts
        for f in faces:
            counts.append(len(f))
            indices += [base + i for i in f]
    prim = UsdGeom.Mesh.Define(stage, path)
    prim.CreatePointsAttr(Vt.Vec3fArray([Gf.Vec3f(*p) for p in points]))
    prim.CreateFaceVertexCountsAttr(counts)
    prim.CreateFaceVertexIndicesAttr(indices)
    arr = np.asarray(points, dtype=float)
    prim.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*arr.min(0)), Gf.Vec3f(*arr.max(0))]))
    prim.CreateDisplayColorAttr([Gf.Vec3f(*color)])


def new_stage(out: str | Path) -> Usd.Stage:
    """A new millimetre, Z-up stage at `out`."""
    stage = Usd.Stage.CreateNew(str(out))
    stage.SetMetadata("metersPerUnit", 0.001)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    return stage
