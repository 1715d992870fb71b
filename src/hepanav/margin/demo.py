"""``make demo`` (margin part): phantom -> registration -> margin -> report.

Generates a procedural ablation case (pre CT with a tumour, post CT with an
ablation zone under a known respiratory-like deformation), registers the pair,
measures the margin and writes the report. Prints the figures next to the
ground truth the phantom knows.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from hepanav.core.report import format_margin, format_percent
from hepanav.margin.pipeline import MarginInputs, run_margin


def phantom_case_inputs(case_dir: Path) -> MarginInputs:
    """The pre/post inputs of a case folder written by ``hepanav phantom`` (docs/phantoms.md)."""
    return MarginInputs(
        tumor=case_dir / "pre_tumor.nii.gz",
        ablation=case_dir / "post_ablation.nii.gz",
        pre=case_dir / "pre_ct.nii.gz",
        post=case_dir / "post_ct.nii.gz",
        liver_pre=case_dir / "pre_liver.nii.gz",
        liver_post=case_dir / "post_liver.nii.gz",
        landmarks_pre=case_dir / "landmarks_pre.csv",
        landmarks_post=case_dir / "landmarks_post.csv",
    )


def run(out: Path) -> list[Path]:
    """Run the margin demo into ``out`` (case in ``out/case``); return ``[out/report.html]``."""
    from hepanav.phantoms.ablation_case import make_ablation_case

    console = Console()
    out = Path(out)
    case_dir = out / "case"
    console.print(f"phantom ablation case -> {case_dir}")
    make_ablation_case(case_dir, seed=0)
    inputs = phantom_case_inputs(case_dir)
    console.print("registering pre -> post and measuring the margin ...")
    result = run_margin(inputs, out).result
    truth = json.loads((case_dir / "truth.json").read_text(encoding="utf-8"))
    reg = result.registration
    u = result.uncertainty
    interval = (
        f", interval {format_margin(u.min_margin_interval_mm[0], 2)} to "
        f"{format_margin(u.min_margin_interval_mm[1], 2)} mm"
        if u.min_margin_interval_mm
        else ", no interval"
    )
    console.print(
        f"MAM {format_margin(result.min_margin_mm, 2)} mm{interval} "
        f"(truth {format_margin(float(truth['min_margin_mm']), 2)}), "
        f"category {result.category} (truth {truth['category']})"
        f"{'' if u.decisive else ', NOT decisive'}, 6 mm shell "
        f"{format_percent(result.shell_coverage_6mm)}% "
        f"(truth {format_percent(truth['shell_coverage_6mm'])}%)"
    )
    console.print(
        f"registration: liver Dice {reg.liver_dice:.3f}, mean TRE {reg.tre_mm['mean']:.2f} mm "
        f"(max {reg.tre_mm['max']:.2f}), {reg.seconds:.1f} s"
    )
    return [out / "report.html"]
