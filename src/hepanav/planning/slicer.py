"""3D Slicer markups (``.mrk.json``) for planned trajectories.

Slicer stores markups in RAS or LPS as stated by each markup's ``coordinateSystem``
field (Slicer 5 writes LPS by default); HepaNav writes ``"LPS"`` explicitly, so the
positions are the plan's LPS millimetres unchanged. One file holds every needle as a
``Line`` markup (entry -> tip); a ``Fiducial`` list holds the zone centres.
"""

from __future__ import annotations

from pathlib import Path

from hepanav.core.atomic import write_json
from hepanav.planning.schema import PlanResult

SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)
_COLOURS = [
    (0.9, 0.2, 0.2),
    (0.2, 0.6, 0.9),
    (0.2, 0.8, 0.3),
    (0.9, 0.7, 0.1),
    (0.7, 0.3, 0.9),
    (0.1, 0.8, 0.8),
    (0.9, 0.4, 0.7),
    (0.6, 0.6, 0.6),
]


def _point(label: str, position, description: str = "") -> dict:
    return {
        "label": label,
        "description": description,
        "position": [float(v) for v in position],
        "locked": True,
        "visibility": True,
        "positionStatus": "defined",
    }


def markups(plan: PlanResult) -> dict:
    """The markups JSON document of a plan (a dict ready for ``json.dump``).

    Raises
    ------
    ValueError
        The plan is not feasible: its needles must not reach a navigation system.
    """
    if not plan.feasible:
        raise ValueError("an infeasible plan has no navigation trajectories")
    items = []
    for k, needle in enumerate(plan.needles):
        items.append(
            {
                "type": "Line",
                "name": f"needle {needle.needle}",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "locked": True,
                "controlPoints": [
                    _point(f"N{needle.needle} entry", needle.entry_lps_mm, "skin entry"),
                    _point(f"N{needle.needle} tip", needle.tip_lps_mm, "deepest tip position"),
                ],
                "measurements": [],
                "display": {
                    "color": list(_COLOURS[k % len(_COLOURS)]),
                    "selectedColor": list(_COLOURS[k % len(_COLOURS)]),
                    "lineThickness": 0.3,
                },
            }
        )
    items.append(
        {
            "type": "Fiducial",
            "name": "zone centres",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "locked": True,
            "controlPoints": [
                _point(
                    f"N{p.needle}.{p.position}",
                    p.zone_center_lps_mm,
                    f"{p.device}, zone {p.zone_axes_mm[0]:.0f}x{p.zone_axes_mm[1]:.0f} mm",
                )
                for p in plan.probes
            ],
            "measurements": [],
        }
    )
    return {"@schema": SCHEMA, "markups": items}


def write_markups(plan: PlanResult, path: str | Path) -> Path:
    """Write the plan's trajectories as a Slicer ``.mrk.json`` file (atomically)."""
    return write_json(path, markups(plan))
