"""Regression tests of the fluorescence input and margin defects (branch fluofix), on
synthetic frames whose values are known by construction: a disc of 3000 DN on a 1000 DN
liver with Gaussian noise of SD 20 DN has TBR 3 and CNR (3000 - 1000) / 20 = 100."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cli_helpers import one_line_error
from hepanav.fluorescence import margin, measure
from hepanav.fluorescence.margin import check_frame
from hepanav.fluorescence.schema import AnalysisSettings

H, W = 240, 320
LIVER, LESION, NOISE = 1000.0, 3000.0, 20.0
TRUE_TBR, TRUE_CNR = LESION / LIVER, (LESION - LIVER) / NOISE
CX, CY, R = 160, 120, 30


def _disc(r):
    yy, xx = np.mgrid[:H, :W]
    return (xx - CX) ** 2 + (yy - CY) ** 2 <= r * r


def _nir(seed=0):
    rng = np.random.default_rng(seed)
    img = LIVER + rng.normal(0, NOISE, (H, W))
    inside = _disc(R)
    img[inside] = LESION + rng.normal(0, NOISE, int(inside.sum()))
    return np.clip(np.rint(img), 0, 4095).astype(np.uint16)


# 1: a surface inside a fluorescent lesion --------------------------------------------------


def test_surface_inside_a_lesion_is_measured_against_the_liver_around_it():
    # Old code: the spot's ring lay inside the lesion, the spot was "not measured" and the
    # frame at_risk=False.
    frame = check_frame(0, _nir(), _disc(20), AnalysisSettings(bit_depth=12), 4095)
    assert frame.at_risk and not frame.undetermined
    (spot,) = frame.spots
    assert spot.background == "region ring" and spot.meets_criterion
    assert spot.area_px == int(_disc(20).sum())
    assert spot.tbr == pytest.approx(TRUE_TBR, rel=0.01)
    assert spot.cnr == pytest.approx(TRUE_CNR, rel=0.1)
    assert any("measured against the ring around that whole region" in w for w in frame.warnings)


def test_surface_inside_a_lesion_cli(cli, tmp_path):
    cv2.imwrite(str(tmp_path / "nir.png"), _nir())
    cv2.imwrite(str(tmp_path / "surf.png"), (_disc(20) * 255).astype(np.uint8))
    code, out, err = cli(
        "fluoro", "margin-check", "--nir", tmp_path / "nir.png", "--surface",
        tmp_path / "surf.png", "--out", tmp_path / "m",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("at_risk=true: 1 spot(s)"), out
    data = json.loads((tmp_path / "m" / "margin.json").read_text(encoding="utf-8"))
    assert data["at_risk"] is True and data["undetermined"] is False
    assert data["frames"][0]["spots"][0]["background"] == "region ring"
    html = (tmp_path / "m" / "margin.html").read_text(encoding="utf-8")
    assert "AT RISK: fluorescence on the surface" in html and "region ring" in html


def test_a_spot_that_cannot_be_measured_is_undetermined_and_at_risk(monkeypatch, cli, tmp_path):
    # No background anywhere (as for a region filling the frame): never "clear".
    real = measure.intensities

    def no_background(*args, **kwargs):
        stats = real(*args, **kwargs)
        stats.background_mean = stats.background_sd = float("nan")
        stats.background_px = 0
        return stats

    monkeypatch.setattr(measure, "intensities", no_background)
    frame = check_frame(0, _nir(), _disc(20), AnalysisSettings(bit_depth=12), 4095)
    assert frame.at_risk and frame.undetermined
    (spot,) = frame.spots
    assert spot.cnr is None and spot.tbr is None and spot.background == "none"
    assert spot.meets_criterion and margin.at_risk_spots(frame, 3.0, 20) == {1}
    assert any("margin undetermined, counted as at risk" in w for w in frame.warnings)
    # A smaller unmeasured spot than --min-area-px decides nothing.
    assert not check_frame(0, _nir(), _disc(20), AnalysisSettings(bit_depth=12), 4095,
                           min_area_px=5000).at_risk  # fmt: skip
    cv2.imwrite(str(tmp_path / "nir.png"), _nir())
    cv2.imwrite(str(tmp_path / "surf.png"), (_disc(20) * 255).astype(np.uint8))
    code, out, err = cli(
        "fluoro", "margin-check", "--nir", tmp_path / "nir.png", "--surface",
        tmp_path / "surf.png", "--out", tmp_path / "m",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("at_risk=true: 0 spot(s)") and "UNDETERMINED: 1 spot(s)" in out, out
    data = json.loads((tmp_path / "m" / "margin.json").read_text(encoding="utf-8"))
    assert data["at_risk"] is True and data["undetermined"] is True
    html = (tmp_path / "m" / "margin.html").read_text(encoding="utf-8")
    assert "AT RISK (UNDETERMINED)" in html and "not measured" in html


# 4: option errors name the option ---------------------------------------------------------


@pytest.mark.parametrize(
    "args, option",
    [
        (("render", "--gain", "fixed", "--gain-range", "4095,0"), "--gain-range"),
        (("analyze", "--bg-roi", "-1,0,10,10"), "--bg-roi"),
        (("analyze", "--bg-inner-px", "10", "--bg-outer-px", "5"), "--bg-outer-px"),
    ],
)
def test_option_errors_name_the_option(cli, tmp_path, args, option):
    cv2.imwrite(str(tmp_path / "nir.png"), _nir())
    out = tmp_path / ("v.mp4" if args[0] == "render" else "o")
    code, _, err = cli("fluoro", args[0], "--nir", tmp_path / "nir.png", *args[1:], "--out", out)
    line = one_line_error(code, err, f"error: {option}: ")
    assert "GainWindow" not in line and "BackgroundDefinition" not in line


# 2: TIFF with separate colour planes -------------------------------------------------------


def _analyze(cli, nir, out, *extra):
    code, stdout, err = cli(
        "fluoro", "analyze", "--nir", nir, *extra, "--out", out, "--quiet", "--no-video",
        "--no-report",
    )  # fmt: skip
    if code != 0:
        return code, err, None
    return code, err, json.loads((out / "lesions.json").read_text(encoding="utf-8"))


def _lesions(data):
    return [(les["centroid_xy"], les["area_px"], les["tbr"], les["cnr"])
            for les in data["frames"][0]["lesions"]]  # fmt: skip


def test_planar_tiff_is_refused_and_contiguous_reads_as_grey(cli, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    n = _nir()
    cv2.imwrite(str(tmp_path / "grey.tif"), n)
    tifffile.imwrite(tmp_path / "contig.tif", np.dstack([n, n, n]), photometric="rgb",
                     planarconfig="contig")  # fmt: skip
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([n, n, n]), photometric="rgb",
                     planarconfig="separate")  # fmt: skip
    _, err, grey = _analyze(cli, tmp_path / "grey.tif", tmp_path / "g")
    assert grey is not None, err
    (lesion,) = grey["frames"][0]["lesions"]  # one lesion, the disc
    assert lesion["tbr"] == pytest.approx(TRUE_TBR, rel=0.04)
    _, err, contig = _analyze(cli, tmp_path / "contig.tif", tmp_path / "c")
    assert contig is not None, err
    assert _lesions(contig) == _lesions(grey)
    assert "grey stored as RGB" in contig["input"]["notes"][0]
    # Old code: OpenCV decoded the planes as interleaved samples (5 fake lesions), exit 0.
    code, err, _ = _analyze(cli, tmp_path / "planar.tif", tmp_path / "p")
    one_line_error(code, err, "planar.tif", "PlanarConfiguration=2")
    assert not (tmp_path / "p").exists()
    # In a folder, a planar first image is refused as well.
    folder = tmp_path / "seq"
    folder.mkdir()
    (folder / "a.tif").write_bytes((tmp_path / "planar.tif").read_bytes())
    code, err, _ = _analyze(cli, folder, tmp_path / "f")
    one_line_error(code, err, "PlanarConfiguration=2")
    # Big-endian and BigTIFF files are recognised too.
    for kwargs in ({"byteorder": ">"}, {"bigtiff": True}):
        tifffile.imwrite(tmp_path / "x.tif", np.stack([n, n, n]), photometric="rgb",
                         planarconfig="separate", **kwargs)  # fmt: skip
        code, err, _ = _analyze(cli, tmp_path / "x.tif", tmp_path / "x")
        one_line_error(code, err, "PlanarConfiguration=2")


# 3: colour NIR images ----------------------------------------------------------------------


def _saturated8():
    """8-bit NIR: liver 60, a disc saturated at 255 (its true level would be 300)."""
    rng = np.random.default_rng(2)
    img = 60 + rng.normal(0, 2, (H, W))
    img[_disc(R)] = 300
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_colour_nir_with_unequal_channels_is_refused_unless_a_channel_is_named(cli, tmp_path):
    g = _saturated8()
    colour = np.zeros((H, W, 3), np.uint8)
    colour[..., 1] = g  # green only: luminance would put the saturated disc at 150
    cv2.imwrite(str(tmp_path / "col.png"), colour)
    cv2.imwrite(str(tmp_path / "grey.png"), g)
    cv2.imwrite(str(tmp_path / "grey3.png"), np.dstack([g, g, g]))
    code, err, _ = _analyze(cli, tmp_path / "col.png", tmp_path / "a")
    one_line_error(code, err, "col.png", "colour NIR image", "--channel")
    assert not (tmp_path / "a").exists()
    _, err, grey = _analyze(cli, tmp_path / "grey.png", tmp_path / "g")
    assert grey is not None, err
    assert any("saturated at code 255" in w for w in grey["frames"][0]["warnings"])
    _, err, green = _analyze(cli, tmp_path / "col.png", tmp_path / "c", "--channel", "g")
    assert green is not None, err
    assert "raw green channel used (--channel g)" in green["input"]["notes"][0]
    assert _lesions(green) == _lesions(grey)
    (lesion,) = green["frames"][0]["lesions"]
    assert lesion["mean_signal"] > 240  # the raw channel, not 0.587 x 255 = 150
    assert any("saturated at code 255" in w for w in green["frames"][0]["warnings"])
    _, err, grey3 = _analyze(cli, tmp_path / "grey3.png", tmp_path / "g3")
    assert grey3 is not None, err
    assert grey3["input"]["notes"][0].startswith("grey stored as RGB")
    assert _lesions(grey3) == _lesions(grey)
    # The option is never ignored in silence.
    code, err, _ = _analyze(cli, tmp_path / "grey.png", tmp_path / "x", "--channel", "g")
    one_line_error(code, err, "grey.png", "--channel g", "one channel")
    code, err, _ = _analyze(cli, tmp_path / "col.png", tmp_path / "x", "--channel", "y")
    one_line_error(code, err, "--channel", "r, g or b")
    # margin-check reads the same way.
    cv2.imwrite(str(tmp_path / "s.png"), (_disc(R + 20) * 255).astype(np.uint8))
    code, _, err = cli("fluoro", "margin-check", "--nir", tmp_path / "col.png", "--surface",
                       tmp_path / "s.png", "--out", tmp_path / "m")  # fmt: skip
    one_line_error(code, err, "col.png", "colour NIR image")


def test_grey_through_a_lossy_codec_is_grey_and_a_lossless_colour_frame_is_not():
    from hepanav.core import InputError
    from hepanav.fluorescence.sources import nir_plane

    g = _saturated8()
    near = np.dstack([g, g, g]).astype(np.int16)
    near[::2, ::2, 0] -= 2  # chroma rounding of a lossy codec
    near = np.clip(near, 0, 255).astype(np.uint8)
    plane, note = nir_plane(near, "v.mp4", lossy=True)
    assert note.startswith("grey stored as colour by a lossy codec (channels differ by up to 2")
    assert np.abs(plane.astype(int) - g).max() <= 1
    with pytest.raises(InputError, match="colour NIR image"):
        nir_plane(near, "v.png", lossy=False)
    green = np.zeros_like(near)
    green[..., 1] = g
    with pytest.raises(InputError, match="--channel"):
        nir_plane(green, "v.mp4", lossy=True)
    plane, note = nir_plane(green, "v.mp4", channel="g", lossy=True)
    assert np.array_equal(plane, g) and "--channel g" in note
