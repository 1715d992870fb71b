"""Inputs for the fluorescence tests: small generated recordings, videos written with PyAV."""

from __future__ import annotations

import fractions
import subprocess
import sys
from pathlib import Path

import numpy as np

from hepanav.phantoms.fluorescence import Camera, FluoroLesion, render_sequence

CAMERA = Camera(width=256, height=224, mm_per_px=0.2)
LESIONS = [
    FluoroLesion((80, 80), 9.0, depth_mm=0.5, pattern="rim", surface_tbr=6.0, rim_thickness_mm=1.6),
    FluoroLesion((180, 150), 7.0, depth_mm=0.5, pattern="homogeneous", surface_tbr=5.0),
]


def generated_frames(n_frames: int = 4, seed: int = 3):
    """Frames (12-bit NIR + white light) of the two standard lesions, camera drifting."""
    return list(
        render_sequence(
            LESIONS, CAMERA, n_frames=n_frames, drift_px_per_frame=(1.0, 0.5), seed=seed
        )
    )


def write_av_video(
    path: Path,
    images: list[np.ndarray],
    times_s: list[float] | None = None,
    codec: str = "ffv1",
    pix_fmt: str = "gray16le",
    in_format: str = "gray16le",
    rate: int = 30,
) -> Path:
    """Write ``images`` with PyAV, each frame at ``times_s`` (ms time base) or at ``rate``.

    A list of uneven times makes a variable-frame-rate video (what phones and screen
    recorders write).
    """
    import av

    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = images[0].shape[1], images[0].shape[0]
        stream.pix_fmt = pix_fmt
        stream.time_base = tb
        stream.codec_context.time_base = tb  # keep millisecond times through the encoder
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format=in_format)
            t = times_s[i] if times_s is not None else i / rate
            frame.pts = round(t * 1000)
            frame.time_base = tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_hepanav(*args, cwd=None, preexec_fn=None, timeout: int = 180):
    """Run ``python -m hepanav`` in a child process (sees C libraries' own stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "hepanav", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        preexec_fn=preexec_fn,
    )
    return proc.returncode, proc.stdout, proc.stderr
