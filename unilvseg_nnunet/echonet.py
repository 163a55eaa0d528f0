"""EchoNet-Dynamic on disk: tracings to masks and volumes, following EchoNet-Dynamic's own rules."""
from __future__ import annotations

import numpy as np
import skimage.draw


def tracing_polygon(x1, y1, x2, y2) -> tuple[np.ndarray, np.ndarray]:
    """Polygon (x, y) of a tracing: x1[1:] then reversed x2[1:], likewise y (row 0 is the long axis)."""
    x = np.concatenate((np.asarray(x1, float)[1:], np.flip(np.asarray(x2, float)[1:])))
    y = np.concatenate((np.asarray(y1, float)[1:], np.flip(np.asarray(y2, float)[1:])))
    return x, y


def tracing_mask(x1, y1, x2, y2, shape: tuple[int, int]) -> np.ndarray:
    """Binary LV mask exactly as EchoNet-Dynamic draws it (skimage polygon on rounded vertices)."""
    x, y = tracing_polygon(x1, y1, x2, y2)
    r, c = skimage.draw.polygon(np.rint(y).astype(np.int64), np.rint(x).astype(np.int64), shape)
    mask = np.zeros(shape, np.uint8)
    mask[r, c] = 1
    return mask


def volume_by_disks(x1, y1, x2, y2) -> float:
    """LV volume (pixel^3 units) by the method of disks: sum(pi/4 * d_i^2 * L / n) over the n chords.

    Row 0 is the long axis (length L); rows 1.. are the chords perpendicular to it.
    """
    x1, y1, x2, y2 = (np.asarray(a, float) for a in (x1, y1, x2, y2))
    length = np.hypot(x2[0] - x1[0], y2[0] - y1[0])
    d = np.hypot(x2[1:] - x1[1:], y2[1:] - y1[1:])
    return float(np.sum(np.pi / 4.0 * d**2) * length / len(d))


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in percent."""
    return 100.0 * (edv - esv) / edv
