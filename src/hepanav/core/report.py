"""HTML reports: Jinja2 templates that extend one base page, figures inlined as PNG.

A capability keeps its page in ``<package>/templates/<name>.html.j2``; the page
``{% extends "base.html.j2" %}`` and fills ``{% block content %}``. The base page
carries the title, the generation time, the HepaNav version and the
not-a-medical-device disclaimer, so no report can leave it out.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

from hepanav import DISCLAIMER, __version__
from hepanav.core.atomic import write_text


def _environment(package: str) -> Environment:
    loaders = [PackageLoader(package, "templates")] if package != "hepanav.core" else []
    loaders.append(PackageLoader("hepanav.core", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["pct"] = format_percent
    env.filters["amount"] = format_amount
    env.filters["margin"] = format_margin
    env.filters["safe_url"] = safe_url
    return env


def safe_url(value: Any) -> str:
    """The URL if its scheme is http or https, else ``""`` (Jinja2 filter ``safe_url``).

    Every ``href``/``src`` built from data goes through this filter
    (``<a href="{{ url | safe_url }}">``): a ``javascript:``, ``data:``, ``file:`` or
    scheme-less value from a user's rule file must never become a live link. Control
    characters and white space inside the scheme (``java\tscript:``) are refused too.
    """
    from urllib.parse import urlsplit

    if value is None:
        return ""
    text = str(value).strip()
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text) or " " in text:
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return text


def format_number(value: Any, digits: int = 1) -> str:
    """Format a number for a table or a terminal line; ``None`` shows as an em dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, float):
        text = f"{value:.{digits}f}"
        # -0.04 at one digit is "0.0", not "-0.0" (a negative zero reads as a glitch)
        return text.lstrip("-") if float(text) == 0 else text
    return str(value)


_fmt = format_number  # the ``fmt`` filter of the templates

#: Most decimals :func:`format_margin` shows to keep a negative margin's sign (1 µm).
MARGIN_MAX_DIGITS = 3


def format_margin(value: Any, digits: int = 1) -> str:
    """A signed margin (mm) for a table, a terminal line, a figure or a DICOM text, never
    shown as 0 when it is negative (Jinja2 filter ``margin``).

    As :func:`format_number`, except that a NEGATIVE value that rounds to zero at
    ``digits`` decimals is given with more, up to :data:`MARGIN_MAX_DIGITS`
    (-0.014 -> ``"-0.01"`` at 1 digit), and as ``"< 0"`` when even that rounds to zero
    (-0.0004). A MAM below 0 mm is an incomplete ablation: "MAM 0.0 mm" beside the
    category "incomplete" (tester: MAM -0.014 mm) hid the sign the category rests on.
    Non-negative values and ``None`` (em dash) as :func:`format_number`; no unit added.
    """
    text = format_number(value, digits)
    if not isinstance(value, float) or value >= 0 or float(text) != 0:
        return text
    for more in range(digits + 1, MARGIN_MAX_DIGITS + 1):
        text = f"{value:.{more}f}"
        if float(text) != 0:
            return text
    return "< 0"


def format_amount(value: Any, digits: int = 2) -> str:
    """A non-negative quantity (a volume in ml, an area) that is never shown as zero when
    it is not (Jinja2 filter ``amount``): 0.000125 ml at 2 digits -> "<0.01" (tester:
    "1 region(s), 0.00 ml outside the zone"); exactly 0 -> "0.00"; otherwise as
    :func:`format_number`. No unit is added."""
    text = format_number(value, digits)
    if isinstance(value, float) and value > 0 and float(text) == 0:
        return f"<{10.0**-digits:.{digits}f}"
    return text


def format_percent(fraction: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage with ``digits`` decimals, never rounded to
    a bound it does not reach (Jinja2 filter ``pct``): 0.99996 -> ">99.9", 0.00004 ->
    "<0.1" (a shell "100.0 %" inside the zone beside a margin < 5 mm read as a
    contradiction); exactly 0 and 1 -> "0.0" and "100.0"; ``None`` -> em dash. No "%"
    sign is added."""
    if fraction is None:
        return "\u2014"
    value = 100.0 * float(fraction)
    text = format_number(value, digits)
    step = 10.0**-digits
    if 0.0 < float(fraction) < 1.0:
        if float(text) >= 100.0:
            return f">{100.0 - step:.{digits}f}"
        if float(text) <= 0.0:
            return f"<{step:.{digits}f}"
    return text


def render_html(package: str, template: str, *, title: str, **context: Any) -> str:
    """Render ``template`` of ``package`` (e.g. ``"hepanav.margin"``) to an HTML string."""
    env = _environment(package)
    return env.get_template(template).render(
        title=title,
        disclaimer=DISCLAIMER,
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )


def write_html(
    path: str | Path, package: str, template: str, *, title: str, **context: Any
) -> Path:
    """Render a report and write it atomically to ``path``; return the path."""
    return write_text(path, render_html(package, template, title=title, **context))


def figure_to_data_uri(fig: Any, dpi: int = 110) -> str:
    """Encode a matplotlib figure as a ``data:image/png;base64`` URI and close it.

    Reports inline their figures so that one HTML file can be mailed or archived.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(*args: Any, **kwargs: Any) -> Any:
    """``plt.subplots`` on the non-interactive Agg backend (no display needed).

    Every axes gets the Okabe-Ito colour cycle (:data:`hepanav.core.palette.CATEGORICAL`)
    instead of matplotlib's tab10, whose green and red next to each other are not
    told apart under deuteranopia: a line or bar drawn without a colour is
    colour-blind safe too.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from hepanav.core.palette import CATEGORICAL

    fig, axes = plt.subplots(*args, **kwargs)
    for ax in np.atleast_1d(axes).ravel():
        ax.set_prop_cycle(color=CATEGORICAL)
    return fig, axes
