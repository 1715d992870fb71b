"""One DICOM series reader for the image and the slices DICOM objects reference
(tester5 D1-D3): what the reader drops (an exact duplicate, a slice of another pixel
spacing) is dropped and said the same way by ``margin``, ``segment`` and ``dicom export``;
a ``--source`` series the result does not overlap is a one-line error."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from cli_helpers import one_line_error
from dicom_helpers import volume_slices, write_slices
from hepanav.core import InputError
from hepanav.imaging import load_image
from hepanav.imaging.dicomout import read_source_series

sys.path.insert(0, str(Path(__file__).parent))
from dicomout_helpers import sphere_case, write_study_ct  # noqa: E402
from segmentation_helpers import in_body, lesion_case  # noqa: E402


def add_duplicate(folder: Path, index: int = 3) -> Path:
    """Copy slice ``index`` (by file name order) under a new SOP Instance UID: the same
    position and pixels, as a PACS export that sent one slice twice."""
    src = sorted(folder.iterdir())[index]
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = folder / "zz_duplicate.dcm"
    ds.save_as(out)
    return out


def test_source_series_leaves_out_the_duplicate_the_image_leaves_out(tmp_path):
    positions = [(-8.0, -8.0, float(z)) for z in range(6)]
    hu = np.arange(6 * 16 * 16, dtype=float).reshape(6, 16, 16) % 300
    write_slices(tmp_path / "ct", volume_slices(hu, positions, pixel_spacing=(1, 1)))
    add_duplicate(tmp_path / "ct", 2)
    source = read_source_series(tmp_path / "ct")
    image, record = load_image(tmp_path / "ct")
    assert len(source.datasets) == image.GetSize()[2] == 6  # was 7 slices against 6
    source.check_grid(image, "ct")
    assert all(Path(d.filename).name != "zz_duplicate.dcm" for d in source.datasets)
    note = "dropped 1 exact duplicate slice(s): zz_duplicate.dcm"
    assert note in record.notes and note in source.notes


@pytest.fixture(scope="module")
def margin_case(tmp_path_factory):
    from hepanav.imaging import write_image
    from hepanav.margin.pipeline import MarginInputs, run_margin

    folder = tmp_path_factory.mktemp("onereader")
    ct_dir, _, tumour, zone = sphere_case(folder)
    write_image(tumour, folder / "tumour.nii.gz")
    write_image(zone, folder / "zone.nii.gz")
    run_margin(
        MarginInputs(tumor=folder / "tumour.nii.gz", ablation=folder / "zone.nii.gz"),
        folder / "result",
    )
    return folder, ct_dir


def test_export_on_a_series_with_a_duplicate_slice_writes_and_says_it(cli, margin_case, tmp_path):
    folder, ct_dir = margin_case
    dup = tmp_path / "dup"
    shutil.copytree(ct_dir, dup)
    add_duplicate(dup)
    out = tmp_path / "dcm"
    code, stdout, err = cli("dicom", "export", folder / "result", "--source", dup, "--out", out)
    assert code == 0, err  # was: mask grid 48x48x24 is not the grid of series (48x48x25)
    assert "note: dropped 1 exact duplicate slice(s): zz_duplicate.dcm" in stdout
    seg = pydicom.dcmread(out / "margin_seg.dcm")
    referenced = {
        str(i.ReferencedSOPInstanceUID)
        for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    dup_uid = str(pydicom.dcmread(dup / "zz_duplicate.dcm").SOPInstanceUID)
    assert dup_uid not in referenced and len(referenced) == 24


def test_export_on_a_series_the_result_does_not_overlap_is_one_line(cli, margin_case, tmp_path):
    """The same CT 500 mm away along z (another frame of the body): every mask resampled
    onto it is empty. Was: unexpected ValueError, 'a HepaNav defect'."""
    folder, ct_dir = margin_case
    far = tmp_path / "far"
    for path in sorted(ct_dir.iterdir()):
        far.mkdir(exist_ok=True)
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 500.0]
        ds.save_as(far / path.name)
    out = tmp_path / "dcm"
    code, _, err = cli("dicom", "export", folder / "result", "--source", far, "--out", out)
    one_line_error(code, err, "does not overlap this series", str(far))
    assert "defect" not in err
    assert not out.exists()


def test_segment_json_notes_say_the_dropped_duplicate(cli, tmp_path):
    ct, _, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    folder = tmp_path / "ct"
    write_study_ct(
        folder,
        np.rint(in_body(hu, grid)).astype(np.int16),
        spacing_xyz=ct.GetSpacing(),
        origin_xyz=ct.GetOrigin(),
    )
    add_duplicate(folder)
    seed = ",".join(f"{v:.2f}" for v in shape.center)
    note = "dropped 1 exact duplicate slice(s): zz_duplicate.dcm"
    for name in ("t.nii.gz", "t.dcm"):
        code, _, err = cli(
            "segment", "tumor", "--ct", folder, "--seed", seed, "--out", tmp_path / name
        )
        assert code == 0, err
        data = json.loads((tmp_path / "t.json").read_text())
        assert note in data["notes"], data["notes"]
        assert err.count(note) == 1


def test_a_slice_dropped_for_its_pixel_spacing_is_not_called_missing(tmp_path):
    positions = [(-8.0, -8.0, float(z)) for z in range(0, 16, 2)]
    hu = np.zeros((8, 16, 16))
    datasets = volume_slices(hu, positions, pixel_spacing=(1, 1))
    datasets[4].PixelSpacing = [0.8, 0.8]
    write_slices(tmp_path / "ct", datasets)
    with pytest.raises(InputError) as info:
        load_image(tmp_path / "ct")
    message = str(info.value)
    assert "missing" not in message.replace("not missing", "")
    assert "where a slice was dropped, not missing: ct004.dcm: pixel spacing 0.8/0.8 mm" in message
    assert "the others have 1/1 mm" in message
