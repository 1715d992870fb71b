"""The procedural abdominal CT phantom: anatomy, attenuation, labels, geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.phantoms.abdomen import make_abdomen
from hepanav.phantoms.canvas import HU
from hepanav.phantoms.schema import LABEL_IDS, LABEL_NAMES


@pytest.fixture(scope="module")
def abdomen():
    return make_abdomen(seed=3, spacing_mm=(3.0, 3.0, 3.0))


def arrays(a):
    return sitk.GetArrayFromImage(a.ct), sitk.GetArrayFromImage(a.labels)


def test_label_ids_follow_totalsegmentator():
    assert LABEL_NAMES[5] == "liver"
    assert LABEL_NAMES[97] == "rib_left_6" and LABEL_NAMES[103] == "rib_left_12"
    assert LABEL_NAMES[109] == "rib_right_6" and LABEL_NAMES[115] == "rib_right_12"
    assert LABEL_NAMES[31] == "vertebrae_L1" and LABEL_NAMES[33] == "vertebrae_T11"
    assert LABEL_NAMES[64] == "portal_vein_and_splenic_vein" and LABEL_NAMES[200] == "hepatic_veins"


def test_grid_and_types(abdomen):
    assert abdomen.ct.GetSpacing() == (3.0, 3.0, 3.0)
    assert abdomen.ct.GetPixelID() == sitk.sitkInt16
    assert abdomen.labels.GetPixelID() == sitk.sitkUInt8
    assert abdomen.ct.GetSize() == (120, 87, 63)  # 360 x 260 x 190 mm
    assert abdomen.labels.GetSize() == abdomen.ct.GetSize()


def test_every_structure_is_present(abdomen):
    wanted = [
        "liver",
        "spleen",
        "kidney_right",
        "kidney_left",
        "gallbladder",
        "stomach",
        "colon",
        "small_bowel",
        "aorta",
        "inferior_vena_cava",
        "portal_vein_and_splenic_vein",
        "hepatic_veins",
        "heart",
        "lung_lower_lobe_right",
        "lung_lower_lobe_left",
        "vertebrae_L1",
        "rib_right_9",
        "rib_left_9",
        "costal_cartilages",
        "sternum",
    ]
    missing = [n for n in wanted if LABEL_IDS[n] not in abdomen.label_names]
    assert not missing


def test_attenuation_is_portal_venous(abdomen):
    ct, lab = arrays(abdomen)
    med = {
        n: float(np.median(ct[lab == LABEL_IDS[n]]))
        for n in (
            "liver",
            "portal_vein_and_splenic_vein",
            "hepatic_veins",
            "aorta",
            "lung_lower_lobe_right",
            "vertebrae_L1",
        )
    }
    assert med["liver"] == pytest.approx(HU["liver"], abs=10)
    assert med["portal_vein_and_splenic_vein"] > med["liver"] + 40
    assert med["hepatic_veins"] > med["liver"] + 30
    assert med["aorta"] > 140
    assert med["lung_lower_lobe_right"] < -700
    assert med["vertebrae_L1"] > 200
    # Body outline = CT > -500 HU holds every labelled organ except the air-filled ones.
    body = ct > -500
    solid = (lab > 0) & ~np.isin(
        lab,
        [
            LABEL_IDS[n]
            for n in ("lung_lower_lobe_right", "lung_lower_lobe_left", "colon", "stomach")
        ],
    )
    assert body[solid].mean() > 0.99
    assert (ct[0, 0, 0], ct[-1, -1, -1]) == pytest.approx((-1000, -1000), abs=60)


def test_anatomical_relations(abdomen):
    _, lab = arrays(abdomen)
    liver = sitk.GetArrayFromImage(abdomen.liver) > 0
    vol_ml = liver.sum() * 27 / 1000
    assert 1000 < vol_ml < 2200  # adult livers: about 1.2-1.8 l
    k, j, i = np.nonzero(liver)
    zc = lambda name: np.nonzero(lab == LABEL_IDS[name])[0].mean()  # noqa: E731
    # LPS: the liver lies on the patient's right (x < 0), the lungs above it, kidneys below.
    assert abdomen.ct.TransformContinuousIndexToPhysicalPoint((i.mean(), j.mean(), k.mean()))[0] < 0
    assert zc("lung_lower_lobe_right") > k.mean() > zc("kidney_right")
    # Intrahepatic vessels belong to the liver mask; the IVC does not.
    hep = lab == LABEL_IDS["hepatic_veins"]
    assert liver[hep].mean() > 0.8
    assert not liver[lab == LABEL_IDS["inferior_vena_cava"]].any()
    # Ribs surround the liver: right ribs lie lateral to it at the liver's levels.
    rib = np.isin(lab, [LABEL_IDS[f"rib_right_{n}"] for n in range(7, 12)])
    assert np.nonzero(rib)[2].min() < i.min()
    # Enough vessel bifurcations inside the liver for landmarks.
    idx = np.rint(
        np.array(
            [
                abdomen.ct.TransformPhysicalPointToContinuousIndex(tuple(p))
                for p in abdomen.bifurcations_lps
            ]
        )
    ).astype(int)
    assert liver[idx[:, 2], idx[:, 1], idx[:, 0]].sum() >= 40


def test_seed_reproducible_and_different():
    a, b, c = (make_abdomen(seed=s, spacing_mm=(4, 4, 4)) for s in (5, 5, 6))
    assert np.array_equal(arrays(a)[0], arrays(b)[0])
    assert np.array_equal(arrays(a)[1], arrays(b)[1])
    assert not np.array_equal(arrays(a)[0], arrays(c)[0])
    # The seed changes the anatomy (liver outline, vessel trees), not only the noise.
    assert not np.array_equal(arrays(a)[1], arrays(c)[1])


def test_noise_has_the_requested_sd_and_is_correlated(abdomen):
    ct = sitk.GetArrayFromImage(abdomen.ct).astype(float)
    residual = ct - abdomen.clean_hu
    body = ct > -900  # away from the -1024 clipping of air
    assert residual[body].std() == pytest.approx(12.0, rel=0.03)
    pairs = body[:, :, 1:] & body[:, :, :-1]
    corr = np.corrcoef(residual[:, :, 1:][pairs], residual[:, :, :-1][pairs])[0, 1]
    assert 0.2 < corr < 0.8  # CT noise is not white
