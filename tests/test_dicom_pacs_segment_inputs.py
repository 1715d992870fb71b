"""``hepanav margin --from-pacs`` takes the SEGs ``hepanav segment`` wrote, and leaves out only
HepaNav's own result SEGs, saying so (tester: every SEG with HepaNav's Manufacturer was
skipped, and the error then said "present: none").

Known by construction: the sphere case of dicomout_helpers (tumour r 6 mm, zone r 12 mm,
2 mm off: analytic MAM 4 mm), its masks written as DICOM SEGs by the writer of ``hepanav
segment --out MASK.dcm`` (hepanav.segmentation.pipeline.write_seg: Manufacturer HepaNav,
one segment 'Tumour' / 'Ablation zone').
"""

from __future__ import annotations

import json

import pydicom
import pytest

from cli_helpers import one_line_error
from dicomout_helpers import PATIENT_TAGS, sphere_case
from hepanav.imaging.dicomout import read_source_series
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures

ACCESSION = PATIENT_TAGS["0008|0050"]
NOT_USED = "not used: HepaNav's own margin and plan results are not inputs"


@pytest.fixture(scope="module")
def segment_study(tmp_path_factory):
    """CT series + a tumour SEG and a zone SEG as ``hepanav segment`` writes them."""
    from hepanav.imaging.dicomout.seg import MANUFACTURER
    from hepanav.segmentation.pipeline import write_seg
    from hepanav.segmentation.result import Segmentation

    folder = tmp_path_factory.mktemp("segmentseg")
    ct_dir, _, tumour, zone = sphere_case(folder)
    source = read_source_series(ct_dir)
    segs = [
        write_seg(Segmentation(mask, structure, "test", []), source, folder / name)
        for mask, structure, name in ((tumour, "tumor", "t.dcm"), (zone, "ablation", "z.dcm"))
    ]
    for path, label in zip(segs, ("Tumour", "Ablation zone"), strict=True):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.Manufacturer == MANUFACTURER  # what the old code skipped
        assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == [label]
    return [*sorted(ct_dir.iterdir()), *segs]


def _margin(cli, out, *extra, tumour="Tumour"):
    return cli("margin", "--from-pacs", ACCESSION, "--tumor", tumour, "--ablation",
               "Ablation zone", "--out", out, *extra)  # fmt: skip


def test_segs_of_hepanav_segment_are_inputs_and_results_are_not(
    orthanc, pacs_env, segment_study, tmp_path, cli
):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    pacs = open_pacs()
    pacs.store(segment_study)
    # Was: "--tumor: no ROI or segment named 'Tumour' in the study (present: none)".
    first = tmp_path / "first"
    code, stdout, err = _margin(cli, first, "--send", "--dicom-out", tmp_path / "dicom")
    assert code == 0, err
    assert "stored" in stdout
    result = json.loads((first / "margin.json").read_text())
    assert result["min_margin_mm"] == pytest.approx(4.0, abs=1.0)
    tumour = next(r for r in result["inputs"] if r["role"] == "tumor")
    assert tumour["format"] == "DICOM SEG" and tumour["segment"] == "1 'Tumour'"
    tumour_seg = pydicom.dcmread(segment_study[-2], stop_before_pixels=True)
    assert tumour["series_instance_uid"] == str(tumour_seg.SeriesInstanceUID)

    # The study now also holds the margin result SEG (its 'Ablation zone' too): it is
    # not a second object holding the name, and the same MAM comes out.
    code, _, err = _margin(cli, tmp_path / "again")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "margin.json").read_text())
    assert again["min_margin_mm"] == result["min_margin_mm"]

    # An unknown name: the usable names, and the result SEG with why it is not used.
    line = one_line_error(
        *_margin(cli, tmp_path / "r", tumour="GTV")[0::2],
        "--tumor: no ROI or segment named 'GTV' in the study (present: Ablation zone, Tumour; "
        "a HepaNav margin result SEG with segments Tumour (in post-procedure space), "
        "Ablation zone",
        NOT_USED,
    )
    assert "(a SEG of 'hepanav segment' is)" in line

    # Only a result SEG beside the CT: said, instead of "present: none".
    orthanc.clear()
    ct = [p for p in segment_study if p.parent.name == "ct"]
    pacs.store([*ct, tmp_path / "dicom" / "margin_seg.dcm"])
    line = one_line_error(
        *_margin(cli, tmp_path / "r")[0::2],
        "no ROI or segment named 'Tumour' in the study (present: a HepaNav margin result SEG",
        NOT_USED,
    )
    assert "present: none" not in line
    assert not (tmp_path / "r").exists()


def test_own_result_recognises_the_export_and_not_segment(segment_study, tmp_path):
    """Without a PACS: the kinds of SEG told apart from their attributes alone."""
    from hepanav.dicom.hooks import object_names, own_result
    from hepanav.dicom.margin_objects import SEG_DESCRIPTION as MARGIN_SEG
    from hepanav.dicom.plan_objects import SEG_DESCRIPTION as PLAN_SEG

    tumour_seg, zone_seg = segment_study[-2:]
    for path in (tumour_seg, zone_seg):
        assert own_result(pydicom.dcmread(path)) is None
    assert object_names(zone_seg) == ["Ablation zone"]
    # A margin result SEG whose Series Description was changed on the way (e.g. by a
    # PACS) is still one: it holds segments 'hepanav segment' never writes.
    ds = pydicom.dcmread(zone_seg)
    ds.SeriesDescription = "renamed"
    ds.SegmentSequence[0].SegmentLabel = "Residual tumour outside the zone"
    assert own_result(ds) == "margin result"
    ds.SegmentSequence[0].SegmentLabel = "Ablation zone"
    assert own_result(ds) is None
    ds.SeriesDescription = MARGIN_SEG
    assert own_result(ds) == "margin result"
    ds.SeriesDescription = PLAN_SEG
    assert own_result(ds) == "plan result"
    ds.SeriesDescription = "renamed"
    ds.Manufacturer = "Another vendor"
    ds.SegmentSequence[0].SegmentLabel = "Planning target (tumour)"
    assert own_result(ds) is None  # another program's SEG: an input, whatever its labels
