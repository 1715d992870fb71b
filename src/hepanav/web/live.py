"""The operating-room live stream: ``hepanav fluoro live``'s frames as MJPEG over HTTP.

The frame composition is the fluorescence package's (:class:`LiveDisplay`), so the
browser shows exactly what the desktop window shows: overlay, lesion labels (TBR,
pattern), the margin warning and the added latency.
"""

from __future__ import annotations

from collections.abc import Iterator


def live_stream(source: str, white: str | None = None) -> tuple[str, Iterator[bytes]]:
    """Open ``source`` and return the MJPEG media type and an iterator of its parts.

    Raises
    ------
    InputError
        When the source cannot be opened (the first frame is read before returning).
    """
    from hepanav.fluorescence.live import (
        MJPEG_BOUNDARY,
        LiveDisplay,
        jpeg_frames,
        live_frames,
        mjpeg_multipart,
    )
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import frame_pairs

    info, pairs = frame_pairs(source, white)
    depth = info["bit_depth"]
    live = LiveDisplay(
        AnalysisSettings(bit_depth=depth),
        depth,
        clipped_background=info.get("clipped_background", False),
    )
    frames = live_frames(pairs, live, pace=True)
    media = f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}"
    return media, mjpeg_multipart(jpeg_frames(frames))
