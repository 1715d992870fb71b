"""Figures drawn without an explicit colour use the Okabe-Ito cycle (colour-blind safe)."""

from __future__ import annotations

from matplotlib.colors import to_hex

from hepanav.core.palette import CATEGORICAL, OKABE_ITO
from hepanav.core.report import new_figure


def test_new_figure_axes_cycle_okabe_ito():
    fig, axes = new_figure(1, 2)
    for ax in axes:
        lines = [ax.plot([0, 1], [k, k])[0] for k in range(3)]
        assert [to_hex(line.get_color()).upper() for line in lines] == CATEGORICAL[:3]
    # matplotlib's own default (tab10 blue #1f77b4) is not among them
    assert "#1F77B4" not in CATEGORICAL
    assert CATEGORICAL[0] == OKABE_ITO["blue"]


def test_single_axes_figure_also_gets_the_cycle():
    fig, ax = new_figure()
    line = ax.plot([0, 1], [0, 1])[0]
    assert to_hex(line.get_color()).upper() == OKABE_ITO["blue"]
