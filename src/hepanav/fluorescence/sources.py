"""Read NIR and white-light frames from files, image sequences, videos or a camera.

The frame model: a NIR frame (H, W) of 8, 12 or 16 bit (uint8 or uint16) and an
optional white-light frame (H, W, 3) uint8 BGR of the same size. Layouts found in
recordings:

``separate``      two streams (``--nir`` and ``--white``), or NIR alone;
``side-by-side``  one stream with white light and NIR next to each other;
``overlay``       one vendor video with the fluorescence blended into white light,
                  unmixed to an 8-bit fluorescence map (:mod:`.unmix`).

Sources: a single image (PNG/TIFF/...; a multi-page TIFF is a sequence), a folder of
images or a glob pattern (sorted by name), a video file (OpenCV/FFmpeg), or a camera
(``camera:0`` or ``0``). 12/16-bit data must come as images (PNG/TIFF): common video
codecs store 8 bit.

Problems with the *first* frame (unreadable, wrong size or bit depth) raise
:class:`~hepanav.core.InputError`; problems with a later frame are returned as a
per-frame warning so that a long recording is never lost to one bad frame.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hepanav.core import InputError

LAYOUTS = ("separate", "side-by-side", "overlay")
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm"}
_MAX_DECODE_FAILURES = 5  # consecutive undecodable video frames before we call it the end
# Smallest NIR frame side: the smallest lesion kept is 12 px across by default, and the
# motion estimate (phase correlation) fails on a frame one pixel wide.
MIN_SIDE_PX = 16


@dataclass
class RawFrame:
    """One decoded image (or the reason it could not be decoded)."""

    index: int
    image: np.ndarray | None
    time_s: float | None = None
    warning: str | None = None


@dataclass
class FramePair:
    """NIR and white-light frame of one time point.

    Attributes
    ----------
    index : int
    nir : ndarray, (H, W) uint8 or uint16, or None when the frame is unusable
    white : ndarray, (H, W, 3) uint8, or None
    time_s : float or None
    warnings : list of str
    """

    index: int
    nir: np.ndarray | None
    white: np.ndarray | None = None
    time_s: float | None = None
    warnings: list[str] = field(default_factory=list)


class FrameSource:
    """Iterate over the raw frames of one source (see module docstring for the kinds)."""

    def __init__(self, spec: str | Path) -> None:
        self.spec = str(spec)
        self.fps: float | None = None
        self.count: int | None = None
        self._kind, self._items = self._resolve()

    def _resolve(self) -> tuple[str, object]:
        spec = self.spec
        m = re.fullmatch(r"(?:camera:)?(\d+)", spec)
        if m and not Path(spec).exists():
            return "camera", int(m.group(1))
        if any(ch in spec for ch in "*?["):
            files = sorted(glob.glob(spec))
            if not files:
                raise InputError("no files match this pattern", spec)
            return "images", files
        path = Path(spec)
        if not path.exists():
            raise InputError("file or folder not found", spec)
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError("folder contains no images (.png, .tif, ...)", spec)
            return "images", files
        if path.suffix.lower() in (".tif", ".tiff"):
            ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
            if not ok or not pages:
                raise InputError("cannot read this TIFF file", spec)
            return "arrays", list(pages)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return "images", [str(path)]
        if path.stat().st_size == 0:
            raise InputError("video file is empty (0 bytes)", spec)
        return "video", str(path)

    def __iter__(self) -> Iterator[RawFrame]:
        if self._kind == "images":
            self.count = len(self._items)
            for i, name in enumerate(self._items):
                image = cv2.imread(name, cv2.IMREAD_UNCHANGED)
                if image is None:
                    yield RawFrame(i, None, warning=f"unreadable image {Path(name).name}")
                else:
                    yield RawFrame(i, image)
        elif self._kind == "arrays":
            self.count = len(self._items)
            for i, image in enumerate(self._items):
                yield RawFrame(i, image)
        else:
            yield from self._video()

    def _video(self) -> Iterator[RawFrame]:
        # OpenCV logs its own failed attempts to stderr; the user gets our one line instead.
        # FFmpeg logs on its own ("moov atom not found"): OpenCV reads this variable when
        # it opens a file (-8 = quiet); a value the user set is kept.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            cap = cv2.VideoCapture(self._items)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not cap.isOpened():
            if self._kind == "camera":
                raise InputError("cannot open this camera (not connected or in use)", self.spec)
            raise InputError("cannot open this video (unreadable or unsupported format)", self.spec)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.count = count if count > 0 else None
        index, failures = 0, 0
        try:
            while True:
                ok, image = cap.read()
                if ok and image is not None:
                    failures = 0
                    time_s = index / self.fps if self.fps else None
                    yield RawFrame(index, image, time_s)
                    index += 1
                    continue
                # A failed read is the end of the file unless the container says
                # there are more frames: then it is a damaged frame; skip it.
                if self.count is None or index >= self.count - 1 or self._kind == "camera":
                    break
                failures += 1
                if failures > _MAX_DECODE_FAILURES:
                    break
                yield RawFrame(index, None, warning="frame could not be decoded")
                index += 1
        finally:
            cap.release()


def check_nir(image: np.ndarray, bit_depth: int | None, source: str) -> tuple[np.ndarray, int]:
    """Validate a NIR image and return it as (H, W) uint8/uint16 with its bit depth.

    Parameters
    ----------
    image : ndarray
        Decoded image: (H, W) or (H, W, 3|4).
    bit_depth : int or None
        Declared bit depth (8, 12, 16) or None to take it from the pixel type.
    source : str
        Name for error messages.

    Raises
    ------
    InputError
        Unsupported pixel type, or values that do not fit the declared bit depth.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"NIR pixel type {image.dtype} is not supported; expected 8, 12 or 16 bit unsigned",
            source,
        )
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
    native = 8 if image.dtype == np.uint8 else 16
    depth = bit_depth or native
    if depth == 8 and native == 16:
        raise InputError("NIR data are 16-bit but --bit-depth 8 was given", source)
    if depth > 8 and native == 8:
        raise InputError(f"NIR data are 8-bit but --bit-depth {depth} was given", source)
    if depth == 12:
        top = int(image.max())
        if top > 4095:
            raise InputError(
                f"NIR value {top} does not fit 12 bit (max 4095); check --bit-depth", source
            )
    return image, depth


def _white8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = image[..., :3]
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return image


def frame_pairs(
    nir: str | Path,
    white: str | Path | None = None,
    layout: str = "separate",
    bit_depth: int | None = None,
    nir_side: str = "right",
    overlay_colour: str = "green",
) -> tuple[dict, Iterator[FramePair]]:
    """Open the input and return its description and an iterator of frame pairs.

    The first frame is read and checked before returning, so bad input fails here
    with an :class:`InputError` (the CLI turns it into one line and exit code 2).

    Parameters
    ----------
    nir : str or Path
        NIR source (or the combined stream for ``side-by-side`` / ``overlay``).
    white : str or Path, optional
        White-light source for layout ``separate``.
    layout : str
        One of ``LAYOUTS``.
    bit_depth : int, optional
        Declared NIR bit depth (8, 12, 16).
    nir_side : str
        ``left`` or ``right``: where the NIR half is in ``side-by-side``.
    overlay_colour : str
        ``green`` or ``jet`` for layout ``overlay``.

    Returns
    -------
    info : dict
        ``frame_size_wh``, ``bit_depth``, ``fps``, ``count`` and ``clipped_background``
        (True for overlay videos: the liver background is below the tower's threshold).
    pairs : iterator of FramePair
    """
    from hepanav.fluorescence.unmix import OVERLAY_COLOURS, unmix_overlay

    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}", "--layout")
    if white is not None and layout != "separate":
        raise InputError(f"--white is only used with layout 'separate', not {layout!r}", "--white")
    if nir_side not in ("left", "right"):
        raise InputError("must be 'left' or 'right'", "--nir-side")
    if layout == "overlay" and overlay_colour not in OVERLAY_COLOURS:
        raise InputError(f"choose from {', '.join(OVERLAY_COLOURS)}", "--overlay-colour")
    if layout == "overlay" and bit_depth not in (None, 8):
        raise InputError("overlay videos are 8-bit colour; do not give --bit-depth", "--bit-depth")
    nir_src = FrameSource(nir)
    white_src = FrameSource(white) if white is not None else None
    nir_iter = iter(nir_src)
    white_iter = iter(white_src) if white_src else None
    src = str(nir)

    def split(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if layout == "separate":
            return raw, None
        if layout == "overlay":
            if raw.ndim != 3 or raw.dtype != np.uint8:
                raise InputError("an overlay video must be 8-bit colour", src)
            level = unmix_overlay(raw[..., :3], overlay_colour)
            return np.rint(level * 255).astype(np.uint8), raw[..., :3]
        w = raw.shape[1] // 2
        if w < 8:
            raise InputError("frame too narrow for side-by-side layout", src)
        left, right = raw[:, :w], raw[:, w : 2 * w]
        nir_half, white_half = (right, left) if nir_side == "right" else (left, right)
        return nir_half, _white8(white_half)

    def first_image(it: Iterator[RawFrame], name: str) -> RawFrame:
        try:
            first = next(it)
        except StopIteration:
            raise InputError("contains no frames (empty or unreadable video)", name) from None
        if first.image is None:
            raise InputError(f"first frame unreadable: {first.warning}", name)
        return first

    first = first_image(nir_iter, src)
    nir0, white0 = split(first.image)
    nir0, depth = check_nir(nir0, bit_depth, src)
    size = (nir0.shape[1], nir0.shape[0])
    if min(size) < MIN_SIDE_PX:
        raise InputError(
            f"NIR frames are {size[0]}x{size[1]} px; at least {MIN_SIDE_PX} px on each side "
            "are needed",
            src,
        )
    white_first = None
    if white_iter is not None:
        white_first = first_image(white_iter, str(white))
        white0 = _white8(white_first.image)
    if white0 is not None and white0.shape[:2] != nir0.shape:
        raise InputError(
            f"white-light frames are {white0.shape[1]}x{white0.shape[0]} px but NIR frames are "
            f"{size[0]}x{size[1]} px; both must have the same size",
            str(white) if white is not None else src,
        )
    info = {
        "frame_size_wh": size,
        "bit_depth": depth,
        "fps": nir_src.fps,
        "count": nir_src.count,
        "clipped_background": layout == "overlay",
    }

    def pairs() -> Iterator[FramePair]:
        yield FramePair(first.index, nir0, white0, first.time_s)
        for raw in nir_iter:
            pair = FramePair(raw.index, None, None, raw.time_s)
            wraw = next(white_iter, None) if white_iter is not None else None
            if raw.image is None:
                pair.warnings.append(f"skipped: {raw.warning}")
                yield pair
                continue
            try:
                n, w = split(raw.image)
                n, _ = check_nir(n, depth, src)
                if white_iter is not None:
                    if wraw is None or wraw.image is None:
                        pair.warnings.append("white-light frame missing; NIR analysed alone")
                        w = None
                    else:
                        w = _white8(wraw.image)
                if n.shape != nir0.shape:
                    raise InputError(f"frame size changed to {n.shape[1]}x{n.shape[0]} px", src)
                if w is not None and w.shape[:2] != n.shape:
                    pair.warnings.append("white-light frame size differs; NIR analysed alone")
                    w = None
                pair.nir, pair.white = n, w
            except InputError as exc:
                pair.warnings.append(f"skipped: {exc.reason}")
            yield pair

    return info, pairs()
