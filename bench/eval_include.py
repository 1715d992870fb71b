"""``--include`` on lobulated lesions: Dice without and with a click on the missed lobe.

Each case is the union of two spheres (centres and radii in LPS mm, known by
construction) darkened by 45 HU (tumour) into the liver of a real scan (texture kept:
``HU - 45`` blended with a one-voxel partial-volume ramp), or painted at 60 HU into a
synthetic 105 HU liver block (noise 10 HU, 1 x 1 x 1.25 mm). The seed is the centre of
the larger sphere, the include point the centre of the smaller. Truth: the union at
the voxel centres. Also prints the refusal for a click on a separate sphere.

Run: ``HEPANAV_TEST_DATA=/work/shared/data .venv/bin/python -m bench.eval_include``
(docs/segmentation.md, "Include points").
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

DATA = Path(
    os.environ.get("HEPANAV_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _points(image: sitk.Image) -> np.ndarray:
    """LPS mm (z, y, x, 3) of every voxel centre of ``image``."""
    from hepanav.phantoms.grid import Grid

    grid = Grid.of(image)
    return grid.points(tuple(slice(0, n) for n in grid.shape))


def _deepest_liver_point(ct: sitk.Image, liver: np.ndarray) -> np.ndarray:
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(ct)
    depth = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(mask, insideIsPositive=True, useImageSpacing=True)
    )
    return _points(ct)[np.unravel_index(np.argmax(np.where(liver, depth, -1e9)), liver.shape)]


def real_case(name: str, spheres_offset) -> tuple[sitk.Image, np.ndarray, list]:
    """A two-sphere lesion implanted into the liver of the real scan ``name``."""
    from hepanav.imaging import read_image

    if name == "dicom":
        ct = read_image(DATA / "ct-abdomen-dicom" / "series")
        labels = sitk.ReadImage(str(DATA / "ct-abdomen-dicom" / "labels.nii.gz"))
        labels = sitk.Resample(labels, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        liver = sitk.GetArrayFromImage(labels) == 5
    else:
        ct = read_image(DATA / "ct-abdomen-3mm" / "ct.nii.gz")
        liver = sitk.GetArrayFromImage(
            sitk.ReadImage(str(DATA / "ct-abdomen-3mm" / "liver.nii.gz"))
        )
        liver = liver > 0
    centre = _deepest_liver_point(ct, liver)
    spheres = [(centre + np.asarray(o), r) for o, r in spheres_offset]
    return _implant(ct, sitk.GetArrayFromImage(ct).astype(np.float32), spheres, -45.0, False)


def block_case(spheres) -> tuple[sitk.Image, np.ndarray, list]:
    """A two-sphere 60 HU lesion in a synthetic 105 HU liver block inside a body."""
    from hepanav.phantoms.grid import Grid

    grid = Grid.centered(np.zeros(3), (1.0, 1.0, 1.25), (96, 96, 64))
    hu = (105.0 + np.random.default_rng(0).normal(0, 10.0, grid.shape)).astype(np.float32)
    _, y, x = np.indices(grid.shape)
    r = np.hypot(y - grid.shape[1] / 2, x - grid.shape[2] / 2)
    hu[r > 43] = -100.0
    hu[r > 46] = -1000.0
    spheres = [(np.asarray(c, float), rr) for c, rr in spheres]
    return _implant(grid.image(hu), hu, spheres, 60.0, True)


def _implant(ct, hu, spheres, value, absolute):
    p = _points(ct)
    sd = np.min([np.linalg.norm(p - c, axis=-1) - r for c, r in spheres], axis=0)
    f = np.clip(0.5 - sd, 0.0, 1.0).astype(np.float32)
    lesion = value if absolute else hu + value
    out = sitk.GetImageFromArray(np.rint(hu * (1 - f) + lesion * f).astype(np.int16))
    out.CopyInformation(ct)
    return out, sd <= 0, spheres


def _dice(a, b) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def run(name, ct, truth, seed, include, structure="tumor") -> None:
    from hepanav.core.errors import InputError
    from hepanav.segmentation import include as inc
    from hepanav.segmentation.pipeline import run_segmentation
    from hepanav.segmentation.seeds import make_seeds

    spent = []
    join = inc.join_includes

    def timed(*args):
        t = time.perf_counter()
        try:
            return join(*args)
        finally:
            spent.append(time.perf_counter() - t)

    inc.join_includes = timed
    t0 = time.perf_counter()
    try:
        seg = run_segmentation(
            structure,
            ct,
            make_seeds(ct, [tuple(seed)]),
            include=make_seeds(ct, [tuple(p) for p in include], option="--include"),
        )
    except InputError as err:
        print(f"{name:32s} refused: {err}")
        return
    finally:
        inc.join_includes = join
    mask = sitk.GetArrayFromImage(seg.mask) > 0
    joined = sum(o.joined_mm3 for o in seg.include_outcomes)
    print(
        f"{name:32s} Dice {_dice(mask, truth):.3f}  joined {joined:6.0f} mm^3  "
        f"{time.perf_counter() - t0:.1f} s (join {sum(spent):.1f} s)"
    )


def main() -> None:
    cases = [
        ("block 1 mm, r 10 + 8 at 16 mm", block_case([((-8, 0, 0), 10.0), ((8, 0, 0), 8.0)])),
        (
            "block, 3 lobes r 10/8/7",
            block_case([((-8, 0, 0), 10.0), ((8, 0, 0), 8.0), ((-8, 14, 0), 7.0)]),
        ),
    ]
    if (DATA / "ct-abdomen-dicom").is_dir():
        offsets = [((-7.0, 0.0, 0.0), 9.0), ((7.0, 4.0, 0.0), 7.0)]
        cases.append(("real DICOM 0.98x0.98x2, r 9 + 7", real_case("dicom", offsets)))
        offsets = [((-10.0, 0.0, 0.0), 13.0), ((10.0, 6.0, 0.0), 10.0)]
        cases.append(("real 3 mm, r 13 + 10", real_case("3mm", offsets)))
    for name, (ct, truth, spheres) in cases:
        run(name + ", seed only", ct, truth, spheres[0][0], [])
        run(name + ", + include", ct, truth, spheres[0][0], [c for c, _ in spheres[1:]])
    ct, _, spheres = block_case([((-8, 0, 0), 10.0), ((14, 0, 0), 8.0)])
    run("block, separate sphere 4 mm away", ct, None, spheres[0][0], [spheres[1][0]])


if __name__ == "__main__":
    main()
