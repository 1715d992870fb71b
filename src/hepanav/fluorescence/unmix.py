"""Recover the fluorescence map from a vendor-style overlay video (colour unmixing).

Towers record the white-light image with the fluorescence blended in:
``O = W * (1 - a) + C * a``. For a **green** overlay (C = (0, 255, 0) in BGR) the unknown
white-light brightness cancels if the *hue* of the surrounding liver is known: with
``rho = W_G / W_R`` (estimated from nearby pixels without overlay),
``O_G - rho * O_R = 255 * a`` exactly, and likewise with the blue channel. Shading and
vignetting change brightness, not hue, so they drop out. For a **colour-mapped** overlay
(JET) the level is the one whose predicted blend ``W (1 - a(l)) + C(l) a(l)`` is nearest
to the observed colour, with W estimated from the surroundings.

The result is the displayed level (0-1), proportional to the NIR intensity the tower
showed above its threshold; it cannot recover signal below the tower's threshold or
above its saturation.
"""

from __future__ import annotations

import cv2
import numpy as np

OVERLAY_COLOURS = ("green", "jet")
_SPECULAR_MIN = 200  # all channels above this: a highlight, not an overlay
_CHROMA_TOLERANCE = 0.05  # chromaticity distance that still counts as liver colour


def _local_mean(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised Gaussian convolution: mean of ``values`` where ``weight`` is 1, (H, W)."""
    num = cv2.GaussianBlur(values * weight, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    fallback = float((values * weight).sum() / max(weight.sum(), 1.0))
    return np.where(den > 1e-3, num / np.maximum(den, 1e-6), fallback).astype(np.float32)


def unmix_overlay(
    frame: np.ndarray, colour: str = "green", alpha_max: float = 0.85, sigma_px: float | None = None
) -> np.ndarray:
    """Fluorescence level (0-1) of each pixel of a vendor overlay frame.

    Parameters
    ----------
    frame : ndarray, (H, W, 3) uint8
        Overlay frame, BGR.
    colour : str
        Overlay colour of the tower: ``green`` or ``jet``.
    alpha_max : float
        Opacity of the tower's overlay at full level (scales the result only).
    sigma_px : float, optional
        Scale (px) over which the liver hue is averaged; default 1/15 of the frame width.

    Returns
    -------
    ndarray, (H, W) float32
        Displayed fluorescence level, 0 (none) to 1 (full).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError("overlay frames must be 8-bit colour images")
    if colour not in OVERLAY_COLOURS:
        raise ValueError(f"overlay colour must be one of {OVERLAY_COLOURS}, not {colour!r}")
    sigma = sigma_px or max(frame.shape[1] / 15.0, 4.0)
    o = frame.astype(np.float32)
    specular = (frame.min(axis=2) > _SPECULAR_MIN).astype(np.float32)
    # First guess of the pixels without overlay: chromaticity close to the frame's median
    # (the overlay covers a minority of the frame and shifts the hue strongly).
    chroma = o / np.maximum(o.sum(axis=2, keepdims=True), 1.0)
    median = np.median(chroma[::4, ::4].reshape(-1, 3), axis=0)
    liver_like = (np.abs(chroma - median).max(axis=2) < _CHROMA_TOLERANCE).astype(np.float32)
    start = liver_like * (1.0 - specular)
    if colour == "green":
        level = _unmix_green(o, specular, start, sigma, alpha_max)
    else:
        level = _unmix_colour_map(o, specular, start, sigma, alpha_max, cv2.COLORMAP_JET)
    level[specular > 0] = 0.0
    return level


def _unmix_green(
    o: np.ndarray, specular: np.ndarray, start: np.ndarray, sigma: float, alpha_max: float
) -> np.ndarray:
    b, g, r = o[..., 0], o[..., 1], o[..., 2]
    keep = 1.0 - specular
    clean = start
    for _ in range(3):
        # Pixels with (almost) no overlay define the liver hue around each pixel.
        rho_r = _local_mean(g / np.maximum(r, 1.0), clean, sigma)
        rho_b = _local_mean(g / np.maximum(b, 1.0), clean, sigma)
        a_r = (g - rho_r * r) / 255.0
        a_b = (g - rho_b * b) / 255.0
        # Weight each estimate by the size of the channel it divides (less noise).
        w_r, w_b = r + 1.0, b + 1.0
        alpha = np.clip((a_r * w_r + a_b * w_b) / (w_r + w_b), 0.0, 1.0).astype(np.float32)
        clean = keep * (alpha < 0.02)
    return np.clip(alpha / alpha_max, 0.0, 1.0)


def _unmix_colour_map(
    o: np.ndarray,
    specular: np.ndarray,
    start: np.ndarray,
    sigma: float,
    alpha_max: float,
    cmap: int,
) -> np.ndarray:
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(-1, 1), cmap)
    colours = lut.reshape(256, 3).astype(np.float32)
    alphas = alpha_max * np.arange(256, dtype=np.float32) / 255.0
    keep = 1.0 - specular
    level = np.zeros(o.shape[:2], np.float32)
    clean = start
    for _ in range(2):
        white = np.dstack([_local_mean(o[..., c], clean, sigma) for c in range(3)])
        residual = np.linalg.norm(o - white, axis=2)
        todo = np.nonzero((residual > 6.0) & (keep > 0))
        level[:] = 0.0
        if todo[0].size == 0:
            break
        obs = o[todo]
        w = white[todo]
        best = np.zeros(obs.shape[0], np.float32)
        for i0 in range(0, obs.shape[0], 20000):
            ob, wb = obs[i0 : i0 + 20000], w[i0 : i0 + 20000]
            pred = (
                wb[:, None, :] * (1 - alphas[None, :, None]) + colours[None] * alphas[None, :, None]
            )
            err = ((pred - ob[:, None, :]) ** 2).sum(axis=2)
            best[i0 : i0 + 20000] = err.argmin(axis=1) / 255.0
        level[todo] = best
        clean = keep * (level < 0.02)
    return level
