"""A source CT series without Slice Thickness (0018,0050) (Type 2; some exporters leave it
out; tester4): ``hepanav segment ... --out X.dcm`` crashed in highdicom with an
AttributeError. The SEG (and the margin export's objects) now take the slice spacing as
the thickness, say so in the notes, and are valid (dciodvfy)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cli_helpers import one_line_error

sys.path.insert(0, str(Path(__file__).parent))
from dicomout_helpers import dciodvfy, sphere_case, write_study_ct  # noqa: E402
from segmentation_helpers import in_body, lesion_case  # noqa: E402


def drop_slice_thickness(folder: Path, keep_first: int = 0) -> None:
    """Remove (0018,0050) from every slice file of ``folder`` but the first ``keep_first``."""
    for path in sorted(folder.iterdir())[keep_first:]:
        ds = pydicom.dcmread(path)
        del ds.SliceThickness
        ds.save_as(path, enforce_file_format=False)


@pytest.fixture(scope="module")
def thin_ct(tmp_path_factory):
    """A hypodense lesion (r 8 mm) in a liver block, slices 2.0 mm apart, no Slice Thickness."""
    ct, _, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    folder = tmp_path_factory.mktemp("nothick") / "ct"
    write_study_ct(
        folder,
        np.rint(in_body(hu, grid)).astype(np.int16),
        spacing_xyz=ct.GetSpacing(),
        origin_xyz=ct.GetOrigin(),
    )
    drop_slice_thickness(folder)
    return folder, ",".join(f"{v:.2f}" for v in shape.center), float(ct.GetSpacing()[2])


def test_fixture_has_no_slice_thickness(thin_ct):
    folder, _, _ = thin_ct
    assert all("SliceThickness" not in pydicom.dcmread(p) for p in folder.iterdir())


def test_seg_written_with_the_slice_spacing_as_thickness(cli, thin_ct, tmp_path):
    folder, seed, spacing = thin_ct
    out = tmp_path / "seg" / "t.dcm"
    code, _, err = cli("segment", "tumor", "--ct", folder, "--seed", seed, "--out", out)
    assert code == 0, err
    assert "no Slice Thickness (0018,0050)" in err and f"{spacing:g} mm" in err
    seg = pydicom.dcmread(out)
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == pytest.approx(spacing)
    errors, _ = dciodvfy(out)
    assert errors == []
    # the source files are never changed
    assert all("SliceThickness" not in pydicom.dcmread(p) for p in folder.iterdir())


def test_single_slice_without_thickness_is_one_line_error(tmp_path):
    from hepanav.core.errors import InputError
    from hepanav.imaging.dicomout import read_source_series

    folder = tmp_path / "one"
    write_study_ct(folder, np.zeros((1, 8, 8), np.int16))
    drop_slice_thickness(folder)
    # The source slices are those the series reader stacks (one reader for the image and
    # the objects): a single slice is refused there, before its thickness is looked at.
    with pytest.raises(InputError, match=r"1 slice; a 3D CT needs at least 2"):
        read_source_series(folder)


def test_margin_export_objects_valid_without_thickness(tmp_path):
    """SEG, SR and Secondary Captures of a margin result on such a series: dciodvfy clean
    of errors, the SEG's thickness the slice spacing (2 mm)."""
    from hepanav.dicom.export import export_result
    from hepanav.imaging import write_image
    from hepanav.margin.pipeline import MarginInputs, run_margin

    ct_dir, _, tumour, zone = sphere_case(tmp_path)
    drop_slice_thickness(ct_dir)
    write_image(tumour, tmp_path / "tumour.nii.gz")
    write_image(zone, tmp_path / "zone.nii.gz")
    run_margin(
        MarginInputs(tumor=tmp_path / "tumour.nii.gz", ablation=tmp_path / "zone.nii.gz"),
        tmp_path / "result",
    )
    files = export_result(tmp_path / "result", tmp_path / "dicom", ct_dir)
    assert {pydicom.dcmread(f, stop_before_pixels=True).Modality for f in files} == {
        "SEG",
        "SR",
        "OT",
    }
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality == "SEG":
            shared = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
            assert float(shared.SliceThickness) == pytest.approx(2.0)
        errors, _ = dciodvfy(path)
        assert errors == [], (path.name, errors)


def test_cli_error_is_one_line_for_single_slice(cli, tmp_path):
    folder = tmp_path / "one"
    write_study_ct(folder, np.full((1, 32, 32), 60, np.int16))
    drop_slice_thickness(folder)
    code, _, err = cli(
        "segment", "tumor", "--ct", folder, "--seed", "-90,-110,-50", "--out", tmp_path / "t.dcm"
    )
    assert code != 0
    assert "AttributeError" not in err
    one_line_error(code, err, "1 slice; a 3D CT needs at least 2")
