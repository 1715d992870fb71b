"""Colour-blind-safe palettes for every HepaNav figure.

Categories use the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design",
https://jfly.uni-koeln.de/color/), distinguishable under the common colour-vision
deficiencies. Continuous maps use viridis or cividis (perceptually uniform, readable
in grey and under deuteranopia; Nunez et al. 2018, PLoS ONE 13:e0199239).
"""

from __future__ import annotations

from hepanav.core.palette import CATEGORICAL, OKABE_ITO  # noqa: F401 (re-exported)

#: The roles HepaNav figures give colours (the same meaning in every report).
ROLE: dict[str, str] = {
    "tumour": OKABE_ITO["reddish_purple"],
    "zone": OKABE_ITO["bluish_green"],
    "residual": OKABE_ITO["vermillion"],  # margin < 0 mm: tumour outside the zone
    "short": OKABE_ITO["yellow"],  # 0 <= margin < 5 mm
    "target": OKABE_ITO["yellow"],  # tumour + margin (planning)
    "needle": OKABE_ITO["sky_blue"],
    "detected": OKABE_ITO["yellow"],
    "vessel": OKABE_ITO["vermillion"],
    "bone": "#FFFFFF",
    "organ": OKABE_ITO["blue"],
    "marker": OKABE_ITO["yellow"],
    "reference": OKABE_ITO["sky_blue"],
    "moving": OKABE_ITO["reddish_purple"],
}

CONTINUOUS = "viridis"
CONTINUOUS_ALT = "cividis"


def needle_colour(k: int) -> str:
    """Colour of the ``k``-th (0-based) needle or numbered item (Okabe-Ito, cycling)."""
    return CATEGORICAL[k % len(CATEGORICAL)]
