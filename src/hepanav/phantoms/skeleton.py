"""Vertebrae, ribs with costal cartilages, and the sternum of the procedural phantom."""

from __future__ import annotations

import numpy as np

from hepanav.phantoms.body import BODY_AXES, RIB_DEPTH, RIB_RADIUS
from hepanav.phantoms.canvas import HU, Canvas
from hepanav.phantoms.grid import partial_volume
from hepanav.phantoms.schema import LABEL_IDS
from hepanav.phantoms.sdf import ellipse_sd
from hepanav.phantoms.vessels import Segment, paint_segments

# Vertebrae from T11 down, each 34 mm high including a 6 mm disc (adult lumbar bodies
# are about 25-30 mm high with 8-10 mm discs).
VERTEBRA_HEIGHT_MM, DISC_MM, T11_TOP_Z = 34.0, 6.0, 102.0
VERTEBRA_NAMES = (
    "vertebrae_T11",
    "vertebrae_T12",
    "vertebrae_L1",
    "vertebrae_L2",
    "vertebrae_L3",
    "vertebrae_L4",
    "vertebrae_L5",
)


def paint_spine(cv: Canvas) -> None:
    """Vertebral bodies (cortex and marrow), discs, posterior arches, spinal canal."""
    block = cv.block((-30, 30, -1e4), (30, 115, 1e4))
    if block is None:
        return
    x, y, z = cv.grid.axes(block)
    body = np.sqrt(x * x + (y - 55.0) ** 2) - 19.0
    canal = np.sqrt(x * x + (y - 84.0) ** 2)
    arch = np.maximum(canal - 15.0, 8.0 - canal)
    spinous = np.maximum(np.abs(x) - 5.0, np.abs(y - 102.0) - 9.0)
    bone = np.minimum(np.minimum(body, arch), spinous)
    rel = (T11_TOP_Z - z) % VERTEBRA_HEIGHT_MM
    index = np.floor((T11_TOP_Z - z) / VERTEBRA_HEIGHT_MM).astype(int)
    disc = np.minimum(rel, VERTEBRA_HEIGHT_MM - rel) - DISC_MM / 2  # < 0 inside a disc
    bone_sd = np.maximum(bone, -disc)
    cv.paint(block, bone_sd, HU["bone_cortex"])
    cv.paint(
        block,
        np.maximum(bone_sd + 2.0, np.broadcast_to(body + 2.0, bone_sd.shape)),
        HU["bone_marrow"],
    )
    cv.paint(block, np.maximum(body, disc) * np.ones_like(bone_sd), HU["disc"])
    cv.paint(block, (canal - 8.0) * np.ones_like(bone_sd), HU["csf"])
    names = np.array([LABEL_IDS[n] for n in VERTEBRA_NAMES] + [0], np.uint8)
    level = names[np.clip(index, 0, len(VERTEBRA_NAMES))]
    inside = bone_sd < 0
    lab = cv.labels[block]
    lab[inside] = np.broadcast_to(level, lab.shape)[inside]


# Ribs 6-12 of each side: posterior height (z at the angle, mm) and the fraction of the
# half-circumference (0 = back midline, 1 = front midline) where bone and cartilage end.
RIBS = {
    k: (100.0 - 21.0 * (k - 6), end, cart)
    for k, end, cart in (
        (6, 0.72, 0.93),
        (7, 0.72, 0.92),
        (8, 0.70, 0.88),
        (9, 0.68, 0.84),
        (10, 0.65, 0.80),
        (11, 0.50, 0.50),
        (12, 0.38, 0.38),
    )
}


def paint_ribs(cv: Canvas) -> None:
    """Curved ribs in the chest wall sloping down anteriorly, costal cartilages, sternum."""
    g = cv.grid
    x, y, _ = g.axes()
    x2, y2 = np.broadcast_arrays(x[0], y[0])
    ra, rb = BODY_AXES[0] - RIB_DEPTH, BODY_AXES[1] - RIB_DEPTH
    ring = ellipse_sd(x2, y2, 0.0, 0.0, ra, rb)
    near = np.abs(ring) < RIB_RADIUS + 2 * cv.voxel
    jy, ix = np.nonzero(near)
    rd = ring[jy, ix]
    px, py = x2[jy, ix], y2[jy, ix]
    oz, sz, nz = g.origin[2], g.spacing[2], g.shape[0]
    reach = int(np.ceil((RIB_RADIUS + 2 * cv.voxel) / sz))
    for side, base in ((-1.0, 103), (1.0, 91)):
        t = np.arctan2(side * px / ra, py / rb) / np.pi
        for k, (z_post, bone_end, cart_end) in RIBS.items():
            sel = (t >= 0.1) & (t <= cart_end)
            tt = t[sel]
            zc = np.where(
                tt <= bone_end,
                z_post - 60.0 * (tt - 0.1),
                z_post - 60.0 * (bone_end - 0.1) + 40.0 * (tt - bone_end),
            )
            cartilage = tt > bone_end
            js, is_, rds = jy[sel], ix[sel], rd[sel]
            k0 = np.rint((zc - oz) / sz).astype(int)
            for dk in range(-reach, reach + 1):
                kz = k0 + dk
                ok = (kz >= 0) & (kz < nz)
                zz = oz + kz[ok] * sz
                sd = np.sqrt(rds[ok] ** 2 + (zz - zc[ok]) ** 2) - RIB_RADIUS
                idx = (kz[ok], js[ok], is_[ok])
                frac = partial_volume(sd, cv.voxel)
                value = np.where(
                    cartilage[ok],
                    HU["cartilage"],
                    HU["bone_marrow"]
                    + (HU["bone_cortex"] - HU["bone_marrow"]) * np.clip(sd + 2.5, 0.0, 1.0),
                )
                cv.hu[idx] += (value - cv.hu[idx]) * frac
                label = np.where(cartilage[ok], LABEL_IDS["costal_cartilages"], base + k)
                inside = sd < 0
                cv.labels[tuple(i[inside] for i in idx)] = label[inside]
    sternum = [Segment(np.array([0.0, -100.0, 48.0]), np.array([0.0, -102.0, 130.0]), 7.0, 8.0)]
    paint_segments(cv.hu, cv.labels, g, sternum, HU["bone_marrow"] + 150.0, LABEL_IDS["sternum"])
