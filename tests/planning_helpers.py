"""Shared helpers of the planning tests (independent checks, fast risk maps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml
from scipy import ndimage

from hepanav.planning.risk import load_risk_map


def fast_risk_map(tmp: Path, **trajectory) -> Path:
    """The default risk map with a short optimiser time limit (tests), written to ``tmp``."""
    risk = load_risk_map().model_dump()
    risk["trajectory"].update(
        {"optimiser_time_limit_s": 3.0, "monte_carlo_draws": 50, **trajectory}
    )
    path = Path(tmp) / "risk.yaml"
    path.write_text(yaml.safe_dump(risk), encoding="utf-8")
    return path


def violations_by_rasterising(labels: sitk.Image, needles, risk) -> list[str]:
    """Independent check: voxels on each needle closer to a no-go label than its clearance.

    Rasterises entry -> tip onto the label grid (0.1 mm steps, nearest voxel), computes a
    Euclidean distance map (voxel centres, mm) per rule on the full-resolution grid.
    """
    lab = sitk.GetArrayFromImage(labels)
    spacing_zyx = np.asarray(labels.GetSpacing())[::-1]
    found = []
    for rule in risk.structures:
        mask = np.isin(lab, rule.labels)
        if not mask.any():
            continue
        dist = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx)
        for needle in needles:
            entry, tip = np.asarray(needle.entry_lps_mm), np.asarray(needle.tip_lps_mm)
            n = int(np.linalg.norm(tip - entry) / 0.1) + 2
            for t in np.linspace(0.0, 1.0, n):
                p = entry + t * (tip - entry)
                ijk = np.rint(labels.TransformPhysicalPointToContinuousIndex(p.tolist())).astype(
                    int
                )
                if np.any(ijk < 0) or np.any(ijk >= np.asarray(labels.GetSize())):
                    continue
                if dist[ijk[2], ijk[1], ijk[0]] < rule.clearance_mm - 1e-6:
                    found.append(
                        f"needle {needle.needle} within {rule.clearance_mm} mm of {rule.name}"
                    )
                    break
    return found
