"""Misplaced clicks on the real DICOM series (portal venous; TotalSegmentator labels):
a seed in another organ must be refused as tumour or ablation zone, naming the seed.

The organ under each seed is read from the label map (resampled onto the CT in physical
space), so the tests check that the click really is in that organ. Skipped without
the real data (``HEPANAV_TEST_DATA``)."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.io import read_image
from hepanav.segmentation.ablation import segment_ablation
from hepanav.segmentation.seeds import make_seeds
from hepanav.segmentation.tumor import segment_tumor


@pytest.fixture(scope="module")
def dicom(shared_data):
    folder = shared_data / "ct-abdomen-dicom"
    if not (folder / "series").is_dir():
        pytest.skip(f"real DICOM series not found at {folder}")
    ct = read_image(folder / "series")
    raw = sitk.ReadImage(str(folder / "labels.nii.gz"))
    labels = sitk.Resample(raw, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, raw.GetPixelID())
    names = {v: int(k) for k, v in json.loads((folder / "labels.json").read_text()).items()}
    return ct, labels, names


@pytest.mark.parametrize(
    ("structure", "point", "organ", "fragments"),
    [
        # Before: a 23.5 ml "ablation zone", 74 % aorta (the zone path had no checks).
        ("ablation", (7.3, -145.5, -782.5), "aorta", ["not darker than the tissue around"]),
        # Before: a 5.6 ml "ablation zone", 82 % vertebra T12.
        ("ablation", (-17.1, -113.3, -788.5), "vertebrae_T12", ["ablation zone"]),
        ("tumor", (-17.1, -113.3, -788.5), "vertebrae_T12", ["tumour"]),
        # Before: a 0.9 ml "tumour" of 408 HU (rib 10's marrow and cortex).
        ("tumor", (115.7, -80.1, -770.5), "rib_left_10", ["denser than a soft-tissue liver"]),
    ],
)
def test_click_in_another_organ_is_refused(dicom, structure, point, organ, fragments):
    ct, labels, names = dicom
    seeds = make_seeds(ct, lps=[point])
    assert labels.GetPixel(seeds[0].index) == names[organ]
    segment = segment_tumor if structure == "tumor" else segment_ablation
    with pytest.raises(InputError, match="does not look like") as info:
        segment(ct, seeds)
    message = str(info.value)
    assert message.startswith(f"--seed {point[0]:g},")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
