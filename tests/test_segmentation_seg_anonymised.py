"""``hepanav segment ... --out X.dcm`` on an anonymised CT series whose data sets carry
empty SOP Class/Instance, Study and Series Instance UIDs (as the real test series in
../shared/data/ct-abdomen-dicom does; highdicom failed with ``KeyError: ''``).

The SEG must reference the slices by the UIDs of their file meta headers, and its
voxels must be the NIfTI output's voxels in physical space (LPS mm), read back with
pydicom alone (not HepaNav's SEG reader).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error

sys.path.insert(0, str(Path(__file__).parent))
from dicomout_helpers import dciodvfy, sphere_case, write_study_ct  # noqa: E402
from segmentation_helpers import in_body, lesion_case  # noqa: E402

ANON_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def anonymise_uids(folder: Path, *, also_meta: bool = False) -> None:
    """Empty the UIDs in each slice's data set; keep (or also empty) the file meta's."""
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword in ANON_KEYWORDS:
            setattr(ds, keyword, "")
        if also_meta:
            ds.file_meta.MediaStorageSOPInstanceUID = ""
        ds.save_as(path, enforce_file_format=False)


def seg_voxels_lps(path: Path) -> tuple[np.ndarray, pydicom.Dataset]:
    """LPS centres (N, 3) of every set pixel of a binary one-segment SEG, from pydicom."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    row_mm, col_mm = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    points = []
    for frame, item in zip(frames, ds.PerFrameFunctionalGroupsSequence, strict=True):
        ipp = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
        r, c = np.nonzero(frame)
        points.append(ipp + np.outer(c * col_mm, iop[:3]) + np.outer(r * row_mm, iop[3:]))
    return np.concatenate(points), ds


def assert_same_voxels_in_space(seg_path: Path, nifti_path: Path) -> int:
    """Every SEG pixel sits on a set NIfTI voxel centre (<= 0.01 mm) and vice versa."""
    points, _ = seg_voxels_lps(seg_path)
    nifti = sitk.ReadImage(str(nifti_path))
    idx = np.asarray([nifti.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in points])
    rounded = np.rint(idx).astype(int)
    spacing = np.asarray(nifti.GetSpacing())
    assert np.max(np.abs(idx - rounded) * spacing) <= 0.01
    truth = np.argwhere(sitk.GetArrayViewFromImage(nifti) > 0)[:, ::-1]  # (i, j, k)
    assert len(truth) > 1000  # a real structure, not an empty match
    assert {tuple(v) for v in rounded} == {tuple(v) for v in truth}
    return len(truth)


def check_references(seg: pydicom.Dataset, ct_folder: Path) -> None:
    """The SEG names each source slice by its file meta SOP Instance UID, and each frame
    derives from the slice at its own position."""
    by_uid = {}
    for path in ct_folder.iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        by_uid[str(ds.file_meta.MediaStorageSOPInstanceUID)] = np.asarray(
            ds.ImagePositionPatient, float
        )
    listed = {
        str(i.ReferencedSOPInstanceUID)
        for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert listed == set(by_uid)
    for item in seg.PerFrameFunctionalGroupsSequence:
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        ipp = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
        assert np.allclose(by_uid[str(source.ReferencedSOPInstanceUID)], ipp, atol=1e-3)
    assert str(seg.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage


@pytest.fixture(scope="module")
def anon_ct(tmp_path_factory):
    """A hypodense lesion (r 8 mm) in a liver block, as an anonymised DICOM series."""
    ct, _, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    folder = tmp_path_factory.mktemp("anonseg") / "ct"
    write_study_ct(
        folder,
        np.rint(in_body(hu, grid)).astype(np.int16),
        spacing_xyz=ct.GetSpacing(),
        origin_xyz=ct.GetOrigin(),
    )
    anonymise_uids(folder)
    return folder, ",".join(f"{v:.2f}" for v in shape.center)


def test_anonymised_series_had_no_uids(anon_ct):
    """The fixture reproduces the real series: empty data set UIDs, file meta UIDs kept."""
    folder, _ = anon_ct
    ds = pydicom.dcmread(next(folder.iterdir()))
    assert all(str(getattr(ds, k)) == "" for k in ANON_KEYWORDS)
    assert str(ds.file_meta.MediaStorageSOPInstanceUID).startswith("1.")


def test_seg_on_anonymised_series_round_trips_in_space(cli, anon_ct, tmp_path):
    import highdicom as hd

    folder, seed = anon_ct
    out = tmp_path / "seg" / "t.dcm"
    code, _, err = cli("segment", "tumor", "--ct", folder, "--seed", seed, "--out", out)
    assert code == 0, err
    assert "taken from their file meta header" in err and "do not link" in err
    code, _, err = cli(
        "segment", "tumor", "--ct", folder, "--seed", seed, "--out", tmp_path / "t.nii.gz"
    )
    assert code == 0, err
    assert_same_voxels_in_space(out, tmp_path / "t.nii.gz")
    seg = hd.seg.segread(str(out))  # highdicom reads it back
    assert seg.number_of_segments == 1
    check_references(pydicom.dcmread(out), folder)
    errors, _ = dciodvfy(out)
    assert errors == []
    # the derived study/series UIDs are the same on every run (objects land together)
    code, _, err = cli(
        "segment", "tumor", "--ct", folder, "--seed", seed, "--out", tmp_path / "u.dcm"
    )
    assert code == 0, err
    a, b = pydicom.dcmread(out), pydicom.dcmread(tmp_path / "u.dcm")
    assert a.StudyInstanceUID == b.StudyInstanceUID != ""
    ref_a = a.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert ref_a == b.ReferencedSeriesSequence[0].SeriesInstanceUID != ""


def test_series_without_any_sop_uid_refused_and_no_folder_left(cli, anon_ct, tmp_path):
    """No SOP Instance UID even in the file meta: one line, exit 2, no folder created."""
    import shutil

    folder, seed = anon_ct
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    anonymise_uids(bare, also_meta=True)
    out = tmp_path / "new" / "deeper" / "t.dcm"
    code, _, err = cli("segment", "tumor", "--ct", bare, "--seed", seed, "--out", out)
    one_line_error(code, err, "SOPInstanceUID", "cannot reference")
    assert not (tmp_path / "new").exists()


def test_failed_seg_write_leaves_no_folder(cli, anon_ct, tmp_path, monkeypatch):
    """An error while building the SEG (after the folder was made for the output set):
    exit 2 and the new folder is removed again (nothing half-written)."""
    import hepanav.imaging.dicomout as dicomout

    folder, seed = anon_ct

    def broken(*_, **__):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dicomout, "write_dataset", broken)
    out = tmp_path / "seg" / "t.dcm"
    code, _, err = cli("segment", "tumor", "--ct", folder, "--seed", seed, "--out", out)
    one_line_error(code, err, "No space left on device")
    assert not out.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- the real series (../shared/data/ct-abdomen-dicom), skipped without it ---------------

LIVER_SEED = "-42.5,-223.6,-786.5"


@pytest.fixture(scope="module")
def real_series():
    from conftest import shared_data_dir

    folder = shared_data_dir() / "ct-abdomen-dicom" / "series"
    if not folder.is_dir():
        pytest.skip(f"real DICOM CT series not found at {folder} (see ../shared/data/README.md)")
    return folder


def test_liver_seg_on_the_real_series_round_trips(cli, real_series, tmp_path):
    import highdicom as hd

    out = tmp_path / "seg" / "liver.dcm"
    code, _, err = cli("segment", "liver", "--ct", real_series, "--seed", LIVER_SEED, "--out", out)
    assert code == 0, err
    code, _, err = cli(
        "segment", "liver", "--ct", real_series, "--seed", LIVER_SEED,
        "--out", tmp_path / "liver.nii.gz",
    )  # fmt: skip
    assert code == 0, err
    n = assert_same_voxels_in_space(out, tmp_path / "liver.nii.gz")
    assert n > 100_000  # a liver (hundreds of ml at 0.95 x 0.95 x 2 mm), not a blob
    assert hd.seg.segread(str(out)).number_of_segments == 1
    check_references(pydicom.dcmread(out), real_series)
    errors, _ = dciodvfy(out)
    assert errors == []


def test_margin_dicom_out_on_anonymised_pre_and_post(cli, tmp_path):
    """``hepanav margin --dicom-out`` shares the path (read_source_series + build_seg):
    on anonymised pre and post series it writes the SEG on the post series, referencing
    its slices by their file meta UIDs, and says the derived UIDs."""
    from hepanav.imaging import write_image

    pre_dir, _, tumour, _ = sphere_case(tmp_path / "pre")
    post_dir, _, _, zone = sphere_case(tmp_path / "post")
    write_image(tumour, tmp_path / "t.nii.gz")
    write_image(zone, tmp_path / "z.nii.gz")
    anonymise_uids(pre_dir)
    anonymise_uids(post_dir)
    code, out, err = cli("margin", "--pre", pre_dir, "--post", post_dir, "--tumor",
                         tmp_path / "t.nii.gz", "--ablation", tmp_path / "z.nii.gz", "--out",
                         tmp_path / "r", "--dicom-out", tmp_path / "d")  # fmt: skip
    assert code == 0, err
    said = out + err
    assert "taken from their file meta header" in said and "pre CT: " in said
    seg = pydicom.dcmread(tmp_path / "d" / "margin_seg.dcm")
    check_references(seg, post_dir)
    errors, _ = dciodvfy(tmp_path / "d" / "margin_seg.dcm")
    assert errors == []
