"""Inputs for the fault tests: one small, valid invocation of every writing command.

``writing_commands(folder)`` builds the inputs once (small masks, a fast planning case,
six fluorescence frames, a SQLite registry) and returns, per command, a function
``argv(out) -> list[str]`` and whether OUT is a folder (an output set) or a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.atomic import MANIFEST


@dataclass
class Writing:
    name: str
    argv: Callable[[Path], list[str]]
    folder: bool = True
    fresh: bool = False  # OUT must not exist (dicom pseudonymise): a rerun needs it removed


def sphere(centre, radius, size=(36, 36, 36), spacing=1.0) -> sitk.Image:
    origin = -(np.asarray(size) - 1) / 2 * spacing
    idx = np.indices(size[::-1]).reshape(3, -1)[::-1].T * spacing + origin
    inside = np.linalg.norm(idx - np.asarray(centre), axis=1) <= radius
    image = sitk.GetImageFromArray(inside.reshape(size[::-1]).astype(np.uint8))
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin(tuple(origin))
    return image


def hu_ct(mask: sitk.Image, seed: int = 0) -> sitk.Image:
    """A CT in HU on ``mask``'s grid (what ``load_ct`` accepts): 60 HU inside the mask,
    -100 HU (fat) around it, 10 HU noise, air (-1000 HU) in the corners beyond the ball
    touching the faces."""
    arr = sitk.GetArrayFromImage(mask) > 0
    hu = np.where(arr, 60.0, -100.0) + np.random.default_rng(seed).normal(0.0, 10.0, arr.shape)
    centre = (np.asarray(arr.shape) - 1) / 2
    r = np.linalg.norm(np.indices(arr.shape).T - centre, axis=-1).T
    hu[r > min(arr.shape) / 2] = -1000.0
    image = sitk.GetImageFromArray(hu.round().astype(np.int16))
    image.CopyInformation(mask)
    return image


def build_inputs(folder: Path) -> dict[str, Path]:
    """Write every input file once; returns their paths by name."""
    from hepanav.phantoms.fluorescence import Camera, FluoroLesion, render_sequence, save_frames
    from hepanav.phantoms.planning import TORSO_LABELS, make_planning_case
    from planning_helpers import fast_risk_map

    folder.mkdir(parents=True, exist_ok=True)
    p: dict[str, Path] = {}
    for name, image in {
        "tumor": sphere((1.0, 0, 0), 6.0),
        "ablation": sphere((0, 0, 0), 10.0),
        "liver": sphere((0, 0, 0), 16.0),
    }.items():
        p[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(image, str(p[name]))
    examples = resources.files("hepanav.therapy") / "data" / "examples"
    p["case"] = folder / "case.yaml"
    p["case"].write_text((examples / "crc_large_near_hepatic_vein.yaml").read_text("utf-8"))
    # planning: the analytic torso with a fast risk map
    case = make_planning_case("torso", 30.0, seed=0)
    plan_in = folder / "plan-inputs"
    plan_in.mkdir()
    for name, image in (("ct", case.ct), ("ptumor", case.tumor), ("labels", case.labels)):
        p[name] = plan_in / f"{name}.nii.gz"
        sitk.WriteImage(image, str(p[name]))
    # verify-placement: the planning CT resampled (physical space) to the needle
    # detector's finest supported voxels, 1.5 mm (coarser control CTs are refused)
    control = sitk.Resample(
        case.ct,
        [
            int(round(n * s / 1.5))
            for n, s in zip(case.ct.GetSize(), case.ct.GetSpacing(), strict=True)
        ],
        sitk.Transform(),
        sitk.sitkLinear,
        case.ct.GetOrigin(),
        (1.5, 1.5, 1.5),
        case.ct.GetDirection(),
        -1000.0,
        sitk.sitkInt16,
    )
    p["control_ct"] = plan_in / "control_ct.nii.gz"
    sitk.WriteImage(control, str(p["control_ct"]))
    (plan_in / "labels.json").write_text(json.dumps({str(k): v for k, v in TORSO_LABELS.items()}))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(case.tumor > 0, sitk.sitkUInt8))
    p["seed"] = ",".join(f"{v:.2f}" for v in stats.GetCentroid(1))  # a click in the tumour
    p["risk"] = fast_risk_map(plan_in, optimiser_time_limit_s=2.0)
    # fluorescence: six small frames and a surface mask
    camera = Camera(width=128, height=112, mm_per_px=0.4)
    lesions = [FluoroLesion((60, 50), 8.0, depth_mm=0.5, pattern="homogeneous", surface_tbr=5.0)]
    frames = list(render_sequence(lesions, camera, n_frames=6, seed=1))
    p["nir"], _ = save_frames(frames, folder / "frames")
    import cv2

    surface = np.zeros((112, 128), np.uint8)
    surface[30:80, 30:100] = 255
    p["surface"] = folder / "surface.png"
    cv2.imwrite(str(p["surface"]), surface)
    # registry: a SQLite database with a few outcome rows
    from registry_helpers import outcome_rows, write_csv

    p["db"] = folder / "registry.sqlite"
    p["rows"] = write_csv(folder / "rows.csv", outcome_rows(40, 2))  # export > 4 KiB
    url = f"sqlite:///{p['db']}"
    for argv in (
        ["registry", "init", "--db", url],
        ["registry", "import", str(p["rows"]), "--db", url],
    ):
        run = run_hepanav(argv, folder)
        assert run.returncode == 0, run.stderr
    # DICOM: a CT series, a margin result on it (for dicom export), a pseudonymisation key
    from dicomout_helpers import sphere_case

    ct_dir, _, tumour, zone = sphere_case(folder / "dicom-case")
    p["dicom_ct"] = ct_dir
    for name, image in (("dtumor", tumour), ("dzone", zone)):
        p[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(image, str(p[name]))
    p["margin_result"] = folder / "margin-result"
    run = run_hepanav(["margin", "--tumor", p["dtumor"], "--ablation", p["dzone"], "--out",
                       p["margin_result"]], folder)  # fmt: skip
    assert run.returncode == 0, run.stderr
    p["key"] = folder / "pseudonym.key"
    p["mapping"] = folder / "mapping.csv"
    import pydicom

    first = sorted(q for q in ct_dir.rglob("*") if q.is_file())[0]
    p["study_uid"] = str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)
    return p


def writing_commands(p: dict[str, Path], plan_dir: Path | None) -> list[Writing]:
    db = f"sqlite:///{p['db']}"
    cmds = [
        Writing(
            "margin",
            lambda o: [
                "margin",
                "--tumor",
                p["tumor"],
                "--ablation",
                p["ablation"],
                "--liver",
                p["liver"],
                "--out",
                o,
            ],
        ),
        Writing("therapy", lambda o: ["therapy", p["case"], "--out", o]),
        Writing(
            "phantom",
            lambda o: ["phantom", "--out", o, "--size", "40", "40", "30", "--spacing", "3"],
        ),
        Writing(
            "plan",
            lambda o: [
                "plan",
                "--ct",
                p["ct"],
                "--tumor",
                p["ptumor"],
                "--labels",
                p["labels"],
                "--label-map",
                p["risk"],
                "--out",
                o,
            ],
        ),
        Writing("fluoro-analyze", lambda o: ["fluoro", "analyze", "--nir", p["nir"], "--out", o]),
        Writing(
            "fluoro-margin-check",
            lambda o: [
                "fluoro",
                "margin-check",
                "--nir",
                p["nir"],
                "--surface",
                p["surface"],
                "--out",
                o,
            ],
        ),
        Writing(
            "fluoro-render",
            lambda o: ["fluoro", "render", "--nir", p["nir"], "--out", o],
            folder=False,
        ),
        Writing("registry-report", lambda o: ["registry", "report", "--out", o, "--db", db]),
        Writing(
            "stats-margins",
            lambda o: ["stats", "margins", "--group-by", "icg_used", "--out", o, "--db", db],
        ),
        Writing("stats-ablation", lambda o: ["stats", "ablation", "--out", o, "--db", db]),
        Writing(
            "segment",
            lambda o: ["segment", "tumor", "--ct", p["ct"], "--seed", p["seed"], "--out", o],
            folder=False,
        ),
        Writing(
            "registry-export",
            lambda o: ["registry", "export", "--out", o, "--db", db],
            folder=False,
        ),
        Writing(
            "registry-template",
            lambda o: ["registry", "template", "outcomes", "--out", o],
            folder=False,
        ),
        Writing(
            "dicom-export",
            lambda o: [
                "dicom",
                "export",
                p["margin_result"],
                "--source",
                p["dicom_ct"],
                "--out",
                o,
            ],
        ),  # fmt: skip
        Writing(
            "dicom-pseudonymise",
            lambda o: [
                "dicom",
                "pseudonymise",
                p["dicom_ct"],
                o,
                "--key-file",
                p["key"],
                "--mapping",
                p["mapping"],
            ],
            fresh=True,
        ),  # fmt: skip
        # needs HEPANAV_PACS_* of a PACS holding the study (the test sets them up)
        Writing("pacs-get", lambda o: ["pacs", "get", p["study_uid"], "--out", o]),
    ]
    if plan_dir is not None:
        cmds.append(
            Writing(
                "verify-placement",
                lambda o: [
                    "verify-placement",
                    "--plan",
                    plan_dir / "plan.json",
                    "--control-ct",
                    p["control_ct"],
                    "--out",
                    o,
                ],
            )
        )
    return cmds


def file_name(w: Writing) -> str:
    return {
        "fluoro-render": "display.mp4",
        "registry-export": "export.csv",
        "segment": "tumor.nii.gz",
        "registry-template": "template.xlsx",  # > 4 KiB (a CSV header fits a full disk)
    }.get(w.name, "out")


def env(log_dir: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["HEPANAV_LOG_DIR"] = str(log_dir)
    e.pop("HEPANAV_LOG_MESSAGES", None)
    return e


def run_hepanav(argv, cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hepanav", *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(cwd / "logs"),
        **kw,
    )


def assert_complete_or_absent(out: Path, w: Writing) -> str:
    """The output is absent, or complete: every file its manifest lists, with its size."""
    if not out.exists():
        return "absent"
    if not w.folder:
        if w.name == "fluoro-render":
            import cv2

            cap = cv2.VideoCapture(str(out))
            n = 0
            while cap.read()[0]:
                n += 1
            cap.release()
            assert n == 6, f"{out}: {n} frames"
        elif w.name == "segment":  # the mask, its JSON and its report: one set
            record = json.loads(out.with_name("tumor.json").read_text(encoding="utf-8"))
            assert record["mask"] == out.name and out.with_name("tumor.html").is_file()
            assert sitk.GetArrayFromImage(sitk.ReadImage(str(out))).sum() > 0
        elif w.name == "registry-template":  # the header row, whole
            import openpyxl

            from hepanav.registry.schema import ROW_MODELS

            sheet = openpyxl.load_workbook(out).worksheets[0]
            header = [c.value for c in next(sheet.iter_rows(max_row=1))]
            assert header == list(ROW_MODELS["outcomes"].model_fields), header
        else:
            text = out.read_text(encoding="utf-8")
            assert text.endswith("\n") and len(text.splitlines()) == 81, text[-200:]
        return "complete"
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    listed = {f["name"]: f["bytes"] for f in manifest["files"]}
    present = {
        str(q.relative_to(out)): q.stat().st_size
        for q in out.rglob("*")
        if q.is_file() and q.name != MANIFEST
    }
    assert listed == present, (listed, present)
    assert listed, "an output set with no file"
    return "complete"


def device_entry(values: dict | None = None) -> dict:
    """A valid device entry (device YAML ``devices: [...]``), updated with ``values``."""
    base = {
        "name": "d",
        "kind": "microwave",
        "chart_length_mm": 40,
        "chart_width_mm": 30,
        "in_vivo_factor": 0.8,
        "tip_to_center_mm": 15,
        "needle_length_mm": 200,
        "needle_diameter_mm": 1.5,
        "heat_sink_trim_mm": 2,
        "pullback_step_mm": 10,
        "max_positions": 2,
        "source": "test",
    }
    base.update(values or {})
    return base


# A valid plan.json (one needle along +z from the origin): the property tests vary one
# field of it; the truncated-crop tests put it beside crops.
PLAN_TEMPLATE = json.dumps(
    {
        "feasible": True,
        "message": "m",
        "device": device_entry(),
        "margin_mm": 5.0,
        "probes": [],
        "needles": [
            {
                "needle": 1,
                "entry_lps_mm": [0, 0, 0],
                "tip_lps_mm": [0, 0, 100],
                "direction": [0, 0, 1],
                "length_mm": 100,
                "angle_from_axial_deg": 0,
                "min_clearance_mm": None,
                "clearance_mm": {},
            }
        ],
        "needle_count": 1,
        "coverage_tumor": 1,
        "coverage_target": 1,
        "min_clearance_mm": None,
        "healthy_liver_ablated_ml": 1,
        "heat_sink_limited_fraction": 0,
        "placement_error_sd_mm": 2,
        "coverage_probability": 1,
        "coverage_target_mean_under_error": 1,
        "coverage_tumor_probability": 1,
        "candidate_lines": 1,
        "candidate_lines_valid": 1,
        "candidate_zones": 1,
        "target_points": 1,
        "optimiser": "milp",
        "optimiser_time_s": 1,
        "optimiser_status": "ok",
        "planning_time_s": 1,
        "rules": {},
        "inputs": {},
    }
)
