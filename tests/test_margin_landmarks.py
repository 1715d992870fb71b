"""Landmark files: CSV (LPS) and 3D Slicer markups (LPS or RAS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hepanav.core import InputError
from hepanav.margin.landmarks import (
    TRE_WARNING_MM,
    landmark_warning,
    paired_landmarks,
    read_landmarks,
)


def test_csv_landmarks(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text("id,x,y,z\n1,1.5,-2,3\n2,4,5,6\n")
    points = read_landmarks(path)
    np.testing.assert_allclose(points["1"], [1.5, -2, 3])
    np.testing.assert_allclose(points["2"], [4, 5, 6])


@pytest.mark.parametrize(("system", "expected"), [("LPS", [10, 20, 30]), ("RAS", [-10, -20, 30])])
def test_slicer_markups_are_converted_to_lps(tmp_path, system, expected):
    path = tmp_path / "pts.mrk.json"
    path.write_text(
        json.dumps(
            {
                "markups": [
                    {
                        "type": "Fiducial",
                        "coordinateSystem": system,
                        "controlPoints": [{"id": "1", "label": "P-1", "position": [10, 20, 30]}],
                    }
                ]
            }
        )
    )
    np.testing.assert_allclose(read_landmarks(path)["P-1"], expected)


def test_pairs_follow_ids(tmp_path):
    pre = {"1": np.zeros(3), "2": np.ones(3), "3": np.full(3, 2.0)}
    post = {"3": np.full(3, 5.0), "1": np.full(3, 4.0)}
    a, b = paired_landmarks(pre, post, "x")
    np.testing.assert_allclose(a, [np.zeros(3), np.full(3, 2.0)])
    np.testing.assert_allclose(b, [np.full(3, 4.0), np.full(3, 5.0)])
    with pytest.raises(InputError, match="no landmark id"):
        paired_landmarks({"a": np.zeros(3)}, {"b": np.zeros(3)}, "x")


def test_bad_landmark_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_landmarks(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,x,y,z\n1,a,2,3\n")
    with pytest.raises(InputError, match="line 2"):
        read_landmarks(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,x,y,z\n1,1,2,3\n1,1,2,3\n")
    with pytest.raises(InputError, match="duplicate"):
        read_landmarks(dup)
    notslicer = tmp_path / "x.mrk.json"
    notslicer.write_text("[]")
    with pytest.raises(InputError, match="markups"):
        read_landmarks(notslicer)


def test_csv_header_case_and_byte_order_mark_are_accepted(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_bytes(b"\xef\xbb\xbfID, X, Y, Z\n7,1,2,3\n")
    np.testing.assert_allclose(read_landmarks(path)["7"], [1, 2, 3])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bin.csv", b"\xff\xfe\x00id,x,y,z", "UTF-8"),
        ("nan.csv", b"id,x,y,z\n1,nan,0,0\n", "finite"),
        (
            "inf.mrk.json",
            b'{"markups": [{"controlPoints": [{"position": [1e999, 0, 0]}]}]}',
            "finite",
        ),
        ("dict.mrk.json", b'{"markups": {"a": 1}}', "markups"),
        ("cp.mrk.json", b'{"markups": [{"controlPoints": [1, 2]}]}', "controlPoints"),
    ],
)
def test_malformed_landmark_files_are_input_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_landmarks(path)


FCSV_HEADER = (
    "# Markups fiducial file version = {version}\n{system}"
    "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
)


@pytest.mark.parametrize(
    ("system_line", "expected"),
    [
        ("# CoordinateSystem = LPS\n", [10, 20, 30]),
        ("# CoordinateSystem = RAS\n", [-10, -20, 30]),
        ("# CoordinateSystem = 0\n", [-10, -20, 30]),  # Slicer 4.10: 0 = RAS
        ("# CoordinateSystem = 1\n", [10, 20, 30]),  # 1 = LPS
        ("", [-10, -20, 30]),  # no line: old files were RAS
    ],
)
def test_slicer_fcsv_honours_coordinate_system(tmp_path, system_line, expected):
    path = tmp_path / "pts.fcsv"
    path.write_text(
        FCSV_HEADER.format(version="4.11", system=system_line)
        + "vtkMRMLMarkupsFiducialNode_0,10,20,30,0,0,0,1,1,1,0,F-1,,\n"
        + "vtkMRMLMarkupsFiducialNode_1,1,2,3,0,0,0,1,1,1,0,F-2,,\n"
    )
    points = read_landmarks(path)
    np.testing.assert_allclose(points["F-1"], expected)
    assert set(points) == {"F-1", "F-2"}


def test_bad_fcsv_and_markups_system(tmp_path):
    path = tmp_path / "pts.fcsv"
    path.write_text(FCSV_HEADER.format(version="4.11", system="# CoordinateSystem = XYZ\n"))
    with pytest.raises(InputError, match="unknown CoordinateSystem 'XYZ'"):
        read_landmarks(path)
    path.write_text(FCSV_HEADER.format(version="4.11", system="") + "a,1,b,3,0,0,0,1,1,1,0,F-1,,\n")
    with pytest.raises(InputError, match="line 3: x, y, z must be numbers"):
        read_landmarks(path)
    mrk = tmp_path / "pts.mrk.json"
    mrk.write_text(json.dumps({"markups": [{"coordinateSystem": "IJK", "controlPoints": []}]}))
    with pytest.raises(InputError, match="unknown coordinateSystem 'IJK'"):
        read_landmarks(mrk)


def test_fifo_and_folder_refused_as_landmarks(tmp_path):
    import os

    fifo = tmp_path / "pts.fcsv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a FIFO"):
        read_landmarks(fifo)
    with pytest.raises(InputError, match="is a folder"):
        read_landmarks(tmp_path)


def _translation_and_points():
    """post -> pre maps p to p + t; pre landmarks are post landmarks + t (LPS mm)."""
    import SimpleITK as sitk

    t = np.array([8.0, -6.0, 3.0])
    post = np.array([[10.0, 20.0, 5.0], [-30.0, 40.0, -12.0], [55.0, -25.0, 30.0], [0, 0, 0]])
    return sitk.TranslationTransform(3, t.tolist()), post + t, post, t


def test_landmarks_in_lps_give_no_warning():
    transform, pre, post, _ = _translation_and_points()
    assert landmark_warning(transform, pre, post) is None


@pytest.mark.parametrize(
    ("flip_pre", "flip_post", "which"),
    [
        (True, True, "both landmark files are"),
        (True, False, "the pre landmark file is"),
        (False, True, "the post landmark file is"),
    ],
)
def test_landmarks_in_ras_are_named(flip_pre, flip_post, which):
    transform, pre, post, t = _translation_and_points()
    ras = np.array([-1.0, -1.0, 1.0])
    warning = landmark_warning(
        transform, pre * ras if flip_pre else pre, post * ras if flip_post else post
    )
    assert warning is not None and f"{which} likely in RAS, not LPS" in warning
    assert "would be 0.0 mm" in warning
    if flip_pre and flip_post:
        # T(F post) - F pre = t - F t = (2 tx, 2 ty, 0): 20 mm at every landmark.
        assert "TRE mean 20.0 mm, max 20.0 mm over 4 landmarks exceeds 10 mm" in warning


def test_landmarks_that_no_flip_explains_blame_the_registration():
    transform, pre, post, _ = _translation_and_points()
    warning = landmark_warning(transform, pre[::-1], post)  # ids paired wrongly
    assert warning is not None and "the registration may have failed" in warning
    assert TRE_WARNING_MM == 10.0
