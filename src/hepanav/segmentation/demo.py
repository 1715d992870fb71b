"""``make demo`` (segmentation part): margin from two CTs and two clicks, no masks.

Generates a procedural ablation case, segments the tumour on the pre CT and the
ablation zone on the post CT from one click each (the phantom's known centres),
registers the pair without liver masks (lesion-region mode) and measures the
margin; prints MAM and Dice beside the truth the phantom knows.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console


def run(out: Path) -> list[Path]:
    """Run the demo into ``out``; return the margin and segmentation reports."""
    import SimpleITK as sitk

    from hepanav.core.report import format_margin
    from hepanav.margin.pipeline import MarginInputs, run_margin
    from hepanav.phantoms.ablation_case import make_ablation_case
    from hepanav.segmentation.metrics import dice
    from hepanav.segmentation.pipeline import masks_for_margin

    console = Console()
    out = Path(out)
    case = out / "case"
    console.print(f"phantom ablation case -> {case}")
    make_ablation_case(case, seed=3, truth_displacement=False)
    truth = json.loads((case / "truth.json").read_text(encoding="utf-8"))
    tumor_seed = ",".join(f"{v:.2f}" for v in truth["tumor_center_pre_lps"])
    zone_seed = ",".join(f"{v:.2f}" for v in truth["zone_center_post_lps"])
    console.print(f"clicks: tumour {tumor_seed} (pre CT), zone {zone_seed} (post CT), LPS mm")
    tumor, zone = masks_for_margin(
        out,
        case / "pre_ct.nii.gz",
        case / "post_ct.nii.gz",
        None,
        None,
        [tumor_seed],
        [zone_seed],
    )
    d_t = dice(sitk.ReadImage(str(tumor)), sitk.ReadImage(str(case / "pre_tumor.nii.gz")))
    d_z = dice(sitk.ReadImage(str(zone)), sitk.ReadImage(str(case / "post_ablation.nii.gz")))
    console.print(f"segmentation Dice against the phantom truth: tumour {d_t:.3f}, zone {d_z:.3f}")
    console.print("registering pre -> post (no liver masks) and measuring the margin ...")
    inputs = MarginInputs(
        tumor=tumor,
        ablation=zone,
        pre=case / "pre_ct.nii.gz",
        post=case / "post_ct.nii.gz",
        from_seeds={"tumor": tumor, "ablation": zone},
    )
    result = run_margin(inputs, out).result
    u = result.uncertainty
    # No ± here: u leaves out the segmentation error of these automatic masks.
    console.print(
        f"MAM {format_margin(result.min_margin_mm, 2)} mm, no interval (automatic masks) "
        f"(truth {format_margin(float(truth['min_margin_mm']), 2)}), category "
        f"{result.category} (truth {truth['category']})"
        f"{'' if u.decisive else ', NOT decisive'}; registration: "
        f"{result.registration.method}"
    )
    return [
        out / "report.html",
        tumor.with_suffix("").with_suffix(".html"),
        zone.with_suffix("").with_suffix(".html"),
    ]
