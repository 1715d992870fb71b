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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import tifffile

from hepanav.core import InputError

LAYOUTS = ("separate", "side-by-side", "overlay")
# Files that are certainly not frames (tables, volumes, documents) named as --nir/--white.
NOT_MEDIA_SUFFIXES = {
    ".csv", ".tsv", ".txt", ".json", ".yaml", ".yml", ".xlsx", ".html", ".pdf",
    ".nii", ".gz", ".nrrd", ".mha", ".mhd", ".dcm", ".zip",
}  # fmt: skip
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm"}
_MAX_DECODE_FAILURES = 5  # consecutive undecodable video frames before we call it the end
# Smallest NIR frame side: the smallest lesion kept is 12 px across by default, and the
# motion estimate (phase correlation) fails on a frame one pixel wide.
MIN_SIDE_PX = 16
# Largest NIR frame side: 8K video is 7680 px wide; a larger "frame" is not a camera image
# and would take gigabytes through the analysis.
MAX_SIDE_PX = 8192
# Codecs that keep every value: TBR from them is exact; from the others it is approximate.
LOSSLESS_CODECS = {
    "ffv1",
    "png",
    "apng",
    "tiff",
    "rawvideo",
    "huffyuv",
    "ffvhuff",
    "utvideo",
    "qtrle",
    "zlib",
    "bmp",
    "pgm",
    "ppm",
    "pnm",
    "magicyuv",
    "jpegls",
    "r210",
    "v210",
    "v410",
}
GRAY16 = ("gray16le", "gray16be")


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
    received : float or None
        ``time.perf_counter()`` at which the source made the frame available (set by
        sources that know it, e.g. :class:`MemoryReplay`); None = when it is read.
    """

    index: int
    nir: np.ndarray | None
    white: np.ndarray | None = None
    time_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    received: float | None = None


class MemoryReplay:
    """Replay decoded frames from memory at a fixed frame rate, the way a camera delivers.

    A camera hands over decoded frames at its rate and keeps only the newest one: a
    reader that falls behind gets the newest frame and the ones in between are lost.
    This source does the same with frames held in memory (no file decoding in the
    loop, which on a recording costs more than the display itself and is not part of a
    live system): frame ``i`` becomes available at ``start + i / fps``; when the reader
    asks late, the frames whose successor is already due are skipped and counted in
    :attr:`dropped`. Each yielded pair carries ``received`` = the moment it became
    available (not the moment it was read), so latency measured from it includes any
    wait in the buffer.

    Parameters
    ----------
    frames : list of FramePair
        Decoded frames, replayed in order and cycled; their arrays are handed out as
        they are (never modified by HepaNav).
    fps : float
        Frame rate, frames/s (> 0).
    n_frames : int
        Number of frame periods to replay (frames dropped included).

    Attributes
    ----------
    dropped : int
        Frames skipped because the reader was late.
    """

    def __init__(self, frames: list[FramePair], fps: float, n_frames: int) -> None:
        if not frames:
            raise ValueError("MemoryReplay needs at least one frame")
        if not (fps > 0 and np.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, not {fps!r}")
        self.frames = frames
        self.fps = float(fps)
        self.n_frames = int(n_frames)
        self.dropped = 0

    def __iter__(self) -> Iterator[FramePair]:
        period = 1.0 / self.fps
        start = time.perf_counter()
        i = 0
        while i < self.n_frames:
            due = start + i * period
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            else:
                newest = min(int((now - start) / period), self.n_frames - 1)
                if newest > i:  # overwritten in the camera's buffer
                    self.dropped += newest - i
                    i = newest
                    due = start + i * period
            src = self.frames[i % len(self.frames)]
            yield FramePair(i, src.nir, src.white, round(i * period, 6), list(src.warnings), due)
            i += 1


class FrameSource:
    """Iterate over the raw frames of one source (see module docstring for the kinds).

    Parameters
    ----------
    spec : str or Path
        File, folder, glob pattern, ``camera:N`` or an ``rtsp://`` / ``http(s)://`` URL.
    role : str
        ``nir`` or ``white``: a NIR video is decoded at its full bit depth where the codec
        stores more than 8 bit as grey (FFV1/PNG ``gray16le``); white light as 8-bit BGR.

    Attributes (after construction)
    -------------------------------
    fps : float or None
        Nominal frame rate (median of the container's frame intervals for files).
    count : int or None
    codec : str or None
        Codec of a video (``ffv1``, ``h264``, ...), ``png``/``tiff``/``jpeg`` for images.
    lossy : bool or None
        True when the codec is lossy (TBR of a lossy video is approximate).
    source_bits : int or None
        Bits per sample the codec stores (8, 10, 12, 16).
    timing : VideoTiming or None
        Frame times of a video file from its container timestamps.
    """

    def __init__(self, spec: str | Path, role: str = "nir") -> None:
        self.spec = str(spec)
        self.role = role
        self.fps: float | None = None
        self.count: int | None = None
        self.codec: str | None = None
        self.lossy: bool | None = None
        self.source_bits: int | None = None
        self.timing: VideoTiming | None = None
        self._kind, self._items = self._resolve()
        if self._kind == "video":
            self._probe_video()

    def _resolve(self) -> tuple[str, object]:
        spec = self.spec
        m = re.fullmatch(r"(?:camera:)?(\d+)", spec)
        if m and not Path(spec).exists():
            return "camera", int(m.group(1))
        if re.match(r"(rtsp|rtsps|http|https)://", spec, re.IGNORECASE):
            return "stream", spec
        if any(ch in spec for ch in "*?["):
            files = sorted(glob.glob(spec))
            if not files:
                raise InputError("no files match this pattern", spec)
            self._image_codec(files[0])
            return "images", files
        path = Path(spec)
        if not path.exists():
            raise InputError("file or folder not found", spec)
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError("folder contains no images (.png, .tif, ...)", spec)
            self._image_codec(files[0])
            return "images", files
        if not path.is_file():
            raise InputError("is not a regular file (FIFO or device?)", spec)
        if path.suffix.lower() in (".tif", ".tiff"):
            refuse_planar_tiff(path)
            with quiet_native_stderr():
                ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
            if not ok or not pages:
                raise InputError("cannot read this TIFF file", spec)
            self._image_codec(str(path))
            return "arrays", list(pages)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            self._image_codec(str(path))
            return "images", [str(path)]
        if path.suffix.lower() in NOT_MEDIA_SUFFIXES:
            # A table, a volume or a report given where frames are expected: say so
            # instead of "cannot open this video".
            raise InputError(
                f"a {path.suffix} file is not a video or image; expected a video (.mp4, "
                ".avi, .mkv, ...), an image, an image folder or a multi-page TIFF",
                spec,
            )
        if path.stat().st_size == 0:
            raise InputError("file is empty (0 bytes); expected a video or an image", spec)
        return "video", str(path)

    def _image_codec(self, name: str) -> None:
        refuse_planar_tiff(name)
        suffix = Path(name).suffix.lower()
        self.codec = {".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff"}.get(suffix, suffix[1:])
        self.lossy = self.codec == "jpeg"

    def _probe_video(self) -> None:
        """Codec, bit depth and frame times of a video file from its container (PyAV).

        When PyAV cannot open the file, OpenCV is used (``_kind`` becomes ``cvvideo``);
        its frame times come from ``CAP_PROP_POS_MSEC``.
        """
        import av

        try:
            with quiet_native_stderr(), av.open(self._items) as container:
                stream = container.streams.video[0]
                ctx = stream.codec_context
                self.codec = ctx.name
                fmt = ctx.format
                self.pix_fmt = fmt.name if fmt is not None else None
                self.source_bits = max(c.bits for c in fmt.components) if fmt else 8
                self.timing = _packet_timing(container, stream)
        except (av.FFmpegError, IndexError, OSError, ValueError):
            self._kind = "cvvideo"
            return
        self.lossy = self.codec not in LOSSLESS_CODECS
        self.count = self.timing.count or None
        self.fps = self.timing.fps
        if self.role == "nir" and self.source_bits > 8 and self.pix_fmt not in GRAY16:
            self._refuse_high_bit = (
                f"video stores {self.source_bits}-bit {self.pix_fmt} ({self.codec}); NIR is "
                "decoded at full depth only from 16-bit grey video (FFV1 gray16le) or 16-bit "
                "PNG/TIFF images; export it so, or give --bit-depth 8 to read it at 8 bit"
            )

    def __iter__(self) -> Iterator[RawFrame]:
        if self._kind == "images":
            self.count = len(self._items)
            for i, name in enumerate(self._items):
                try:
                    refuse_planar_tiff(name)
                except InputError as exc:
                    yield RawFrame(i, None, warning=f"{Path(name).name}: {exc.reason}")
                    continue
                image = read_image(name)
                if image is None:
                    yield RawFrame(i, None, warning=f"unreadable image {Path(name).name}")
                else:
                    yield RawFrame(i, image)
        elif self._kind == "arrays":
            self.count = len(self._items)
            for i, image in enumerate(self._items):
                yield RawFrame(i, image)
        elif self._kind == "video":
            yield from self._av_video()
        else:
            yield from self._video()

    def _av_video(self) -> Iterator[RawFrame]:
        """Decode with PyAV; times from each frame's presentation timestamp.

        FFmpeg's own messages are silenced only around opening and decoding, never while
        a frame is handed out (the caller may print in between).
        """
        import av

        gray16 = self.role == "nir" and self.pix_fmt in GRAY16
        gray8 = self.pix_fmt in ("gray", "gray8")
        start = self.timing.start_s if self.timing else 0.0
        index, failures = 0, 0
        with quiet_native_stderr():
            container = av.open(self._items)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            packets = container.demux(stream)
            while True:
                try:
                    with quiet_native_stderr():
                        packet = next(packets)
                        frames = packet.decode()
                        images = [
                            (
                                frame.to_ndarray(format="gray16le")
                                if gray16
                                else frame.to_ndarray(format="gray" if gray8 else "bgr24"),
                                frame.time,
                            )
                            for frame in frames
                        ]
                except StopIteration:
                    break
                except av.FFmpegError:
                    failures += 1
                    if failures > _MAX_DECODE_FAILURES:
                        break
                    yield RawFrame(index, None, warning="frame could not be decoded")
                    index += 1
                    continue
                for image, t in images:
                    failures = 0
                    yield RawFrame(index, image, None if t is None else round(t - start, 6))
                    index += 1
        finally:
            container.close()

    def _video(self) -> Iterator[RawFrame]:
        # OpenCV logs its own failed attempts to stderr; the user gets our one line instead.
        # FFmpeg logs on its own ("moov atom not found"): OpenCV reads this variable when
        # it opens a file (-8 = quiet); a value the user set is kept.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            with quiet_native_stderr():
                cap = cv2.VideoCapture(self._items)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not cap.isOpened():
            if self._kind == "camera":
                raise InputError("cannot open this camera (not connected or in use)", self.spec)
            if self._kind == "stream":
                raise InputError("cannot open this stream (address, network or codec)", self.spec)
            raise InputError("cannot open this video (unreadable or unsupported format)", self.spec)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.count = count if count > 0 and self._kind == "cvvideo" else None
        live = self._kind in ("camera", "stream")
        index, failures = 0, 0
        t_open = time.monotonic()
        try:
            while True:
                ok, image = cap.read()
                if ok and image is not None:
                    failures = 0
                    if live:
                        time_s = time.monotonic() - t_open
                    else:
                        # The container's time of this frame (not index / fps: that is
                        # wrong for variable-frame-rate recordings).
                        pos = cap.get(cv2.CAP_PROP_POS_MSEC)
                        time_s = pos / 1e3 if pos >= 0 else None
                    yield RawFrame(index, image, time_s)
                    index += 1
                    continue
                # A failed read is the end of the file unless the container says
                # there are more frames: then it is a damaged frame; skip it.
                if self.count is None or index >= self.count - 1 or live:
                    break
                failures += 1
                if failures > _MAX_DECODE_FAILURES:
                    break
                yield RawFrame(index, None, warning="frame could not be decoded")
                index += 1
        finally:
            cap.release()


@dataclass
class VideoTiming:
    """Frame times of a video file from its container's packet timestamps.

    Attributes
    ----------
    count : int
        Number of video packets with a timestamp.
    start_s : float
        Timestamp of the first frame, s (frame times are reported from it).
    fps : float or None
        1 / median frame interval.
    min_interval_ms, median_interval_ms, max_interval_ms : float or None
    variable : bool
        True when an interval differs from the median by more than
        ``max(VFR_TOLERANCE_MS, VFR_TOLERANCE_FRACTION * median)``.
    """

    count: int
    start_s: float
    fps: float | None
    min_interval_ms: float | None
    median_interval_ms: float | None
    max_interval_ms: float | None
    variable: bool

    def warning(self) -> str | None:
        """The variable-frame-rate warning, or None for a constant rate."""
        if not self.variable:
            return None
        return (
            f"variable frame rate: frame intervals from {self.min_interval_ms:.1f} to "
            f"{self.max_interval_ms:.1f} ms (median {self.median_interval_ms:.1f} ms); frame "
            "times are taken from the container's timestamps, not from an average rate"
        )


# Containers round timestamps (Matroska: 1 ms), so a constant 30 fps stream shows 33 and
# 34 ms intervals: a rate is "variable" only beyond this jitter.
VFR_TOLERANCE_MS = 2.0
VFR_TOLERANCE_FRACTION = 0.1


def _packet_timing(container, stream) -> VideoTiming:
    """Demux (no decoding) and read every packet's presentation time."""
    times = [
        float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size
    ]
    times.sort()  # B-frames come in decode order
    if not times:
        return VideoTiming(0, 0.0, None, None, None, None, False)
    gaps = np.diff(times) * 1e3
    if gaps.size == 0:
        return VideoTiming(len(times), times[0], None, None, None, None, False)
    med = float(np.median(gaps))
    tol = max(VFR_TOLERANCE_MS, VFR_TOLERANCE_FRACTION * med)
    variable = bool(np.abs(gaps - med).max() > tol)
    return VideoTiming(
        count=len(times),
        start_s=times[0],
        fps=1e3 / med if med > 0 else None,
        min_interval_ms=float(gaps.min()),
        median_interval_ms=med,
        max_interval_ms=float(gaps.max()),
        variable=variable,
    )


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what C libraries (libpng, libtiff, OpenCV, FFmpeg) print on file descriptor 2.

    Their messages would add lines to the one-line error the CLI prints; our own
    messages say what went wrong. Python-level ``sys.stderr`` is unaffected.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (embedded use): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


PLANAR_TIFF_ERROR = (
    "TIFF with separate colour planes (PlanarConfiguration=2) is not decoded correctly by "
    "OpenCV; save it as a one-channel (grey) TIFF, or with interleaved samples (contig)"
)


def refuse_planar_tiff(name: str | Path) -> None:
    """Raise when ``name`` is a TIFF whose pages store their samples in separate planes.

    OpenCV decodes such files without an error into a scrambled picture (fake lesions),
    so they are refused. The TIFF tags are read with tifffile; files that are not TIFF
    (by their suffix) or that tifffile cannot parse pass: the decoder judges them.

    Raises
    ------
    InputError
        A page with ``PlanarConfiguration`` SEPARATE (2) and more than one sample per
        pixel.
    """
    if Path(name).suffix.lower() not in (".tif", ".tiff"):
        return
    try:
        with tifffile.TiffFile(name) as tif:
            planar = any(
                page.samplesperpixel > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
                for page in tif.pages
            )
    except (OSError, ValueError, tifffile.TiffFileError):
        return
    if planar:
        raise InputError(PLANAR_TIFF_ERROR, name)


def read_image(name: str | Path) -> np.ndarray | None:
    """``cv2.imread(name, IMREAD_UNCHANGED)`` without the codec libraries' stderr chatter.

    Returns None for a file that cannot be decoded (truncated, corrupt, too large).
    """
    with quiet_native_stderr():
        try:
            return cv2.imread(str(name), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            return None


@dataclass
class DepthDecision:
    """How the NIR codes of a stream are read.

    Attributes
    ----------
    depth : int
        Bit depth (8, 12 or 16): full scale is ``2**depth - 1``, the saturation code.
    shift : int
        Right shift applied to every frame (4 for 12-bit data stored MSB-aligned in
        16-bit words, else 0).
    declared : bool
        True when the user gave ``--bit-depth`` (a later frame that does not fit is then
        an error, not a surprise).
    note : str or None
        Which depth was used and why, in words (saved in the result).
    container16 : bool
        8-bit data stored in 16-bit pixels (``--bit-depth 8``): frames are converted.
    warning : str or None
        A doubt about the decision for the whole input (saved in the result).
    """

    depth: int
    shift: int = 0
    declared: bool = False
    note: str | None = None
    container16: bool = False
    warning: str | None = None


# --channel letter -> index in OpenCV's BGR order.
CHANNELS = {"b": 0, "g": 1, "r": 2}
_CHANNEL_NAMES = {"b": "blue", "g": "green", "r": "red"}
# Largest difference between the colour channels of a grey picture after lossy compression
# (chroma rounding of JPEG, H.264, ...), 8-bit codes: such a frame is still grey.
LOSSY_GREY_TOLERANCE = 6


def nir_plane(
    image: np.ndarray, source: str, channel: str | None = None, lossy: bool = False
) -> tuple[np.ndarray, str | None]:
    """The one NIR plane of a decoded frame, and a note saying how it was taken.

    NIR cameras deliver one channel. A colour frame is accepted only when it is grey
    stored as colour (one of its equal channels is used, never a weighted luminance that
    would hide saturation) or when ``channel`` names the raw channel to use.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C) uint8/uint16
        Decoded frame; colour in OpenCV's BGR(A) order.
    source : str
        Name for error messages.
    channel : {"r", "g", "b"} or None
        ``--channel``: use this raw channel of a colour frame.
    lossy : bool
        The codec is lossy (or unknown): channels of a grey frame that differ by at most
        ``LOSSY_GREY_TOLERANCE`` codes (8 bit) count as grey; their luminance is used.

    Returns
    -------
    plane : ndarray, (H, W), the input's dtype
    note : str or None
        For the input's notes; None for a one-channel frame.

    Raises
    ------
    InputError
        Pixel type not 8/16-bit unsigned; a colour frame with unequal channels and no
        ``channel``; ``channel`` given for a one-channel frame.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"NIR pixel type {image.dtype} is not supported; expected 8, 12 or 16 bit unsigned",
            source,
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        if channel is not None:
            raise InputError(
                f"--channel {channel} was given but the NIR frames have one channel", source
            )
        return image, None
    image = image[..., :3]
    if channel is not None:
        return np.ascontiguousarray(image[..., CHANNELS[channel]]), (
            f"colour NIR image: raw {_CHANNEL_NAMES[channel]} channel used (--channel "
            f"{channel}); the other channels ignored"
        )
    b, g, r = cv2.split(image)
    spread = int(max(cv2.norm(b, g, cv2.NORM_INF), cv2.norm(r, g, cv2.NORM_INF)))
    if spread == 0:
        return g, "grey stored as RGB: the three channels are equal, one of them used"
    tolerance = LOSSY_GREY_TOLERANCE * (257 if image.dtype == np.uint16 else 1)
    if lossy and spread <= tolerance:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (
            f"grey stored as colour by a lossy codec (channels differ by up to {spread} "
            "codes): their luminance used"
        )
    raise InputError(
        f"colour NIR image (channels differ by up to {spread} codes): NIR cameras deliver "
        "one channel and a colour overlay is not a raw NIR frame; give --channel r, g or b "
        "to use one raw channel",
        source,
    )


def _gray(image: np.ndarray, source: str) -> np.ndarray:
    return nir_plane(image, source)[0]


def _msb_aligned(image: np.ndarray) -> bool:
    """All values multiples of 16 and a real picture (not a flat or empty frame)."""
    sample = image[::2, ::2]
    if np.count_nonzero(sample & 15):
        return False
    return int(sample.max()) > 4095 or len(np.unique(sample[::4, ::4])) >= 16


def decide_depth(
    image: np.ndarray,
    bit_depth: int | None,
    source: str,
    msb_aligned: bool = False,
    codec_note: str | None = None,
) -> tuple[np.ndarray, DepthDecision]:
    """Decide the bit depth of a NIR stream from its first frame (and the user's options).

    Rules (the note says which one applied):

    * 8-bit pixels: 8 bit (``--bit-depth`` 12/16 is refused: the file holds 8 bit).
    * 16-bit pixels with ``--bit-depth 8``: 8-bit data in a 16-bit container (values
      above 255 are refused); converted to 8 bit, saturation at 255.
    * ``--msb-aligned`` (or 16-bit pixels whose values are all multiples of 16 with
      ``--bit-depth`` 12 or none): 12-bit data in the high bits of 16-bit words; shifted
      right by 4 so that codes run 0..4095.
    * 16-bit pixels without ``--bit-depth`` whose values all fit 12 bit: 12-bit data
      (full scale 4095, so that saturation is seen); ``--bit-depth 16`` keeps 16. If
      the values stop at exactly 255 with a plateau of pixels there, the input gets a
      warning: that is saturated 8-bit data, which needs ``--bit-depth 8``.
    * otherwise the declared depth, or 16.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, 3) uint8/uint16
    bit_depth : int or None
        ``--bit-depth`` (8, 12, 16) or None.
    source : str
        Name for error messages.
    msb_aligned : bool
        ``--msb-aligned``: the user says the data are MSB-aligned.
    codec_note : str, optional
        Why a video holds only 8 bit (e.g. ``h264 yuv420p``), for the error message.

    Returns
    -------
    image : ndarray, (H, W) uint8/uint16, codes of the decided depth
    decision : DepthDecision

    Raises
    ------
    InputError
        Pixel type not 8/16-bit unsigned, or values that do not fit the declared depth.
    """
    image = _gray(image, source)
    native = 8 if image.dtype == np.uint8 else 16
    declared = bit_depth is not None
    if native == 8:
        if msb_aligned:
            raise InputError("--msb-aligned needs 16-bit pixels; these are 8-bit", source)
        if bit_depth not in (None, 8):
            where = f" (the codec, {codec_note}, stores 8 bit)" if codec_note else ""
            raise InputError(
                f"NIR data are 8-bit{where} but --bit-depth {bit_depth} was given", source
            )
        return image, DepthDecision(8, 0, declared, "8-bit pixels: full scale 255")
    if bit_depth == 8:
        if msb_aligned:
            raise InputError("--msb-aligned means 12-bit data; do not give --bit-depth 8", source)
        top = int(image.max())
        if top > 255:
            raise InputError(
                f"NIR value {top} does not fit 8 bit (max 255); check --bit-depth", source
            )
        return image.astype(np.uint8), DepthDecision(
            8,
            0,
            True,
            "8-bit data in 16-bit pixels (--bit-depth 8): full scale 255, saturation at 255",
            container16=True,
        )
    if msb_aligned:
        if bit_depth == 16:
            raise InputError("--msb-aligned means 12-bit data; do not give --bit-depth 16", source)
        if np.count_nonzero(image & 15):
            raise InputError(
                "--msb-aligned was given but the values are not all multiples of 16", source
            )
        return image >> 4, DepthDecision(
            12,
            4,
            True,
            "12-bit data stored MSB-aligned in 16-bit words (--msb-aligned): "
            "codes shifted right by 4 bits, full scale 4095",
        )
    top = int(image.max())
    if bit_depth in (None, 12) and _msb_aligned(image):
        return image >> 4, DepthDecision(
            12,
            4,
            declared,
            "12-bit data stored MSB-aligned in 16-bit words (all values are "
            "multiples of 16): codes shifted right by 4 bits, full scale 4095; give "
            "--bit-depth 16 if the camera really is 16-bit",
        )
    if bit_depth == 12 and top > 4095:
        raise InputError(
            f"NIR value {top} does not fit 12 bit (max 4095); check --bit-depth", source
        )
    if bit_depth is None and top <= 4095:
        decision = DepthDecision(
            12,
            0,
            False,
            f"16-bit pixels whose values all fit 12 bit (max {top}): read as "
            "12-bit data (full scale 4095, saturation at 4095); give --bit-depth 16 if the "
            "camera is 16-bit",
        )
        at_255 = int(np.count_nonzero(image == 255)) if top == 255 else 0
        if at_255 >= max(10, image.size // 10000):
            # No 12-bit picture stops exactly at 255 with a plateau there: 8-bit data
            # saturated at 255, which a 12-bit full scale would not flag.
            decision.warning = (
                f"NIR values stop at 255 with {at_255} px at 255: this looks like saturated "
                "8-bit data in 16-bit pixels, read as 12 bit (saturation not flagged); "
                "give --bit-depth 8"
            )
        return image, decision
    if declared:
        return image, DepthDecision(
            bit_depth, 0, True, f"--bit-depth {bit_depth}: full scale {(1 << bit_depth) - 1}"
        )
    return image, DepthDecision(16, 0, False, "16-bit pixels with values above 4095: 16 bit")


def check_nir(image: np.ndarray, decision: DepthDecision, source: str) -> np.ndarray:
    """A later frame of a stream read as ``decision`` says: (H, W) codes of its depth.

    Raises
    ------
    InputError
        Pixel type changed, or a value above the stream's full scale.
    """
    image = _gray(image, source)
    expected = np.uint8 if decision.depth == 8 and not decision.container16 else np.uint16
    if image.dtype != expected:
        raise InputError(f"pixel type changed to {image.dtype}", source)
    if decision.shift:
        if np.count_nonzero(image & ((1 << decision.shift) - 1)):
            raise InputError("values are no longer multiples of 16 (not MSB-aligned)", source)
        return image >> decision.shift
    if decision.container16:
        top = int(image.max())
        if top > 255:
            raise InputError(f"NIR value {top} does not fit 8 bit (--bit-depth 8)", source)
        return image.astype(np.uint8)
    if decision.depth == 12:
        top = int(image.max())
        if top > 4095:
            hint = "" if decision.declared else "; rerun with --bit-depth 16"
            raise InputError(f"NIR value {top} does not fit 12 bit{hint}", source)
    return image


def _white8(image: np.ndarray, source: str = "--white") -> np.ndarray:
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"white-light pixel type {image.dtype} is not supported; expected 8 or 16 bit "
            "unsigned colour",
            source,
        )
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
    msb_aligned: bool = False,
    channel: str | None = None,
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
        Declared NIR bit depth (8, 12, 16); None = detected (see :func:`decide_depth`).
    nir_side : str
        ``left`` or ``right``: where the NIR half is in ``side-by-side``.
    overlay_colour : str
        ``green`` or ``jet`` for layout ``overlay``.
    msb_aligned : bool
        The NIR holds 12-bit data in the high bits of 16-bit words.
    channel : {"r", "g", "b"}, optional
        ``--channel``: the raw channel of colour NIR frames to use (see :func:`nir_plane`;
        without it a colour NIR frame whose channels differ is refused).

    Returns
    -------
    info : dict
        ``frame_size_wh``, ``bit_depth``, ``fps``, ``count``, ``clipped_background``
        (True for overlay videos: the liver background is below the tower's threshold),
        ``codec``, ``lossy``, ``depth`` (:class:`DepthDecision`), ``timing``
        (:class:`VideoTiming` or None), ``notes`` and ``warnings`` (lists of str about
        the whole input, e.g. a variable frame rate).
    pairs : iterator of FramePair
        ``time_s`` of each frame from the container's timestamps (videos), else None.
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
    if layout == "overlay" and (bit_depth not in (None, 8) or msb_aligned):
        raise InputError("overlay videos are 8-bit colour; do not give --bit-depth", "--bit-depth")
    if channel is not None and channel not in CHANNELS:
        raise InputError(f"choose r, g or b, not {channel!r}", "--channel")
    if channel is not None and layout == "overlay":
        raise InputError(
            "the overlay layout unmixes the colours itself; do not give --channel", "--channel"
        )
    nir_src = FrameSource(nir, role="nir" if layout == "separate" else "white")
    src = str(nir)
    refusal = getattr(nir_src, "_refuse_high_bit", None)
    notes: list[str] = []
    if refusal:
        if bit_depth != 8:
            raise InputError(refusal, src)
        nir_src.role = "white"  # decoded as 8-bit colour, as the user asked
        notes.append(f"{nir_src.source_bits}-bit video read at 8 bit (--bit-depth 8)")
    white_src = FrameSource(white, role="white") if white is not None else None
    nir_iter = iter(nir_src)
    white_iter = iter(white_src) if white_src else None

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
        return nir_half, _white8(white_half, src)

    def first_image(it: Iterator[RawFrame], name: str) -> RawFrame:
        try:
            first = next(it)
        except StopIteration:
            raise InputError("contains no frames (empty or unreadable video)", name) from None
        if first.image is None:
            raise InputError(f"first frame unreadable: {first.warning}", name)
        h, w = first.image.shape[:2]
        if max(h, w) > MAX_SIDE_PX * (2 if layout == "side-by-side" else 1):
            raise InputError(
                f"frame is {w}x{h} px; at most {MAX_SIDE_PX} px on a side are read "
                "(8K video is 7680 px wide)",
                name,
            )
        return first

    first = first_image(nir_iter, src)
    nir0, white0 = split(first.image)
    lossy = nir_src.lossy is not False  # unknown (OpenCV video, camera): maybe lossy
    nir0, plane_note = nir_plane(nir0, src, channel, lossy)
    if plane_note:
        notes.append(plane_note)
    codec_note = None
    if nir_src._kind in ("video", "cvvideo"):
        codec_note = f"{nir_src.codec or 'video'} {getattr(nir_src, 'pix_fmt', '') or ''}".strip()
    nir0, depth = decide_depth(nir0, bit_depth, src, msb_aligned, codec_note)
    if depth.note:
        notes.append(depth.note)
    depth_warning = depth.warning
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
        white0 = _white8(white_first.image, str(white))
    if white0 is not None and white0.shape[:2] != nir0.shape:
        raise InputError(
            f"white-light frames are {white0.shape[1]}x{white0.shape[0]} px but NIR frames are "
            f"{size[0]}x{size[1]} px; both must have the same size",
            str(white) if white is not None else src,
        )
    warnings = [depth_warning] if depth_warning else []
    timing = nir_src.timing
    if timing is not None and timing.warning():
        warnings.append(timing.warning())
    info = {
        "frame_size_wh": size,
        "bit_depth": depth.depth,
        "fps": nir_src.fps,
        "count": nir_src.count,
        "clipped_background": layout == "overlay",
        "codec": nir_src.codec,
        "lossy": nir_src.lossy,
        "depth": depth,
        "timing": timing,
        "notes": notes,
        "warnings": warnings,
        "kind": nir_src._kind,
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
                n = check_nir(nir_plane(n, src, channel, lossy)[0], depth, src)
                if white_iter is not None:
                    if wraw is None or wraw.image is None:
                        pair.warnings.append("white-light frame missing; NIR analysed alone")
                        w = None
                    else:
                        w = _white8(wraw.image, str(white))
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


def path_label(spec: str | Path) -> str:
    """How an input is named in results: never an absolute path (it may name a patient).

    Files inside the working folder are given relative to it, others by their bare name;
    a camera keeps ``camera:N``; a stream URL loses its user name and password.
    """
    text = str(spec)
    if re.fullmatch(r"(?:camera:)?\d+", text) and not Path(text).exists():
        return text
    url = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^@/]*@)?(.*)", text)
    if url:
        return url.group(1) + url.group(2)
    path = Path(text)
    if not path.is_absolute() and ".." not in path.parts:
        return path.as_posix()
    try:
        return Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.name


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file (also through links or ``..``)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def refuse_overwriting_inputs(outputs: list[Path], inputs: list[str | Path | None]) -> None:
    """Raise before any work when an output file would replace one of the inputs.

    Raises
    ------
    InputError
        Naming the output and the input it would overwrite.
    """
    for out in outputs:
        for spec in inputs:
            if spec is None or any(ch in str(spec) for ch in "*?["):
                continue
            if Path(spec).is_dir():
                if Path(os.path.abspath(out)).parent == Path(os.path.abspath(spec)):
                    continue  # a new file in the input folder replaces nothing read
            if same_file(out, spec):
                raise InputError(
                    f"the output would overwrite the input {path_label(spec)}; choose another "
                    "output name",
                    out,
                )


def describe_input(nir: str | Path, white: str | Path | None, layout: str, info: dict) -> dict:
    """Fields of :class:`~hepanav.fluorescence.schema.InputDescription` from ``frame_pairs``."""
    timing: VideoTiming | None = info.get("timing")
    kind = info.get("kind")
    frame_times = {
        "video": "container timestamps",
        "cvvideo": "container timestamps",
        "camera": "clock",
        "stream": "clock",
    }.get(kind, "none")
    return {
        "nir": path_label(nir),
        "white": None if white is None else path_label(white),
        "layout": layout,
        "frame_size_wh": info["frame_size_wh"],
        "bit_depth": info["bit_depth"],
        "msb_aligned": bool(info.get("depth") and info["depth"].shift),
        "fps": None if info.get("fps") is None else round(info["fps"], 3),
        "codec": info.get("codec"),
        "lossy": info.get("lossy"),
        "frame_times": frame_times,
        "variable_frame_rate": bool(timing and timing.variable),
        "frame_interval_ms": None
        if timing is None or timing.median_interval_ms is None
        else (
            round(timing.min_interval_ms, 2),
            round(timing.median_interval_ms, 2),
            round(timing.max_interval_ms, 2),
        ),
        "notes": list(info.get("notes", [])),
        "warnings": list(info.get("warnings", [])),
    }
