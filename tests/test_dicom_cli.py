"""DICOM/PACS options of margin and plan: refused before any work, in one line."""

from __future__ import annotations

import pytest

from cli_helpers import one_line_error
from dicomout_helpers import sphere_case
from hepanav.imaging import write_image


def test_dicom_out_without_a_dicom_ct_is_refused_before_measuring(tmp_path, cli):
    _, _, tumour, zone = sphere_case(tmp_path)
    write_image(tumour, tmp_path / "t.nii.gz")
    write_image(zone, tmp_path / "z.nii.gz")
    one_line_error(
        *cli(
            "margin",
            "--tumor",
            tmp_path / "t.nii.gz",
            "--ablation",
            tmp_path / "z.nii.gz",
            "--out",
            tmp_path / "r",
            "--dicom-out",
            tmp_path / "d",
        )[0::2],
        "--dicom-out",
        "dicom export",
    )
    assert not (tmp_path / "r").exists()


def test_send_without_pacs_settings_is_refused_before_measuring(tmp_path, cli, monkeypatch):
    ct_dir, _, tumour, zone = sphere_case(tmp_path)
    for key in ("HEPANAV_PACS_URL", "HEPANAV_PACS_CONFIG", "HEPANAV_PACS_PROTOCOL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/hepanav/pacs.toml
    write_image(tumour, tmp_path / "t.nii.gz")
    one_line_error(
        *cli(
            "plan",
            "--ct",
            ct_dir,
            "--tumor",
            tmp_path / "t.nii.gz",
            "--labels",
            tmp_path / "t.nii.gz",
            "--out",
            tmp_path / "p",
            "--send",
        )[0::2],
        "HEPANAV_PACS_URL",
    )
    assert not (tmp_path / "p").exists()


def test_plan_needs_ct_or_from_pacs_not_both(tmp_path, cli):
    one_line_error(
        *cli(
            "plan",
            "--tumor",
            tmp_path / "t.nii.gz",
            "--labels",
            tmp_path / "l.nii.gz",
            "--out",
            tmp_path / "p",
        )[0::2],
        "give either --ct or --from-pacs",
    )
    one_line_error(
        *cli(
            "plan",
            "--ct",
            tmp_path,
            "--from-pacs",
            "1.2.3",
            "--tumor",
            "T",
            "--labels",
            tmp_path / "l.nii.gz",
            "--out",
            tmp_path / "p",
        )[0::2],
        "give either --ct or --from-pacs",
    )


def _damage_frame_of_reference(folder, how: str):
    """Remove the Frame of Reference UID from every slice (``all``) or the last one
    (``last``), or give the last slice another one (``other``)."""
    import pydicom

    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in files if how == "all" else files[-1:]:
        ds = pydicom.dcmread(path)
        if how == "other":
            ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"
        else:
            del ds.FrameOfReferenceUID
        ds.save_as(path)
    return folder


def _tripwire(monkeypatch, target: str):
    """The pipeline (registration, planning) must not start: fail loudly if it does."""

    def reached(*_, **__):
        raise AssertionError(f"{target} ran although the source series was refused")

    monkeypatch.setattr(target, reached)


@pytest.mark.parametrize(
    ("bad", "how", "dicom_option"),
    [
        ("post", "all", "--dicom-out"),
        ("pre", "all", "--dicom-out"),
        ("post", "last", "--dicom-out"),
        ("post", "other", "--dicom-out"),
        ("post", "all", "--send"),
    ],
    ids=["post-dicom-out", "pre-dicom-out", "one-slice-without", "two-frames", "post-send"],
)
def test_bad_source_series_refused_before_registration(
    tmp_path, cli, monkeypatch, bad, how, dicom_option
):
    """--dicom-out/--send need the series the objects will reference (UIDs, frame of
    reference): a series without a Frame of Reference UID is refused before the minutes
    of registration, in one line naming the folder; nothing is written."""
    pre_dir, _, tumour, _ = sphere_case(tmp_path / "pre")
    post_dir, _, _, zone = sphere_case(tmp_path / "post")
    write_image(tumour, tmp_path / "t.nii.gz")
    write_image(zone, tmp_path / "z.nii.gz")
    folder = {"pre": pre_dir, "post": post_dir}[bad]
    _damage_frame_of_reference(folder, how)
    _tripwire(monkeypatch, "hepanav.margin.pipeline.run_margin")
    extra = ["--dicom-out", tmp_path / "d"] if dicom_option == "--dicom-out" else ["--send"]
    code, _, err = cli("margin", "--pre", pre_dir, "--post", post_dir, "--tumor",
                       tmp_path / "t.nii.gz", "--ablation", tmp_path / "z.nii.gz", "--out",
                       tmp_path / "r", *extra)  # fmt: skip
    one_line_error(code, err, str(folder), "Frame of Reference UID")
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()
    assert not list(tmp_path.glob(".r*")), "a temporary output was left behind"


def test_plan_dicom_out_with_a_bad_ct_series_is_refused_before_planning(tmp_path, cli, monkeypatch):
    ct_dir, _, tumour, _ = sphere_case(tmp_path)
    write_image(tumour, tmp_path / "t.nii.gz")
    _damage_frame_of_reference(ct_dir, "all")
    _tripwire(monkeypatch, "hepanav.planning.pipeline.run_plan")
    code, _, err = cli("plan", "--ct", ct_dir, "--tumor", tmp_path / "t.nii.gz", "--labels",
                       tmp_path / "t.nii.gz", "--out", tmp_path / "p", "--dicom-out",
                       tmp_path / "d")  # fmt: skip
    one_line_error(code, err, str(ct_dir), "Frame of Reference UID")
    assert not (tmp_path / "p").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("which", ["sources", "plan.json"])
def test_dicom_export_reads_result_json_bounded(tmp_path, cli, which):
    """The result folder's JSON files are users' files too: nested 5,000 deep they are one
    line (a RecursionError traceback before), naming the file."""
    from hepanav.dicom.export import SOURCES_FILE

    result = tmp_path / "result"
    result.mkdir()
    name = SOURCES_FILE if which == "sources" else "plan.json"
    (result / name).write_text("[" * 5000 + "]" * 5000)
    code, _, err = cli("dicom", "export", result, "--out", tmp_path / "d")
    one_line_error(code, err, name, "nested more than 32 levels")
    assert not (tmp_path / "d").exists()
