"""The body frame of the procedural phantom: cross-section, wall layers, diaphragm (mm, LPS)."""

from __future__ import annotations

import numpy as np

from hepanav.phantoms.sdf import ellipse_sd

# Body cross-section (semi-axes, mm) and wall layers (depth from the skin, mm).
BODY_AXES = (160.0, 120.0)
FAT_DEPTH, WALL_DEPTH, RIB_DEPTH, RIB_RADIUS = 15.0, 27.0, 21.0, 5.0


def body_sd(x, y):
    """Signed distance (mm) to the skin; the body cross-section is an ellipse."""
    return ellipse_sd(x, y, 0.0, 0.0, *BODY_AXES)


def diaphragm_z(x, y):
    """Height (z, mm) of the diaphragm: right dome higher than the left, recesses at the wall."""
    right = 32.0 * np.exp(-((x + 65.0) ** 2 / (2 * 55.0**2) + y**2 / (2 * 60.0**2)))
    left = 22.0 * np.exp(-((x - 65.0) ** 2 / (2 * 50.0**2) + (y - 5.0) ** 2 / (2 * 55.0**2)))
    inner = body_sd(x, y) + WALL_DEPTH
    # Costophrenic recesses: the lung reaches lowest at the wall, mostly behind and laterally.
    back = np.clip((y + 40.0) / 120.0, 0.0, 1.0)
    recess = 30.0 * np.exp(np.minimum(inner, 0.0) / 20.0) * (0.3 + 0.7 * back)
    posterior = 12.0 * np.clip((y - 20.0) / 80.0, 0.0, 1.0)
    return 40.0 + right + left - recess - posterior
