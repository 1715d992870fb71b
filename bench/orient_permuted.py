"""Axial vs coronal/sagittal stacks of the same phantom CT: liver, derived labels, needle table.

Usage: python bench/orient_permuted.py (add PYTHONPATH=/work/main/src to measure another tree).
"""

from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk

from hepanav.phantoms.planning import TORSO_LABELS, make_planning_case
from hepanav.planning.devices import load_device
from hepanav.planning.needle_table import needle_guides
from hepanav.segmentation.anatomy import derive_planning_labels, tumour_liver_seed
from hepanav.segmentation.liver import segment_liver
from hepanav.segmentation.seeds import Seed

P = {"coronal": [0, 2, 1], "sagittal": [2, 1, 0]}


def on(img, ref):
    return sitk.GetArrayFromImage(
        sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    )


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


p = make_planning_case("procedural", 30.0, seed=0)
ct = p.ct
s = tumour_liver_seed(ct, p.tumor)
ref = sitk.GetArrayFromImage(segment_liver(ct, [s]).mask) > 0
dref = sitk.GetArrayFromImage(derive_planning_labels(ct, p.tumor).labels)
for v, o in P.items():
    st = sitk.PermuteAxes(ct, o)
    g = segment_liver(
        st, [Seed(s.lps, tuple(st.TransformPhysicalPointToIndex(s.lps)), s.label)]
    ).mask
    m = on(g, ct) > 0
    d = on(derive_planning_labels(st, sitk.PermuteAxes(p.tumor, o)).labels, ct)
    print(
        v,
        f"liver dice {dice(m, ref):.4f} differing voxels {(m != ref).sum()}",
        "derived labels differing voxels",
        (d != dref).sum(),
        "of",
        (dref > 0).sum(),
    )
t = make_planning_case("torso", 30.0, seed=0)
idx = np.argwhere(sitk.GetArrayFromImage(t.tumor) > 0).mean(axis=0)[::-1]
tip = np.asarray(t.ct.TransformContinuousIndexToPhysicalPoint(idx.tolist()))
entry = tip + np.array([-40.0, -60.0, 0.0])
plan = SimpleNamespace(
    device=load_device("neuwave-pr-65w-10min"),
    needles=[SimpleNamespace(needle=1, entry_lps_mm=list(entry), tip_lps_mm=list(tip))],
    probes=[],
)
keys = ["entry_slice", "entry_lr_from_midline_mm", "entry_ap_from_anterior_skin_mm", "midline_from"]
r = needle_guides(plan, t.ct, t.labels, TORSO_LABELS, tumour=t.tumor)[0].model_dump()
print("axial", [r[k] for k in keys])
for v, o in P.items():
    g = needle_guides(
        plan,
        sitk.PermuteAxes(t.ct, o),
        sitk.PermuteAxes(t.labels, o),
        TORSO_LABELS,
        tumour=sitk.PermuteAxes(t.tumor, o),
    )[0].model_dump()
    print(v, [g[k] for k in keys])
