"""Seed points: parsing ``X,Y,Z`` (LPS mm) or ``I,J,K`` (voxel) and checking where they fall.

A seed the segmentation cannot use (outside the image, outside the body, in air or
bone) is refused with :class:`hepanav.core.InputError` naming the seed and what was
found there, before anything is grown or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import lps_to_voxel, voxel_to_lps
from hepanav.segmentation.windows import hu_windows


@dataclass(frozen=True)
class Seed:
    """A seed in LPS mm with its nearest voxel (i, j, k) and how the user gave it;
    ``moved`` says why and how far it was moved from the click (empty: not moved)."""

    lps: tuple[float, float, float]
    index: tuple[int, int, int]
    label: str
    moved: str = ""

    def describe(self) -> str:
        """``seed (x, y, z) mm`` as the error messages name it (``seed moved 6.0 mm off
        gas (-420 HU) to (x, y, z) mm`` for a moved seed)."""
        where = f"({', '.join(f'{v:.1f}' for v in self.lps)}) mm"
        return f"{self.label} {self.moved} to {where}" if self.moved else f"{self.label} {where}"

    def at(self, index: tuple[int, int, int]) -> Seed:
        """The same seed with another voxel index (same LPS point, label and move)."""
        return replace(self, index=tuple(int(v) for v in index))

    @property
    def noun(self) -> str:
        """``"seed"`` for a ``--seed``-like option, ``"point"`` for ``--include`` /
        ``--exclude`` (what the messages call it)."""
        return point_noun(self.label.split()[0])


def point_noun(option: str) -> str:
    """What the messages call a point given with ``option``: ``"seed"`` for the seed
    options (``--seed``, ``--tumor-seed``, ...), ``"point"`` for the others
    (``--include``, ``--exclude``)."""
    return "seed" if "seed" in option else "point"


def parse_triplet(text: str, option: str, integer: bool = False) -> tuple[float, float, float]:
    """Parse ``"a,b,c"`` into three finite numbers (integers with ``integer``).

    Raises ``InputError`` naming ``option`` for anything else.
    """
    parts = [p.strip() for p in str(text).split(",")]
    kind = "integers I,J,K" if integer else "numbers X,Y,Z in mm"
    if len(parts) != 3:
        raise InputError(f"expected three comma-separated {kind}, got {text!r}", option)
    try:
        values = [int(p) if integer else float(p) for p in parts]
    except ValueError:
        raise InputError(f"expected three comma-separated {kind}, got {text!r}", option) from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"coordinates must be finite, got {text!r}", option)
    return tuple(values)  # type: ignore[return-value]


def make_seeds(
    image: sitk.Image,
    lps: list[str] | list[tuple[float, float, float]] | None = None,
    voxels: list[str] | list[tuple[int, int, int]] | None = None,
    option: str = "--seed",
) -> list[Seed]:
    """Seeds from LPS points and/or voxel indices, each checked to lie inside ``image``.

    Parameters
    ----------
    image : SimpleITK.Image
        The CT the seeds refer to.
    lps : list of "X,Y,Z" strings or 3-tuples, optional
        Points in LPS mm.
    voxels : list of "I,J,K" strings or 3-tuples, optional
        Voxel indices (x, y, z order, 0-based, as ITK and 3D Slicer's IJK).
    option : str
        The option name used in error messages (``--seed``, ``--include``, ...).

    Raises
    ------
    InputError
        A malformed seed or one outside the image.
    """
    size = np.asarray(image.GetSize())
    seeds: list[Seed] = []
    for raw in lps or []:
        point = parse_triplet(raw, option) if isinstance(raw, str) else tuple(map(float, raw))
        cont = lps_to_voxel(image, np.asarray([point]))[0]
        index = np.rint(cont).astype(int)
        label = f"{option} {','.join(f'{v:g}' for v in point)}"
        if np.any(index < 0) or np.any(index >= size):
            raise InputError(
                f"{point_noun(option)} ({', '.join(f'{v:.1f}' for v in point)}) mm is outside "
                "the image "
                f"(voxel {tuple(int(v) for v in index)}, image size {tuple(int(s) for s in size)})",
                option,
            )
        seeds.append(Seed(tuple(float(v) for v in point), tuple(int(v) for v in index), label))
    vox_option = option + "-voxel" if option == "--seed" else option
    for raw in voxels or []:
        index = parse_triplet(raw, vox_option, integer=True) if isinstance(raw, str) else raw
        index = np.asarray(index, int)
        if np.any(index < 0) or np.any(index >= size):
            raise InputError(
                f"voxel {tuple(int(v) for v in index)} is outside the image "
                f"(size {tuple(int(s) for s in size)})",
                vox_option,
            )
        point = voxel_to_lps(image, index[None].astype(float))[0]
        seeds.append(
            Seed(
                tuple(float(v) for v in point),
                tuple(int(v) for v in index),
                f"{vox_option} {','.join(str(int(v)) for v in index)}",
            )
        )
    return seeds


def local_hu(image: sitk.Image, seed: Seed, radius_mm: float = 2.0) -> tuple[float, float]:
    """Median and robust SD (1.4826 x MAD) of the HU within ``radius_mm`` of a seed."""
    spacing = np.asarray(image.GetSpacing())
    r = np.ceil(radius_mm / spacing).astype(int)
    size = np.asarray(image.GetSize())
    lo = np.maximum(np.asarray(seed.index) - r, 0)
    hi = np.minimum(np.asarray(seed.index) + r + 1, size)
    block = sitk.GetArrayViewFromImage(image)[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
    k, j, i = np.meshgrid(
        *(np.arange(lo[a], hi[a]) - seed.index[a] for a in (2, 1, 0)), indexing="ij"
    )
    d2 = (i * spacing[0]) ** 2 + (j * spacing[1]) ** 2 + (k * spacing[2]) ** 2
    values = np.asarray(block, float)[d2 <= radius_mm**2 + 1e-9]
    med = float(np.median(values))
    return med, float(1.4826 * np.median(np.abs(values - med)))


def check_tissue(image: sitk.Image, seed: Seed, what: str) -> float:
    """Refuse a seed in air/lung or bone; return the median HU around it (2 mm).

    Raises
    ------
    InputError
        Naming the seed, the HU found and why it cannot be ``what``.
    """
    win = hu_windows()
    hu, _ = local_hu(image, seed)
    if hu < win["air_below_hu"]:
        raise InputError(
            f"{seed.noun} is in air or lung ({hu:.0f} HU around it), outside the body or its "
            "organs; "
            f"it cannot be the {what}",
            seed.describe(),
        )
    if hu > win["bone_above_hu"]:
        raise InputError(
            f"{seed.noun} is in bone or metal ({hu:.0f} HU around it); it cannot be the {what}",
            seed.describe(),
        )
    return hu


def checked_seeds(
    image: sitk.Image,
    seeds: list[Seed],
    include: list[Seed] | None,
    exclude: list[Seed] | None,
    what: str,
) -> tuple[list[Seed], list[Seed], list[Seed]]:
    """The common preamble of every segmenter: lists normalised, each seed and include
    point checked with :func:`check_tissue` (exclude points may lie anywhere).

    Returns ``(seeds, include, exclude)`` as lists. Raises ``InputError`` naming the
    first seed in air/lung or bone, or an exclude point within one voxel (every index
    differing by at most 1) of a seed or include point: it cannot be in and out at once.
    """
    include, exclude = list(include or []), list(exclude or [])
    for x in exclude:
        for s in list(seeds) + include:
            if max(abs(a - b) for a, b in zip(x.index, s.index, strict=True)) <= 1:
                raise InputError(
                    f"{x.label} coincides with {s.label} (within one voxel): a point cannot "
                    f"be both in and out of the {what}; move the exclude point off the {what}"
                )
    for s in list(seeds) + include:
        check_tissue(image, s, what)
    return list(seeds), include, exclude
