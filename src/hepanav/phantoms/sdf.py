"""Analytic signed-distance primitives for the procedural phantom (millimetres).

All functions take broadcastable coordinate arrays (x, y, z in LPS mm) and return
approximate signed distances in mm, negative inside. The first-order
approximation (value over gradient) is exact on the surface and good near it,
which is all partial-volume painting needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ellipse_sd(x, y, cx, cy, ax, by):
    """Approximate signed distance (mm) to an ellipse (first-order, good near the curve)."""
    px, py = (x - cx) / ax, (y - cy) / by
    k0 = np.sqrt(px * px + py * py)
    k1 = np.sqrt((px / ax) ** 2 + (py / by) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def ellipsoid_sd(x, y, z, c, a):
    """Approximate signed distance (mm) to an axis-aligned ellipsoid centre ``c``, axes ``a``."""
    px, py, pz = (x - c[0]) / a[0], (y - c[1]) / a[1], (z - c[2]) / a[2]
    k0 = np.sqrt(px * px + py * py + pz * pz)
    k1 = np.sqrt((px / a[0]) ** 2 + (py / a[1]) ** 2 + (pz / a[2]) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def smooth_min(a, b, k):
    """Polynomial smooth minimum (union of signed distances with a fillet of ``k`` mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


@dataclass(frozen=True)
class Waves:
    """A smooth random field: a sum of plane waves (mm -> dimensionless, within +-1)."""

    k: np.ndarray  # (K, 3) wave vectors, rad/mm
    phase: np.ndarray
    weight: np.ndarray

    @classmethod
    def random(cls, rng, n, wavelength_mm):
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        lam = rng.uniform(*wavelength_mm, n)
        w = rng.uniform(0.5, 1.0, n)
        return cls(d * (2 * np.pi / lam)[:, None], rng.uniform(0, 2 * np.pi, n), w / w.sum())

    def __call__(self, x, y, z):
        out = 0.0
        for (kx, ky, kz), ph, w in zip(self.k, self.phase, self.weight, strict=True):
            out = out + np.float32(w) * np.cos(
                np.float32(kx) * x + np.float32(ky) * y + np.float32(kz) * z + np.float32(ph)
            )
        return out
