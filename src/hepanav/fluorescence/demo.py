"""``make demo`` part of hepanav.fluorescence: a generated laparoscopic sequence.

Generates 48 paired NIR (12 bit) and white-light frames of a liver surface with four
lesions (homogeneous, partial, two rims at different depths) while the camera drifts,
analyses them as the CLI does (``hepanav fluoro analyze``), writes the display video
and the HTML report, then runs a margin check on a transection surface that crosses
one lesion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hepanav.core import write_json
from hepanav.fluorescence.margin import (
    check_frame,
    criterion,
    margin_background,
    margin_pictures,
)
from hepanav.fluorescence.report import write_analysis_report, write_margin_report
from hepanav.fluorescence.schema import (
    AnalysisSettings,
    InputDescription,
    MarginCriterion,
    MarginResult,
)
from hepanav.fluorescence.sources import describe_input, frame_pairs
from hepanav.fluorescence.stream import DisplayOptions, analyze_stream
from hepanav.phantoms.fluorescence import Camera, FluoroLesion, render_sequence, save_frames

MM_PER_PX = 0.15


def demo_lesions() -> list[FluoroLesion]:
    """Four lesions with known pattern, size and depth (scene px, mm)."""
    return [
        FluoroLesion(
            (170, 150), 14.0, depth_mm=0.5, pattern="rim", surface_tbr=7.0, rim_thickness_mm=2.0
        ),
        FluoroLesion((470, 140), 10.0, depth_mm=1.0, pattern="homogeneous", surface_tbr=5.0),
        FluoroLesion(
            (200, 350), 12.0, depth_mm=1.5, pattern="partial", surface_tbr=6.0, partial_floor=0.45
        ),
        FluoroLesion(
            (480, 340), 16.0, depth_mm=3.0, pattern="rim", surface_tbr=9.0, rim_thickness_mm=2.5
        ),
    ]


def run(out: Path) -> list[Path]:
    """Generate, analyse and report; return the report paths."""
    out = Path(out)
    camera = Camera(width=640, height=480, mm_per_px=MM_PER_PX)
    frames = list(
        render_sequence(demo_lesions(), camera, n_frames=48, drift_px_per_frame=(1.0, 0.4), seed=7)
    )
    nir_dir, white_dir = save_frames(frames, out / "input")
    info, pairs = frame_pairs(nir_dir, white_dir, "separate", 12)
    settings = AnalysisSettings(bit_depth=12, mm_per_px=MM_PER_PX)
    desc = InputDescription(**describe_input("input/nir", "input/white", "separate", info))
    analysis_dir = out / "analysis"
    result, snapshot = analyze_stream(
        info, pairs, analysis_dir, settings, DisplayOptions(mode="side-by-side"), desc
    )
    reports = [write_analysis_report(analysis_dir / "report.html", result, snapshot)]

    # Margin check: a transection plane (a band) that cuts through the partial lesion.
    last = frames[-1]
    surface = np.zeros(last.nir.shape, bool)
    surface[:, 150:200] = True
    margin_frame = check_frame(0, last.nir, surface, settings, camera.full_scale)
    margin = MarginResult(
        input=InputDescription(
            nir="generated frame", layout="separate", frame_size_wh=(640, 480), bit_depth=12
        ),
        surface="generated band x = 150-199 px",
        surface_area_px=int(surface.sum()),
        criterion=criterion(3.0, 20),
        min_cnr=3.0,
        min_area_px=20,
        background=margin_background(settings.background),
        at_risk=margin_frame.at_risk,
        frames=[margin_frame],
    )
    margin_dir = out / "margin"
    write_json(margin_dir / "margin.json", margin)
    pictures = margin_pictures(
        last.nir, last.white, surface, margin_frame, MarginCriterion(), settings
    )
    reports.append(write_margin_report(margin_dir / "margin.html", margin, pictures))
    return reports
