"""The working grid: a block-downsampled region of the planning CT for fast path checks.

Blocks of ``f = round(grid_mm / spacing)`` voxels per axis are reduced (mean HU, any
no-go label, fractions of tumour / liver), so every coarse voxel knows about every
full-resolution voxel inside it: a rib thinner than the coarse spacing still marks its
block. Distances are computed once per clearance value with an anisotropy-aware
Euclidean distance transform (``scipy.ndimage.distance_transform_edt(sampling=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.measure import block_reduce

from hepanav.imaging.geometry import index_to_lps_matrix
from hepanav.planning.schema import RiskMap


@dataclass
class WorkGrid:
    """Coarse arrays in (z, y, x) order with their LPS affine.

    ``lps = matrix @ (i, j, k) + origin`` with (i, j, k) the coarse index in x, y, z order.
    """

    matrix: np.ndarray  # (3, 3) index -> LPS, columns scaled by the coarse spacing
    origin: np.ndarray  # (3,) LPS of coarse voxel (0, 0, 0)
    spacing: np.ndarray  # (3,) coarse spacing x, y, z in mm
    body: np.ndarray  # bool, body outline (CT > -500 HU, largest component, holes filled)
    rule_bits: np.ndarray  # uint32, bit r set when block touches a label of rule r
    nogo_label: np.ndarray  # uint16, largest no-go label value in the block (for names)
    slack: np.ndarray  # float32, min over rules of (distance to rule - clearance), mm
    clearance_of_rule: list[float] = field(default_factory=list)
    entry_allowed: np.ndarray | None = None  # bool, user's skin entry region (None: all skin)

    def to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """LPS points (..., 3) -> continuous coarse indices (..., 3) in (z, y, x) order."""
        ijk = (np.asarray(points_lps) - self.origin) @ np.linalg.inv(self.matrix).T
        return ijk[..., ::-1]

    def to_lps(self, zyx: np.ndarray) -> np.ndarray:
        """Coarse indices (..., 3) in (z, y, x) order -> LPS points (..., 3)."""
        return np.asarray(zyx, dtype=float)[..., ::-1] @ self.matrix.T + self.origin

    def sample(self, array: np.ndarray, points_lps: np.ndarray, order: int, cval: float):
        """Values of a coarse ``array`` at LPS points (..., 3) (order 0 nearest, 1 linear)."""
        zyx = self.to_index(points_lps)
        flat = zyx.reshape(-1, 3).T
        values = ndimage.map_coordinates(array, flat, order=order, mode="constant", cval=cval)
        return values.reshape(zyx.shape[:-1])


def block_factors(spacing_xyz: tuple[float, ...], grid_mm: float) -> tuple[int, int, int]:
    """Integer block size per axis (x, y, z) giving about ``grid_mm`` coarse spacing."""
    return tuple(max(1, round(grid_mm / s)) for s in spacing_xyz)  # type: ignore[return-value]


def roi_box(mask_zyx: np.ndarray, spacing_xyz, pad_mm: float, shape_zyx) -> tuple[slice, ...]:
    """Slices (z, y, x) of the foreground box of ``mask_zyx`` grown by ``pad_mm`` and clipped."""
    nz = np.nonzero(mask_zyx)
    pad = np.ceil(pad_mm / np.asarray(spacing_xyz)[::-1]).astype(int)
    lo = [max(0, int(a.min()) - p) for a, p in zip(nz, pad, strict=True)]
    hi = [min(n, int(a.max()) + 1 + p) for a, n, p in zip(nz, shape_zyx, pad, strict=True)]
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def body_outline(ct_hu: np.ndarray) -> np.ndarray:
    """Body mask (z, y, x): CT > -500 HU, largest connected component, holes filled per slice.

    Filling per axial slice keeps bowel gas and lung inside the body, so a needle
    entering through them is not taken for an entry through the skin.
    """
    body = ct_hu > -500
    labels, n = ndimage.label(body)
    if n > 1:
        sizes = ndimage.sum_labels(body, labels, index=np.arange(1, n + 1))
        body = labels == (1 + int(np.argmax(sizes)))
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    return body


def build_work_grid(
    ct: sitk.Image,
    labels_zyx: np.ndarray,
    roi: tuple[slice, ...],
    risk: RiskMap,
    grid_mm: float,
    entry_region_zyx: np.ndarray | None = None,
) -> WorkGrid:
    """Reduce the planning CT and label map inside ``roi`` to the coarse working grid.

    Parameters
    ----------
    ct : SimpleITK.Image
        Planning CT in HU (its geometry defines LPS).
    labels_zyx : ndarray, shape of the CT array (z, y, x)
        Label map on the CT grid.
    roi : tuple of slice
        Region (z, y, x) of the CT array to cover.
    risk : RiskMap
        No-go rules and clearances (mm).
    grid_mm : float
        Target coarse spacing in mm.
    entry_region_zyx : ndarray of bool, optional
        Allowed skin entry region on the CT grid; grown by one coarse voxel.
    """
    from hepanav.planning.risk import label_lookup

    f_xyz = block_factors(ct.GetSpacing(), grid_mm)
    f_zyx = f_xyz[::-1]
    lab_roi = labels_zyx[roi]
    # Block mean of the CT with SimpleITK (multi-threaded): BinShrink averages f^3 voxels.
    start = [int(r.start) for r in roi][::-1]
    size = [int(r.stop - r.start) for r in roi][::-1]
    ct_box = sitk.Cast(sitk.RegionOfInterest(ct, size, start), sitk.sitkFloat32)
    mean_hu = sitk.GetArrayFromImage(sitk.BinShrink(ct_box, [int(f) for f in f_xyz]))
    want = tuple(-(-n // f) for n, f in zip(lab_roi.shape, f_zyx, strict=True))
    if mean_hu.shape != want:  # BinShrink drops the last partial block: pad it as air
        mean_hu = np.pad(
            mean_hu,
            [(0, w - m) for w, m in zip(want, mean_hu.shape, strict=True)],
            constant_values=-1000.0,
        )
    rule_of = label_lookup(risk, int(lab_roi.max(initial=0)))
    # Lookup tables keep the full-resolution temporaries at 16 bit (a 512 x 512 x 300
    # label map is 78 M voxels).
    bit_of = np.where(rule_of >= 0, np.left_shift(1, rule_of.clip(0).astype(np.int64)), 0)
    rule_bits = block_reduce(
        bit_of.astype(np.uint16)[lab_roi], f_zyx, np.bitwise_or.reduce, cval=0
    ).astype(np.uint32)
    nogo_of = np.where(rule_of >= 0, np.arange(rule_of.size), 0).astype(np.uint16)
    nogo_label = block_reduce(nogo_of[lab_roi], f_zyx, np.max, cval=0).astype(np.uint16)
    del bit_of, nogo_of
    a_fine, o_fine = index_to_lps_matrix(ct)
    start_xyz = np.array([s.start for s in roi][::-1], dtype=float)
    matrix = a_fine * np.asarray(f_xyz, dtype=float)
    origin = a_fine @ (start_xyz + (np.asarray(f_xyz) - 1) / 2.0) + o_fine
    spacing = np.asarray(ct.GetSpacing()) * np.asarray(f_xyz)

    clearances = [r.clearance_mm for r in risk.structures]
    slack = np.full(mean_hu.shape, np.float32(1e6), dtype=np.float32)
    for value in sorted(set(clearances)):
        group = [i for i, c in enumerate(clearances) if c == value]
        group_bits = np.uint32(sum(1 << i for i in group))
        mask = (rule_bits & group_bits) != 0
        if not mask.any():
            continue
        dist = ndimage.distance_transform_edt(~mask, sampling=spacing[::-1])
        np.minimum(slack, (dist - value).astype(np.float32), out=slack)
    entry_allowed = None
    if entry_region_zyx is not None:
        entry_allowed = ndimage.binary_dilation(
            block_reduce(entry_region_zyx[roi], f_zyx, np.max, cval=0) > 0, iterations=1
        )
    return WorkGrid(
        entry_allowed=entry_allowed,
        matrix=matrix,
        origin=origin,
        spacing=spacing,
        body=body_outline(mean_hu),
        rule_bits=rule_bits,
        nogo_label=nogo_label,
        slack=slack,
        clearance_of_rule=clearances,
    )
