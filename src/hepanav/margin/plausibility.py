"""Plausibility checks of a margin result: conditions under which its verdict (the
category) must not be read at face value. Not refusals: shown in red beside the
verdict in the report, in ``margin.json`` (``plausibility``) and on the terminal.

* **zone smaller than the tumour**: an ablation zone of smaller volume than the tumour
  it should cover is what swapping ``--pre`` and ``--post`` (or an under-segmented
  zone) gives: the "incomplete" verdict and residual tumour then describe the wrong
  images. A genuinely incomplete ablation can be smaller, so it is a warning.
* **tumour cut by the image border**: the figures and the category cover only the
  tumour surface inside the image (:func:`hepanav.margin.measure.measure_margin` leaves
  the cut surface out), not the whole lesion.
"""

from __future__ import annotations


def plausibility_warnings(
    tumor_volume_ml: float, ablation_volume_ml: float, cut_fraction: float
) -> list[str]:
    """Warnings (possibly none) for a margin result.

    Parameters
    ----------
    tumor_volume_ml, ablation_volume_ml : float
        Mask volumes, ml (voxel counts of each mask).
    cut_fraction : float
        Fraction (0..1) of the tumour surface on the image border, not assessed.
    """
    out = []
    if ablation_volume_ml < tumor_volume_ml:
        out.append(
            f"the ablation zone ({ablation_volume_ml:.2f} ml) is SMALLER than the tumour "
            f"({tumor_volume_ml:.2f} ml): --pre and --post swapped, or the zone "
            "under-segmented? Check both before trusting the verdict"
        )
    if cut_fraction > 0:
        out.append(
            f"the tumour is cut by the image border ({100 * cut_fraction:.1f} % of its surface "
            "not assessable): the category grades only the part inside the image, not the "
            "whole lesion, and the tumour volume is a lower bound"
        )
    return out
