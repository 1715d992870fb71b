"""Okabe-Ito categorical colours: the one colour cycle of every HepaNav figure.

Okabe & Ito 2008, "Color Universal Design" (https://jfly.uni-koeln.de/color/):
distinguishable under the common colour-vision deficiencies. Kept in ``core`` so that
:func:`hepanav.core.report.new_figure` can make it every axes' default colour cycle;
:mod:`hepanav.imaging.figures.palettes` re-exports it with the colour roles.
"""

from __future__ import annotations

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Categories in a fixed order, for needles, regions and other numbered items.
CATEGORICAL: list[str] = [
    OKABE_ITO[k]
    for k in (
        "blue",
        "orange",
        "bluish_green",
        "reddish_purple",
        "sky_blue",
        "vermillion",
        "yellow",
        "black",
    )
]
