"""DICOM/PACS options of margin and plan: refused before any work, in one line."""

from __future__ import annotations

from cli_helpers import one_line_error
from dicomout_helpers import sphere_case
from hepanav.imaging import write_image


def test_dicom_out_without_a_dicom_ct_is_refused_before_measuring(tmp_path, cli):
    _, _, tumour, zone = sphere_case(tmp_path)
    write_image(tumour, tmp_path / "t.nii.gz")
    write_image(zone, tmp_path / "z.nii.gz")
    one_line_error(*cli("margin", "--tumor", tmp_path / "t.nii.gz", "--ablation",
                        tmp_path / "z.nii.gz", "--out", tmp_path / "r", "--dicom-out",
                        tmp_path / "d")[0::2], "--dicom-out", "dicom export")
    assert not (tmp_path / "r").exists()


def test_send_without_pacs_settings_is_refused_before_measuring(tmp_path, cli, monkeypatch):
    ct_dir, _, tumour, zone = sphere_case(tmp_path)
    for key in ("HEPANAV_PACS_URL", "HEPANAV_PACS_CONFIG", "HEPANAV_PACS_PROTOCOL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/hepanav/pacs.toml
    write_image(tumour, tmp_path / "t.nii.gz")
    one_line_error(*cli("plan", "--ct", ct_dir, "--tumor", tmp_path / "t.nii.gz",
                        "--labels", tmp_path / "t.nii.gz", "--out", tmp_path / "p",
                        "--send")[0::2], "HEPANAV_PACS_URL")
    assert not (tmp_path / "p").exists()


def test_plan_needs_ct_or_from_pacs_not_both(tmp_path, cli):
    one_line_error(*cli("plan", "--tumor", tmp_path / "t.nii.gz", "--labels",
                        tmp_path / "l.nii.gz", "--out", tmp_path / "p")[0::2],
                   "give either --ct or --from-pacs")
    one_line_error(*cli("plan", "--ct", tmp_path, "--from-pacs", "1.2.3", "--tumor", "T",
                        "--labels", tmp_path / "l.nii.gz", "--out", tmp_path / "p")[0::2],
                   "give either --ct or --from-pacs")
