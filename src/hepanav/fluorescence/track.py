"""Keep the same id for a lesion across frames while the camera moves.

Camera motion between frames is estimated by phase correlation of downscaled frames
(``cv2.phaseCorrelate``, sub-pixel, robust to illumination changes). A shift whose
correlation peak is below ``MIN_RESPONSE`` (a featureless view: the "shift" is noise)
is not used: the tracks then stay where they were. The previous
lesion positions are shifted by it and matched to the new detections by the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on centroid distance,
with a gate. Unmatched detections start new tracks; a track survives
``max_missed`` frames without a detection (a lesion hidden by an instrument).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

_MOTION_SIDE = 256  # phase correlation on frames of about this size
# Smallest phase-correlation peak of a trusted shift. Textured endoscopic frames give
# about 0.9; frames with nothing but noise (a featureless view) give 0.03-0.05 and
# a random shift.
MIN_RESPONSE = 0.1


@dataclass
class _Track:
    id: int
    xy: np.ndarray
    radius: float
    missed: int = 0


@dataclass
class MotionEstimator:
    """Frame-to-frame translation of the scene by phase correlation.

    ``update(frame)`` returns the shift (dx, dy) in input px of the scene content
    from the previous frame to this one (0, 0 for the first frame). ``response`` is
    the height of the phase-correlation peak of the last shift and ``reliable`` says
    whether it reached ``MIN_RESPONSE``; an unreliable shift is returned as (0, 0).
    """

    _prev: np.ndarray | None = None
    _window: np.ndarray | None = None
    _factor: int = 1
    response: float = 1.0
    reliable: bool = True

    def update(self, image: np.ndarray) -> tuple[float, float]:
        """Shift of ``image`` (H, W) or (H, W, 3) against the previous one, input px."""
        h, w = image.shape[:2]
        self._factor = max(1, int(np.ceil(max(h, w) / _MOTION_SIDE)))
        # Bilinear shrink costs in proportion to the small image (area averaging would
        # read every input pixel); the band-pass below removes the aliasing it leaves.
        small = cv2.resize(
            image, (w // self._factor, h // self._factor), interpolation=cv2.INTER_LINEAR
        )
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        small = small.astype(np.float32)
        # Band-pass: drop the illumination fall-off (camera-fixed, it would pin the
        # shift to zero) and clip specular highlights (they move on their own).
        small = small - cv2.GaussianBlur(small, (0, 0), 6.0)
        small = cv2.GaussianBlur(small, (0, 0), 1.0)
        sd = float(small.std()) + 1e-6
        small = np.clip(small, -2.5 * sd, 2.5 * sd)
        if self._prev is None or self._prev.shape != small.shape:
            self.response, self.reliable = 1.0, True
            self._prev = small
            self._window = cv2.createHanningWindow((small.shape[1], small.shape[0]), cv2.CV_32F)
            return (0.0, 0.0)
        (dx, dy), resp = cv2.phaseCorrelate(self._prev, small, self._window)
        self._prev = small
        self.response = float(resp)
        self.reliable = self.response >= MIN_RESPONSE
        if not self.reliable:
            return (0.0, 0.0)
        return (float(dx) * self._factor, float(dy) * self._factor)


@dataclass
class LesionTracker:
    """Assign persistent ids to lesion detections.

    Parameters
    ----------
    gate_px : float
        Largest distance (input px), after motion compensation, at which a detection
        can continue a track; the gate also grows with the lesion radius.
    max_missed : int
        Frames a track survives without a matching detection.
    """

    gate_px: float = 25.0
    max_missed: int = 10
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def update(
        self, centroids: np.ndarray, radii: np.ndarray, shift_xy: tuple[float, float]
    ) -> list[int]:
        """Match this frame's detections to the tracks.

        Parameters
        ----------
        centroids : ndarray, (N, 2)
            Detection centroids (x, y), input px.
        radii : ndarray, (N,)
            Equivalent radii, input px.
        shift_xy : tuple of float
            Scene shift since the previous frame (dx, dy), input px.

        Returns
        -------
        list of int
            Track id of each detection.
        """
        centroids = np.asarray(centroids, float).reshape(-1, 2)
        for t in self._tracks:
            t.xy = t.xy + np.asarray(shift_xy, float)
        ids = [0] * len(centroids)
        matched: set[int] = set()
        if self._tracks and len(centroids):
            prev = np.array([t.xy for t in self._tracks])
            cost = np.linalg.norm(prev[:, None, :] - centroids[None, :, :], axis=2)
            gate = self.gate_px + 0.5 * np.maximum(
                np.array([t.radius for t in self._tracks])[:, None], np.asarray(radii)[None, :]
            )
            big = 1e6
            rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, big))
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] <= gate[r, c]:
                    track = self._tracks[r]
                    track.xy, track.radius, track.missed = centroids[c], float(radii[c]), 0
                    ids[c] = track.id
                    matched.add(r)
        for i, t in enumerate(self._tracks):
            if i not in matched:
                t.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for c, tid in enumerate(ids):
            if tid == 0:
                track = _Track(self._next_id, centroids[c].copy(), float(radii[c]))
                self._next_id += 1
                self._tracks.append(track)
                ids[c] = track.id
        return ids
