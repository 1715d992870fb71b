"""Orientation letters from directions in LPS (R/L, A/P, S/I), for any direction matrix.

A screen direction is a unit vector in LPS (+x = patient Left, +y = Posterior,
+z = Superior; DICOM PS3.3 C.7.6.2.1.1). The letter at a screen edge names the
patient side that lies in that direction; an oblique direction gets up to three
letters, the dominant first (as in DICOM Patient Orientation (0020,0020), PS3.3
C.7.6.1.1.1), e.g. "LA" for mostly left, partly anterior.
"""

from __future__ import annotations

import numpy as np

_POSITIVE = ("L", "P", "S")
_NEGATIVE = ("R", "A", "I")

#: Components smaller than this (|cos| of about 80 degrees) are left out of a label.
OBLIQUE_MIN_COMPONENT = 0.17


def direction_letters(vector, min_component: float = OBLIQUE_MIN_COMPONENT) -> str:
    """Patient-side letters of an LPS direction, dominant first (e.g. ``"L"``, ``"PS"``).

    Parameters
    ----------
    vector : array-like, shape (3,)
        A direction in LPS (need not be unit length; must not be zero).
    min_component : float
        Components of the unit vector below this magnitude are ignored.

    Raises
    ------
    ValueError
        For a zero or non-finite vector.
    """
    v = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"orientation of a zero or non-finite vector {v}")
    v = v / norm
    order = np.argsort(-np.abs(v), kind="stable")
    letters = [
        (_POSITIVE if v[a] > 0 else _NEGATIVE)[a] for a in order if abs(v[a]) >= min_component
    ]
    return "".join(letters)


def edge_letters(right_lps, down_lps) -> dict[str, str]:
    """Letters for the four edges of a view.

    Columns of the view run along ``right_lps``, rows along ``down_lps`` (LPS vectors).

    Returns a dict with keys ``left``, ``right``, ``top``, ``bottom``.
    """
    r = np.asarray(right_lps, dtype=float)
    d = np.asarray(down_lps, dtype=float)
    return {
        "right": direction_letters(r),
        "left": direction_letters(-r),
        "bottom": direction_letters(d),
        "top": direction_letters(-d),
    }
