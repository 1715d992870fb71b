"""DICOM objects HepaNav writes: valid (dciodvfy), readable back, coded, patient copied."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from dicomout_helpers import dciodvfy, sphere_case
from hepanav.dicom.export import export_result
from hepanav.imaging import write_image
from hepanav.imaging.dicomout import private_codes, standard_codes
from hepanav.margin.pipeline import MarginInputs, run_margin

# dciodvfy warnings we accept, each explained in docs/dicom.md.
ACCEPTED_WARNINGS = (
    "Unrecognized defined term = <99HEPANAV>",  # our private coding scheme
    "Laterality(0020,0060)> - is only permitted to be empty",  # SC of a report figure
)


@pytest.fixture(scope="module")
def margin_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("objects")
    ct_dir, ct, tumour, zone = sphere_case(folder)
    write_image(tumour, folder / "tumour.nii.gz")
    write_image(zone, folder / "zone.nii.gz")
    run = run_margin(
        MarginInputs(tumor=folder / "tumour.nii.gz", ablation=folder / "zone.nii.gz"),
        folder / "result",
    )
    files = export_result(folder / "result", folder / "dicom", ct_dir)
    return folder, ct_dir, run, files


def test_every_object_type_is_valid(margin_export):
    _, _, _, files = margin_export
    kinds = {pydicom.dcmread(f, stop_before_pixels=True).Modality for f in files}
    assert kinds == {"SEG", "SR", "OT"}
    for path in files:
        errors, warnings = dciodvfy(path)
        assert errors == [], (path.name, errors)
        unexplained = [w for w in warnings if not any(a in w for a in ACCEPTED_WARNINGS)]
        assert unexplained == [], (path.name, unexplained)


def test_seg_voxels_and_geometry_match_the_result_masks(margin_export):
    folder, ct_dir, _, files = margin_export
    seg = hd.seg.segread(files[0])
    source = pydicom.dcmread(sorted(ct_dir.iterdir())[0])
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.PatientID == source.PatientID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    labels = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    volume = seg.get_volume(combine_segments=False)
    for number, label in labels.items():
        stem = {
            "Tumour (in post-procedure space)": "tumor_post",
            "Ablation zone": "ablation_zone",
            "Residual tumour outside the zone": "residual_tumor",
            "Tumour surface with margin 0-5 mm": "margin_0_5mm_surface",
        }[label]
        expected = sitk.GetArrayFromImage(
            sitk.ReadImage(str(folder / "result" / "segments" / f"{stem}.nii.gz"))
        ).astype(bool)
        got = _seg_on_ct_grid(volume, number - 1, expected.shape, ct_dir)
        assert np.array_equal(got, expected), label


def _seg_on_ct_grid(volume, index, shape, ct_dir) -> np.ndarray:
    """Segment ``index`` of a highdicom Volume placed on the CT slices by position."""
    from hepanav.imaging.dicomout import read_source_series

    source = read_source_series(ct_dir)
    out = np.zeros(shape, dtype=bool)
    array = volume.array[..., index].astype(bool)  # (slices, rows, cols) of the volume
    for k in range(array.shape[0]):
        pos = volume.map_indices_to_reference(np.array([[k, 0, 0]]))[0]
        z = [
            i
            for i, d in enumerate(source.datasets)
            if np.allclose(np.asarray(d.ImagePositionPatient, float), pos, atol=1e-3)
        ]
        assert len(z) == 1, pos
        out[z[0]] = array[k]
    return out


def test_sr_holds_the_figures_of_margin_json_with_codes_and_units(margin_export):
    _, ct_dir, run, files = margin_export
    sr = pydicom.dcmread(files[1])
    values = _numeric_items(sr)
    r = run.result
    assert values[("MM001", "99HEPANAV")] == pytest.approx((r.min_margin_mm, "mm"))
    assert values[("MC006", "99HEPANAV")] == pytest.approx((r.shell_coverage_6mm, "1"))
    assert values[("MS005", "99HEPANAV")] == pytest.approx((r.surface_fraction_below_5mm, "1"))
    assert values[("MM050", "99HEPANAV")] == pytest.approx((r.percentiles_mm.p50, "mm"))
    assert values[(codes.SCT.Volume.value, "SCT")][1] == "ml"
    schemes = [i.CodingSchemeDesignator for i in sr.CodingSchemeIdentificationSequence]
    assert "99HEPANAV" in schemes
    # The MAM's location: a SCOORD3D point in the CT's frame of reference, on the
    # tumour surface (r = 6 mm around the tumour centre, +-1 voxel).
    point, frame = _mam_point(sr)
    assert frame == pydicom.dcmread(sorted(ct_dir.iterdir())[0]).FrameOfReferenceUID
    centre = np.mean(run.measurement.tumor_mesh.vertices, axis=0)
    assert abs(np.linalg.norm(point - centre) - 6.0) < 1.0
    assert sr.PatientID == pydicom.dcmread(sorted(ct_dir.iterdir())[0]).PatientID


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _numeric_items(sr) -> dict:
    out = {}
    for item in _walk(sr.ContentSequence):
        if item.ValueType == "NUM":
            name = item.ConceptNameCodeSequence[0]
            mv = item.MeasuredValueSequence[0]
            unit = mv.MeasurementUnitsCodeSequence[0]
            assert unit.CodingSchemeDesignator == "UCUM"
            out[(name.CodeValue, name.CodingSchemeDesignator)] = (
                float(mv.NumericValue),
                unit.CodeValue,
            )
    return out


def _mam_point(sr):
    for item in _walk(sr.ContentSequence):
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == "MM001":
            for child in item.ContentSequence:
                if child.ValueType == "SCOORD3D":
                    return np.asarray(child.GraphicData, float), child.ReferencedFrameOfReferenceUID
    raise AssertionError("no SCOORD3D under the MAM")


def test_secondary_captures_copy_the_patient_and_hold_the_report_figures(margin_export):
    _, ct_dir, _, files = margin_export
    source = pydicom.dcmread(sorted(ct_dir.iterdir())[0])
    scs = [pydicom.dcmread(f) for f in files[2:]]
    assert len(scs) >= 2  # slices and histogram figures of the report
    for sc in scs:
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert (sc.PatientID, sc.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
        assert sc.pixel_array.ndim == 3 and sc.pixel_array.shape[2] == 3
        assert sc.pixel_array.std() > 0


def test_codes_are_standard_or_documented_private():
    from pydicom.sr._concepts_dict import concepts

    for name, entry in standard_codes().items():
        known = {v for m in concepts[entry["scheme"]].values() for v in m}
        assert entry["value"] in known, name
    values = [c["value"] for c in private_codes().values()]
    assert len(values) == len(set(values))
    docs = Path(__file__).parents[1] / "docs" / "dicom.md"
    text = docs.read_text()
    for code in values:
        assert code in text, f"private code {code} is not documented in docs/dicom.md"
