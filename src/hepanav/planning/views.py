"""The images of the plan and placement reports, drawn with hepanav.imaging.figures.

Plan: three planes through the tumour (risk structures, tumour, tumour + margin and
the predicted zones; no needle projections), and per needle the two views along the
needle and the probe's-eye view at its deepest zone centre. An infeasible plan shows
where tumour + margin is not covered and what lies in the way, with no needle drawn.
Placement: per planned needle, the control CT along the planned path with the
planned (dashed) and the detected needle (solid).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, new_figure
from hepanav.imaging.figures import (
    OKABE_ITO,
    ROLE,
    Plane,
    annotate_plane,
    draw_mask,
    draw_segment,
    figure_legend,
    line_planes,
    probe_eye_plane,
    resample_to_plane,
    show_plane,
    three_planes,
)
from hepanav.planning.zones import inside_zones

#: Fill colours of the risk groups (Okabe-Ito; bone white as on CT).
GROUP_COLOURS = {"bone": "#FFFFFF", "vessel": OKABE_ITO["vermillion"], "other": OKABE_ITO["blue"]}
GROUP_NAMES = {
    "bone": "bone (no-go)",
    "vessel": "heat-sink vessels (no-go)",
    "other": "other no-go organs",
}


def risk_groups(risk) -> dict[str, list[int]]:
    """Label ids of the risk map grouped as bone, heat-sink vessels and other organs."""
    groups: dict[str, list[int]] = {"bone": [], "vessel": [], "other": []}
    for rule in risk.structures:
        key = "bone" if rule.name == "bone" else "vessel" if rule.heat_sink else "other"
        groups[key].extend(rule.labels)
    return groups


def _plane_points(plane: Plane) -> np.ndarray:
    rows, cols = plane.shape
    r, c = np.indices((rows, cols))
    return plane.pixel_to_lps(np.stack([c.ravel(), r.ravel()], axis=1))


def zone_fraction(plane: Plane, centres, dirs, axes) -> np.ndarray:
    """1.0 where a pixel of ``plane`` lies inside any predicted zone, else 0.0 (rows, cols)."""
    if not len(centres):
        return np.zeros(plane.shape)
    inside = inside_zones(_plane_points(plane), np.asarray(centres), np.asarray(dirs), axes)
    return inside.reshape(plane.shape).astype(float)


def draw_risk(ax, plane: Plane, labels: sitk.Image, groups: dict[str, list[int]]) -> None:
    """Fill the risk groups on the plane (nearest-neighbour labels, translucent)."""
    lab = resample_to_plane(labels, plane, interpolator=sitk.sitkNearestNeighbor)
    for group, ids in groups.items():
        if ids:
            draw_mask(
                ax,
                plane,
                np.isin(lab, ids).astype(float),
                GROUP_COLOURS[group],
                lw=0.8,
                fill_alpha=0.28,
            )


def _target_image(out) -> sitk.Image:
    """Tumour + margin of the evaluation crop as an image on the CT's geometry."""
    region = out.region
    full = np.zeros(sitk.GetArrayViewFromImage(out.inputs.tumor).shape, dtype=np.uint8)
    full[region.box] = region.target
    image = sitk.GetImageFromArray(full)
    image.CopyInformation(out.inputs.ct)
    return image


def _tumour_centre(out) -> np.ndarray:
    from hepanav.imaging.geometry import voxel_to_lps

    idx = np.argwhere(sitk.GetArrayViewFromImage(out.inputs.tumor) > 0)
    return voxel_to_lps(out.inputs.ct, idx[:, ::-1].mean(axis=0)[None])[0]


def overview_figure(out, risk, *, infeasible: bool = False) -> str:
    """Three planes through the tumour (or through the uncovered target when infeasible)."""
    ct, labels = out.inputs.ct, out.inputs.labels
    target = _target_image(out)
    axes_mm = out.result.device.zone_axes_mm
    centre = _tumour_centre(out)
    if infeasible:
        centre = _uncovered_centre(out, target) if out.result.needles else centre
    groups = risk_groups(risk)
    fig, axes = new_figure(1, 3, figsize=(15, 5.5))
    for ax, plane in zip(axes, three_planes(ct, centre, size_mm=110.0, pixel_mm=0.8), strict=True):
        show_plane(ax, plane, resample_to_plane(ct, plane, default_value=-1000.0))
        draw_risk(ax, plane, labels, groups)
        tgt = resample_to_plane(target, plane)
        zone = zone_fraction(plane, out.zone_centers, out.zone_dirs, axes_mm)
        if infeasible:
            uncovered = ((tgt >= 0.5) & (zone < 0.5)).astype(float)
            # hatched: distinct from the solid vermillion fill of the heat-sink vessels
            draw_mask(ax, plane, uncovered, ROLE["residual"], lw=1.2, hatch="////")
        draw_mask(ax, plane, tgt, ROLE["target"], lw=1.3, linestyle="dashed")
        draw_mask(ax, plane, resample_to_plane(out.inputs.tumor, plane), ROLE["tumour"], lw=1.5)
        if not infeasible:  # zones of a plan that cannot be placed are not drawn
            draw_mask(ax, plane, zone, ROLE["zone"], lw=1.5)
        annotate_plane(
            ax,
            plane,
            title=f"{plane.name} through the "
            + ("uncovered target" if infeasible else "tumour centre"),
        )
    items = [
        ("line", ROLE["tumour"], "tumour"),
        ("dashed", ROLE["target"], f"tumour + {out.result.margin_mm:g} mm margin"),
    ]
    if not infeasible:
        items.append(("line", ROLE["zone"], "predicted zones"))
    else:
        items.append(("hatch", ROLE["residual"], "tumour + margin NOT covered"))
    items += [("patch", GROUP_COLOURS[g], GROUP_NAMES[g]) for g in ("bone", "vessel", "other")]
    figure_legend(fig, items, ncol=4)
    return figure_to_data_uri(fig)


def _uncovered_centre(out, target: sitk.Image) -> np.ndarray:
    """Centroid (LPS) of the target voxels outside every zone (the tumour centre if none)."""
    from hepanav.imaging.geometry import voxel_to_lps

    idx = np.argwhere(sitk.GetArrayViewFromImage(target) > 0)
    pts = voxel_to_lps(out.inputs.ct, idx[:, ::-1].astype(float))
    if len(out.zone_centers):
        inside = inside_zones(pts, out.zone_centers, out.zone_dirs, out.result.device.zone_axes_mm)
        if (~inside).any():
            return pts[~inside].mean(axis=0)
    return pts.mean(axis=0)


def needle_figure(out, risk, k: int) -> str:
    """Views of needle ``k`` (0-based): along the needle (two) and the probe's eye."""
    ct, labels = out.inputs.ct, out.inputs.labels
    needle = out.result.needles[k]
    guide = next((g for g in out.result.guides if g.needle == needle.needle), None)
    entry, tip = np.asarray(needle.entry_lps_mm), np.asarray(needle.tip_lps_mm)
    colour = ROLE["needle"]
    mine = out.zone_needle == needle.needle
    axes_mm = out.result.device.zone_axes_mm
    groups = risk_groups(risk)
    target = _target_image(out)
    probes = [p for p in out.result.probes if p.needle == needle.needle]
    deepest = min(probes, key=lambda p: p.position)
    fig, axes = new_figure(1, 3, figsize=(16, 3.7), gridspec_kw={"width_ratios": [2, 2, 1]})
    p1, p2 = line_planes(entry, tip, beyond_mm=25.0, width_mm=90.0, pixel_mm=0.8, source=ct)
    eye = probe_eye_plane(
        deepest.zone_center_lps_mm,
        tip - entry,
        size_mm=70.0,
        pixel_mm=0.5,
        source=ct,
        name="probe's eye at the deepest zone centre",
    )
    for ax, plane in zip(axes, (p1, p2, eye), strict=True):
        show_plane(ax, plane, resample_to_plane(ct, plane, default_value=-1000.0))
        draw_risk(ax, plane, labels, groups)
        draw_mask(
            ax, plane, resample_to_plane(target, plane), ROLE["target"], lw=1.2, linestyle="dashed"
        )
        draw_mask(ax, plane, resample_to_plane(out.inputs.tumor, plane), ROLE["tumour"], lw=1.4)
        draw_mask(
            ax,
            plane,
            zone_fraction(plane, out.zone_centers[mine], out.zone_dirs[mine], axes_mm),
            ROLE["zone"],
            lw=1.4,
        )
        if plane is eye:
            cr, _ = plane.lps_to_pixel(np.asarray(deepest.zone_center_lps_mm)[None])
            ax.plot(cr[0, 0], cr[0, 1], "+", color=colour, ms=14, mew=2)
        else:
            draw_segment(ax, plane, entry, tip, colour, lw=2.2)
            for p in probes:  # tip of each position, labelled with its depth
                cr, _ = plane.lps_to_pixel(np.asarray(p.tip_lps_mm)[None])
                depth = float(np.linalg.norm(np.asarray(p.tip_lps_mm) - entry))
                ax.plot(cr[0, 0], cr[0, 1], "o", color=colour, ms=5, mec="black")
                if plane is p1:
                    ax.annotate(
                        f"P{p.position} {depth:.0f} mm",
                        (cr[0, 0], cr[0, 1]),
                        xytext=(0, -14 - 10 * (p.position - 1)),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                        color="white",
                    )
            cr, _ = plane.lps_to_pixel(entry[None])
            ax.annotate(
                "skin entry",
                (cr[0, 0], cr[0, 1]),
                xytext=(4, 8),
                textcoords="offset points",
                fontsize=7,
                color="white",
            )
        annotate_plane(ax, plane)
    title = f"Needle {needle.needle}"
    if guide is not None:
        title += (
            f": depth {guide.depth_to_tip_mm:.0f} mm, in-plane "
            f"{guide.in_plane_angle_deg:+.0f}\u00b0, craniocaudal "
            f"{guide.craniocaudal_angle_deg:+.0f}\u00b0"
        )
    fig.suptitle(title, fontsize=11)
    figure_legend(
        fig,
        [
            ("line", colour, f"needle {needle.needle}, entry \u2192 tip"),
            ("line", ROLE["zone"], "its zones"),
            ("line", ROLE["tumour"], "tumour"),
            ("dashed", ROLE["target"], "tumour + margin"),
        ]
        + [("patch", GROUP_COLOURS[g], GROUP_NAMES[g]) for g in ("bone", "vessel", "other")],
        ncol=7,
    )
    return figure_to_data_uri(fig)


def placement_figure(
    plan, control_ct: sitk.Image, error, detected, tumour: sitk.Image | None, k: int
) -> str:
    """Control CT along planned needle ``error.planned_needle``: planned and detected needle."""
    needle = next(n for n in plan.needles if n.needle == error.planned_needle)
    entry, tip = np.asarray(needle.entry_lps_mm), np.asarray(needle.tip_lps_mm)
    colour = ROLE["needle"]
    fig, axes = new_figure(1, 3, figsize=(16, 3.7), gridspec_kw={"width_ratios": [2, 2, 1]})
    p1, p2 = line_planes(entry, tip, beyond_mm=25.0, width_mm=80.0, pixel_mm=0.7, source=control_ct)
    eye = probe_eye_plane(
        tip,
        tip - entry,
        size_mm=50.0,
        pixel_mm=0.4,
        source=control_ct,
        name="probe's eye at the planned tip",
    )
    for ax, plane in zip(axes, (p1, p2, eye), strict=True):
        show_plane(ax, plane, resample_to_plane(control_ct, plane, default_value=-1000.0))
        if tumour is not None:
            draw_mask(ax, plane, resample_to_plane(tumour, plane), ROLE["tumour"], lw=1.3)
        if plane is eye:
            for point, c, marker in ((tip, colour, "+"),):
                cr, _ = plane.lps_to_pixel(point[None])
                ax.plot(cr[0, 0], cr[0, 1], marker, color=c, ms=16, mew=2)
            if detected is not None:
                cr, _ = plane.lps_to_pixel(np.asarray(detected.tip)[None])
                ax.plot(cr[0, 0], cr[0, 1], "x", color=ROLE["detected"], ms=12, mew=2.5)
        else:
            draw_segment(ax, plane, entry, tip, colour, lw=1.6, linestyle="dashed")
            if detected is not None:
                # thin, so that the metal itself stays visible under the line
                draw_segment(
                    ax,
                    plane,
                    detected.hub,
                    detected.tip,
                    ROLE["detected"],
                    lw=0.9,
                    marker_end=False,
                )
                cr, _ = plane.lps_to_pixel(np.asarray(detected.tip)[None])
                ax.plot(cr[0, 0], cr[0, 1], "x", color=ROLE["detected"], ms=9, mew=2)
        annotate_plane(ax, plane)
    verdict = error.verdict or ""
    fig.suptitle(
        f"Needle {needle.needle}: {verdict}",
        fontsize=11,
        color="#B00020" if error.verdict_code not in ("ok", "") else "black",
    )
    figure_legend(
        fig,
        [
            ("dashed", colour, f"planned needle {needle.needle} (+ planned tip)"),
            ("line", ROLE["detected"], "detected needle (x detected tip)"),
            ("line", ROLE["tumour"], "tumour (planning CT)"),
        ],
    )
    return figure_to_data_uri(fig)
