"""HTML reports of a plan and of a placement check (matplotlib figures, Jinja2 page)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.imaging.geometry import lps_to_voxel, voxel_to_lps
from hepanav.planning.schema import PlacementResult
from hepanav.planning.zones import inside_zones

_NEEDLE_COLOURS = [
    "#e53935",
    "#1e88e5",
    "#43a047",
    "#fdd835",
    "#8e24aa",
    "#00acc1",
    "#d81b60",
    "#757575",
]


def _risk_overlay(labels: np.ndarray, risk_ids: dict[str, list[int]]) -> np.ndarray:
    """RGBA overlay (…, 4) of the risk groups on a 2D label slice."""
    palette = {"bone": (1.0, 1.0, 0.85), "vessel": (0.85, 0.1, 0.1), "other": (0.3, 0.5, 1.0)}
    rgba = np.zeros(labels.shape + (4,))
    for group, ids in risk_ids.items():
        m = np.isin(labels, ids)
        rgba[m, :3] = palette[group]
        rgba[m, 3] = 0.35
    return rgba


def _risk_groups(plan_rules) -> dict[str, list[int]]:
    bone, vessel, other = [], [], []
    for rule in plan_rules:
        (bone if rule.name == "bone" else vessel if rule.heat_sink else other).extend(rule.labels)
    return {"bone": bone, "vessel": vessel, "other": other}


def slice_views(out, risk) -> str:
    """Axial, coronal and sagittal slices through the tumour centre with plan overlays."""
    ct = out.inputs.ct
    arr = sitk.GetArrayViewFromImage(ct)
    lab = sitk.GetArrayViewFromImage(out.inputs.labels)
    tum = sitk.GetArrayViewFromImage(out.inputs.tumor) > 0
    centre_zyx = np.argwhere(tum).mean(axis=0).round().astype(int)
    spacing = np.asarray(ct.GetSpacing())
    groups = _risk_groups(risk.structures)
    region = out.region
    target_full = np.zeros(tum.shape, dtype=bool)
    target_full[region.box] = region.target
    fig, axes = new_figure(1, 3, figsize=(15, 5.4))
    views = [("axial", 0), ("coronal", 1), ("sagittal", 2)]
    for ax, (name, axis) in zip(axes, views, strict=True):
        take = [slice(None)] * 3
        take[axis] = centre_zyx[axis]
        take = tuple(take)
        img, lsl = arr[take], lab[take]
        # index grid of the slice -> LPS, to evaluate the zones on it
        grid = np.indices(img.shape).reshape(2, -1).T
        zyx = np.zeros((grid.shape[0], 3))
        others = [a for a in range(3) if a != axis]
        zyx[:, others[0]], zyx[:, others[1]] = grid[:, 0], grid[:, 1]
        zyx[:, axis] = centre_zyx[axis]
        if len(out.zone_centers):
            zone = inside_zones(
                voxel_to_lps(ct, zyx[:, ::-1]),
                out.zone_centers,
                out.zone_dirs,
                out.result.device.zone_axes_mm,
            ).reshape(img.shape)
        else:
            zone = np.zeros(img.shape, dtype=bool)
        origin = "lower" if axis != 0 else "upper"
        aspect = spacing[::-1][others[0]] / spacing[::-1][others[1]]
        ax.imshow(img, cmap="gray", vmin=-160, vmax=240, origin=origin, aspect=aspect)
        ax.imshow(_risk_overlay(lsl, groups), origin=origin, aspect=aspect)
        for mask, colour, style in (
            (tum[take], "#ff1744", "solid"),
            (target_full[take], "#ff9100", "dashed"),
            (zone, "#00e676", "solid"),
        ):
            if mask.any():
                ax.contour(
                    mask.astype(float),
                    levels=[0.5],
                    colors=colour,
                    linestyles=style,
                    linewidths=1.2,
                )  # no origin: data y = row index, as for imshow with either origin
        for k, needle in enumerate(out.result.needles):
            ends = lps_to_voxel(ct, np.array([needle.entry_lps_mm, needle.tip_lps_mm]))[:, ::-1]
            ax.plot(
                ends[:, others[1]],
                ends[:, others[0]],
                color=_NEEDLE_COLOURS[k % 8],
                lw=1.6,
                label=f"N{needle.needle}",
            )
        ax.set_xlim(0, img.shape[1] - 1)
        ax.set_ylim((img.shape[0] - 1, 0) if origin == "upper" else (0, img.shape[0] - 1))
        ax.set_title(f"{name}, tumour centre", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if out.result.needles:
        axes[0].legend(loc="lower right", fontsize=7)
    return figure_to_data_uri(fig)


def projection_view(out, risk) -> str:
    """Anterior (coronal) projection: bones and vessels, tumour, zones, needles."""
    ct = out.inputs.ct
    lab = sitk.GetArrayViewFromImage(out.inputs.labels)
    tum = sitk.GetArrayViewFromImage(out.inputs.tumor) > 0
    groups = _risk_groups(risk.structures)
    spacing = np.asarray(ct.GetSpacing())
    fig, ax = new_figure(figsize=(7, 6))
    bone = np.isin(lab, groups["bone"]).any(axis=1)
    vessel = np.isin(lab, groups["vessel"]).any(axis=1)
    liver = np.isin(lab, [5]).any(axis=1)
    aspect = spacing[2] / spacing[0]
    base = np.zeros(bone.shape + (3,))
    base[liver] = (0.35, 0.25, 0.2)
    base[vessel] = (0.8, 0.15, 0.15)
    base[bone] = (0.95, 0.95, 0.85)
    ax.imshow(base, origin="lower", aspect=aspect)
    ax.contour(tum.any(axis=1).astype(float), levels=[0.5], colors="#ff1744")
    for k, needle in enumerate(out.result.needles):
        ends = lps_to_voxel(ct, np.array([needle.entry_lps_mm, needle.tip_lps_mm]))
        ax.plot(
            ends[:, 0], ends[:, 2], color=_NEEDLE_COLOURS[k % 8], lw=1.8, label=f"N{needle.needle}"
        )
    for p in out.result.probes:
        c = lps_to_voxel(ct, np.array([p.zone_center_lps_mm]))[0]
        ax.plot(c[0], c[2], "o", color="#00e676", ms=4)
    ax.set_title("anterior projection: bone (white), vessels (red), liver, tumour, needles")
    ax.set_xticks([])
    ax.set_yticks([])
    return figure_to_data_uri(fig)


def robustness_view(out) -> str:
    """Histogram of tumour + margin coverage under lateral placement error."""
    fig, ax = new_figure(figsize=(6, 3.4))
    ax.hist(100 * out.mc_target, bins=30, color="#1e88e5")
    ax.axvline(100 * out.result.rules.coverage_goal, color="k", ls="--", lw=1)
    ax.set_xlabel("tumour + margin covered (%)")
    ax.set_ylabel("Monte Carlo draws")
    ax.set_title(f"lateral placement error SD {out.result.placement_error_sd_mm:g} mm per axis")
    return figure_to_data_uri(fig)


def write_plan_report(out, risk, path: str | Path) -> Path:
    """Write ``report.html`` for a plan (``out`` from :func:`hepanav.planning.planner.plan`)."""
    figures = [
        (
            "Slices",
            slice_views(out, risk),
            "Tumour (red), tumour + margin (orange dashed), predicted zones (green), "
            "bone (white), heat-sink vessels (red), other no-go organs (blue).",
        )
    ]
    if out.result.needles:
        figures.append(("Projection", projection_view(out, risk), "Needles seen from anterior."))
        figures.append(
            (
                "Robustness",
                robustness_view(out),
                "Coverage of tumour + margin when every needle misses laterally.",
            )
        )
    return write_html(
        path,
        "hepanav.planning",
        "plan.html.j2",
        title="Ablation plan",
        plan=out.result,
        figures=figures,
    )


def error_view(result: PlacementResult) -> str | None:
    """Bar chart of the target positioning error of each matched needle (mm)."""
    rows = [e for e in result.errors if e.planned_needle is not None and e.lateral_mm is not None]
    if not rows:
        return None
    fig, ax = new_figure(figsize=(7, 3.4))
    x = np.arange(len(rows))
    for k, (field, label) in enumerate(
        (
            ("lateral_mm", "lateral"),
            ("longitudinal_mm", "longitudinal (+ deeper)"),
            ("euclidean_mm", "Euclidean"),
        )
    ):
        ax.bar(x + (k - 1) * 0.27, [getattr(e, field) for e in rows], width=0.27, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [f"N{e.planned_needle}" for e in rows])
    ax.set_ylabel("tip error (mm)")
    ax.legend(fontsize=8)
    ax.set_title("target positioning error per needle")
    return figure_to_data_uri(fig)


def write_placement_report(result: PlacementResult, path: str | Path) -> Path:
    """Write the placement-verification report."""
    return write_html(
        path,
        "hepanav.planning",
        "placement.html.j2",
        title="Needle placement verification",
        res=result,
        figure=error_view(result),
    )
