"""The synthetic runs' pixels: a PCB board, a component's OV-style render and labels, the SL look, a defect."""

from __future__ import annotations

import zlib

import numpy as np

BOARD_GREEN = (28, 92, 48)
SILVER = (205, 208, 212)


def seeded_rng(*key: object) -> np.random.Generator:
    # Seed from the sample identity so every run of the generator writes the same pixels.
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def board_image(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((h, w, 3), np.float64)
    img[:] = BOARD_GREEN
    img += rng.normal(0, 4, (h, w, 1))
    # Copper traces under the solder mask: a few lighter horizontal/vertical stripes.
    for _ in range(3):
        if rng.random() < 0.5:
            y = int(rng.integers(0, h))
            img[max(0, y - 1) : y + 2, :] += (10, 30, 12)
        else:
            x = int(rng.integers(0, w))
            img[:, max(0, x - 1) : x + 2] += (10, 30, 12)
    return img


def component_image(
    material: str, h: int, w: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict]:
    """An OV-style render (flat colours) and its CAD label map; `geom` says where parts are."""
    img = board_image(h, w, rng)
    labels = np.zeros((h, w), np.uint8)
    cy, cx = (
        h // 2 + int(rng.integers(-h // 16, h // 16 + 1)),
        w // 2 + int(rng.integers(-w // 16, w // 16 + 1)),
    )
    if material == "IC":
        bh, bw = h // 3, w // 3
        y0, y1, x0, x1 = cy - bh // 2, cy + bh // 2, cx - bw // 2, cx + bw // 2
        legs = []
        n = 3
        for i in range(n):
            lx0 = x0 + (i * 2 + 1) * bw // (2 * n + 1)
            lx1 = lx0 + max(1, bw // (2 * n + 1))
            for ly0, ly1 in ((y0 - h // 8, y0), (y1, y1 + h // 8)):
                img[ly0:ly1, lx0:lx1] = SILVER
                labels[ly0:ly1, lx0:lx1] = 2
                legs.append((ly0, ly1, lx0, lx1))
        img[y0:y1, x0:x1] = (34, 34, 38)
        labels[y0:y1, x0:x1] = 1
        img[
            y0 + bh // 5 : y0 + bh // 5 + max(1, bh // 10), x0 + bw // 6 : x0 + bw // 6 + max(1, bw // 10)
        ] = (90, 90, 90)
        geom = {"body": (y0, y1, x0, x1), "legs": legs}
    else:
        bh, bw = h // 4, w // 2
        y0, y1, x0, x1 = cy - bh // 2, cy + bh // 2, cx - bw // 2, cx + bw // 2
        cap = max(2, bw // 5)
        # Solder pads peek out around the part.
        img[y0 - 2 : y1 + 2, x0 - 3 : x0 + cap] = (176, 160, 120)
        img[y0 - 2 : y1 + 2, x1 - cap : x1 + 3] = (176, 160, 120)
        img[y0:y1, x0:x1] = (128, 96, 64)
        img[y0:y1, x0 : x0 + cap] = SILVER
        img[y0:y1, x1 - cap : x1] = SILVER
        labels[y0:y1, x0:x1] = 1
        labels[y0:y1, x0 : x0 + cap] = 2
        labels[y0:y1, x1 - cap : x1] = 2
        geom = {"body": (y0, y1, x0, x1), "cap": cap}
    return img, labels, geom


def restyle(ov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in for the OVSL2SL look: warm ring light, vignette, soft focus, sensor noise."""
    h, w, _ = ov.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
    light = 1.25 - 0.9 * r[..., None] ** 2
    out = ov * light * (1.12, 1.04, 0.8) + (10, 6, 0)
    # Specular highlight on bright metal.
    metal = ov.mean(axis=2, keepdims=True) > 170
    out = np.where(metal, out * 1.1 + 18, out)
    blurred = out.copy()
    blurred[1:-1, 1:-1] = (
        out[:-2, 1:-1] + out[2:, 1:-1] + out[1:-1, :-2] + out[1:-1, 2:] + 4 * out[1:-1, 1:-1]
    ) / 8
    return blurred + rng.normal(0, 3, blurred.shape)


def paint_defect(
    img: np.ndarray, material: str, defect: str, geom: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """AnomalyGen stand-in: the image with a defect painted in, and the defect's binary mask."""
    h, w, _ = img.shape
    out = img.copy()
    mask = np.zeros((h, w), bool)
    y0, y1, x0, x1 = geom["body"]
    if defect == "missing":
        mask[y0 - 3 : y1 + 3, x0 - 4 : x1 + 4] = True
        board = restyle(board_image(h, w, rng), rng)
        out[mask] = board[mask]
        cap = geom["cap"]
        for a, b in ((x0 - 3, x0 + cap), (x1 - cap, x1 + 3)):  # bare pads stay behind
            out[y0:y1, a:b] = (196, 178, 132)
    elif defect == "excess_solder":
        cy, cx = (y0 + y1) // 2, x1
        ry, rx = (y1 - y0) * 0.9, (x1 - x0) * 0.28
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        shade = 1.0 - 0.35 * (((yy - cy + ry / 3) / ry) ** 2 + ((xx - cx + rx / 3) / rx) ** 2)
        out[mask] = (np.array(SILVER) * np.clip(shade, 0.5, 1.1)[..., None])[mask]
    else:  # bridge: solder joins two neighbouring legs
        legs = geom["legs"]
        a, b = legs[0], legs[2]
        ly0, ly1 = a[0], a[1]
        mask[ly0 + (ly1 - ly0) // 3 : ly1, a[2] : b[3]] = True
        out[mask] = np.array(SILVER) * 0.95
    return out, mask
