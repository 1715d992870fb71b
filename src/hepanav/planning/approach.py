"""Approach rules on the skin entry: ipsilateral entry, maximum depth, subcostal entry.

The rules come from the risk map's ``trajectory`` section (``ipsilateral_entry``,
``midline_tolerance_mm``, ``max_depth_mm``, ``rib_approach``, ``subcostal_radius_mm``,
``rib_labels``). They are HepaNav defaults for the interventional radiologist to set:
entering on the tumour's side keeps the path short and away from the midline
structures; a subcostal-only approach avoids the intercostal vessels and pleura when
the operator prefers it (an intercostal approach remains the usual path to
segments 7/8).

The body midline is the centre of the body outline's left-right extent in the axial
slice of the tumour centre (CT > -500 HU, as the body outline of the work grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hepanav.planning.schema import TrajectoryRules


@dataclass
class ApproachContext:
    """The approach rules resolved for one plan (LPS mm)."""

    midline_x: float | None
    tumour_side: int  # -1: tumour right of the midline (x < midline), +1: left
    ipsilateral: bool
    tolerance_mm: float
    max_depth_mm: float | None
    rib_points: np.ndarray | None  # (N, 3) LPS, only for the subcostal rule
    subcostal_radius_mm: float

    def entry_reason(self, entry: np.ndarray) -> str | None:
        """Why ``entry`` (LPS mm) breaks a rule, or None when it is allowed."""
        if self.ipsilateral and self.midline_x is not None:
            across = (entry[0] - self.midline_x) * -self.tumour_side
            if across > self.tolerance_mm:
                return "entry across the midline (ipsilateral entry required)"
        if self.rib_points is not None and len(self.rib_points):
            d = np.linalg.norm(self.rib_points[:, :2] - entry[:2], axis=1)
            near = self.rib_points[d <= self.subcostal_radius_mm]
            if len(near) and entry[2] >= near[:, 2].min():
                return "entry not below the costal margin (subcostal approach required)"
        return None


def body_midline_x(body_zyx: np.ndarray, to_lps, z_index: int) -> float | None:
    """LPS x (mm) of the centre of the body's left-right extent in slice ``z_index``.

    ``body_zyx`` is a boolean body outline in (z, y, x) order; ``to_lps`` maps (z, y, x)
    indices (N, 3) to LPS points. None when the slice holds no body.
    """
    z = int(np.clip(z_index, 0, body_zyx.shape[0] - 1))
    idx = np.argwhere(body_zyx[z])
    if not len(idx):
        return None
    lps = to_lps(np.column_stack([np.full(len(idx), z), idx]))
    return float((lps[:, 0].min() + lps[:, 0].max()) / 2.0)


def approach_context(grid, rules: TrajectoryRules, tumour_centre: np.ndarray) -> ApproachContext:
    """Resolve the approach rules on the planning work grid around ``tumour_centre`` (LPS)."""
    z_index = int(round(float(grid.to_index(tumour_centre)[0])))
    midline = body_midline_x(grid.body, grid.to_lps, z_index)
    side = -1 if midline is None or tumour_centre[0] < midline else 1
    ribs = None
    if rules.rib_approach == "subcostal":
        idx = np.argwhere(np.isin(grid.nogo_label, rules.rib_labels))
        ribs = grid.to_lps(idx) if len(idx) else np.zeros((0, 3))
    return ApproachContext(
        midline_x=midline,
        tumour_side=side,
        ipsilateral=rules.ipsilateral_entry,
        tolerance_mm=rules.midline_tolerance_mm,
        max_depth_mm=rules.max_depth_mm,
        rib_points=ribs,
        subcostal_radius_mm=rules.subcostal_radius_mm,
    )
