"""Planes in physical space and resampling onto them (SimpleITK), for slice views.

A :class:`Plane` is a 2D pixel grid placed in LPS space: pixel (row, col) sits at
``origin + col * col_mm * right + row * row_mm * down``. Every view (native slice of
a series, axial/coronal/sagittal reformat, oblique needle view) is a Plane, and
images are resampled onto it in physical space with ``sitk.Resample`` (never by
array index), so any direction matrix of the source, oblique included, is handled.

Display conventions (radiological, as on a PACS): axial seen from the feet
(patient's right on the screen's left, anterior up); coronal seen from the front
(right on the left, superior up); sagittal seen from the patient's right
(anterior on the left, superior up).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

#: (screen-right, screen-down) unit vectors in LPS of the standard views.
STANDARD_VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass
class Plane:
    """A 2D pixel grid in LPS space (mm).

    Attributes
    ----------
    origin : ndarray, shape (3,)
        LPS position of the centre of pixel (row 0, col 0), mm.
    right, down : ndarray, shape (3,)
        Orthonormal LPS unit vectors along increasing column and increasing row.
    shape : tuple (rows, cols)
    pixel_mm : tuple (row_mm, col_mm)
        Pixel size along ``down`` and ``right``, mm.
    name : str
        Shown in titles ("axial", "along needle 2", ...).
    source_slice : int or None
        1-based slice number of the source series nearest the plane centre (along
        the source's third index axis, whatever plane its slices lie in).
    table_mm : float or None
        Table position: the LPS z (S+) of the plane centre in the source series'
        patient coordinates, mm.
    source_view : str or None
        The plane the source's slices lie in (:func:`slice_view`: "axial", "coronal",
        "sagittal" or "oblique").
    source_parallel : bool
        The plane is parallel to the source's slices (a slice of the series, or a
        plane between two): only then is ``source_slice`` "the slice shown".
    source_instance : int or None
        DICOM Instance Number (0020,0013) of that nearest source slice, as the PACS
        shows it, when the source was read from a DICOM series and its slices kept as
        they are (:func:`hepanav.imaging.dicom_series.instance_numbers`); else None.
    source_on_slice : bool
        The plane is parallel to the source's slices and its centre lies on the centre
        of that slice (within 0.05 slice spacings): the plane is that slice.
    """

    origin: np.ndarray
    right: np.ndarray
    down: np.ndarray
    shape: tuple[int, int]
    pixel_mm: tuple[float, float]
    name: str = ""
    source_slice: int | None = None
    source_slices: int | None = None
    table_mm: float | None = None
    notes: list[str] = field(default_factory=list)
    source_view: str | None = None
    source_parallel: bool = False
    source_instance: int | None = None
    source_on_slice: bool = False

    @property
    def normal(self) -> np.ndarray:
        """Unit normal ``right x down`` (points away from the viewer)."""
        return np.cross(self.right, self.down)

    @property
    def centre(self) -> np.ndarray:
        """LPS position of the plane centre, mm."""
        rows, cols = self.shape
        return self.pixel_to_lps(np.array([[(cols - 1) / 2.0, (rows - 1) / 2.0]]))[0]

    @property
    def extent_mm(self) -> tuple[float, float]:
        """(height, width) of the plane, mm, pixel edge to pixel edge."""
        return self.shape[0] * self.pixel_mm[0], self.shape[1] * self.pixel_mm[1]

    def pixel_to_lps(self, colrow: np.ndarray) -> np.ndarray:
        """Continuous (col, row) pixel positions, shape (N, 2), to LPS mm, shape (N, 3)."""
        cr = np.atleast_2d(np.asarray(colrow, dtype=float))
        return (
            self.origin
            + cr[:, :1] * self.pixel_mm[1] * self.right
            + cr[:, 1:2] * self.pixel_mm[0] * self.down
        )

    def lps_to_pixel(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LPS points (N, 3) -> (col_row (N, 2) continuous pixels, signed distance (N,) mm).

        The distance is along :attr:`normal`; a point lies in the plane when it is ~0.
        """
        rel = np.atleast_2d(np.asarray(points, dtype=float)) - self.origin
        col = rel @ self.right / self.pixel_mm[1]
        row = rel @ self.down / self.pixel_mm[0]
        return np.stack([col, row], axis=1), rel @ self.normal

    def reference(self) -> sitk.Image:
        """A one-voxel-thick SimpleITK image with this plane's geometry (for Resample)."""
        rows, cols = self.shape
        ref = sitk.Image([int(cols), int(rows), 1], sitk.sitkFloat32)
        ref.SetSpacing([float(self.pixel_mm[1]), float(self.pixel_mm[0]), 1.0])
        ref.SetOrigin([float(v) for v in self.origin])
        direction = np.column_stack([self.right, self.down, self.normal])
        ref.SetDirection([float(v) for v in direction.ravel()])
        return ref


def _orthonormal(right, down) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(right, dtype=float)
    r = r / np.linalg.norm(r)
    d = np.asarray(down, dtype=float)
    d = d - (d @ r) * r
    n = np.linalg.norm(d)
    if n < 1e-6:
        raise ValueError("plane directions are parallel")
    return r, d / n


def plane_at(
    centre,
    right,
    down,
    size_mm: tuple[float, float],
    pixel_mm: float,
    *,
    name: str = "",
    source: sitk.Image | None = None,
) -> Plane:
    """A plane of ``size_mm`` = (height, width) centred on ``centre`` (LPS mm).

    ``down`` is made orthogonal to ``right``. With ``source``, the plane records
    the source series' slice number nearest its centre and the table position.
    """
    r, d = _orthonormal(right, down)
    rows = max(2, int(round(size_mm[0] / pixel_mm)))
    cols = max(2, int(round(size_mm[1] / pixel_mm)))
    c = np.asarray(centre, dtype=float)
    origin = c - (cols - 1) / 2.0 * pixel_mm * r - (rows - 1) / 2.0 * pixel_mm * d
    plane = Plane(origin, r, d, (rows, cols), (pixel_mm, pixel_mm), name=name)
    if source is not None:
        locate_in_source(plane, source)
    return plane


#: |cos| above which two directions count as parallel (0.8 degrees).
_PARALLEL = 0.9999


def slice_normal(source: sitk.Image) -> np.ndarray:
    """Unit LPS normal of ``source``'s slices: its third direction column."""
    direction = np.asarray(source.GetDirection(), dtype=float).reshape(3, 3)
    return direction[:, 2] / np.linalg.norm(direction[:, 2])


def slice_view(source: sitk.Image) -> str:
    """The plane ``source``'s slices (third index axis) lie in: "axial" (slice normal
    along LPS z), "coronal" (y), "sagittal" (x), within 0.8 degrees, else "oblique".
    A NIfTI/DICOM stack of coronal or sagittal slices is not axial: its slice numbers
    are not positions along the table."""
    n = np.abs(slice_normal(source))
    for axis, name in ((2, "axial"), (1, "coronal"), (0, "sagittal")):
        if n[axis] > _PARALLEL:
            return name
    return "oblique"


#: A plane centre within this fraction of the slice spacing from a slice centre is on it.
_ON_SLICE = 0.05


def _source_instance(source: sitk.Image, k: int) -> int | None:
    """DICOM Instance Number of slice ``k`` (0-based) of ``source``, when known."""
    from hepanav.imaging.dicom_series import instance_numbers

    numbers = instance_numbers(source)
    return numbers[k] if numbers is not None else None


def locate_in_source(plane: Plane, source: sitk.Image) -> Plane:
    """Record the slice number (1-based, along the source's third index axis) nearest
    the plane centre and its DICOM Instance Number when known, the table position (LPS z
    of the centre), the plane the source's slices lie in and whether this plane is
    parallel to them (and on that slice)."""
    centre = plane.centre
    k = source.TransformPhysicalPointToContinuousIndex([float(v) for v in centre])[2]
    n = source.GetSize()[2]
    nearest = int(np.clip(round(k), 0, n - 1))
    plane.source_slice = nearest + 1
    plane.source_slices = int(n)
    plane.source_instance = _source_instance(source, nearest)
    plane.table_mm = float(centre[2])
    plane.source_view = slice_view(source)
    plane.source_parallel = bool(abs(float(plane.normal @ slice_normal(source))) > _PARALLEL)
    plane.source_on_slice = plane.source_parallel and abs(k - nearest) <= _ON_SLICE
    return plane


@dataclass
class AxialLevels:
    """The axial planes through a mask: one per sampling level of the source along
    the table (LPS z).

    Attributes
    ----------
    z_mm : list of float
        Table positions (LPS z, mm), ascending, of every level the mask's voxels lie on.
    slices : list of int or None
        For a source with axial slices, the 0-based source slice of each level (its
        centre is at ``z_mm``); None when the source's slices are not axial (the
        planes are then reformats between its voxels, not its slices).
    step_mm : float
        Distance between neighbouring levels: the source's sampling along z, mm.
    view : str
        :func:`slice_view` of the source.
    """

    z_mm: list[float]
    slices: list[int] | None
    step_mm: float
    view: str


def axial_levels(mask: sitk.Image, source: sitk.Image | None = None) -> AxialLevels:
    """The axial levels (table z, mm) that the non-zero voxels of ``mask`` lie on.

    ``source`` (default: ``mask`` itself; the mask must lie on its grid) gives the
    sampling. Axial slices (:func:`slice_view`): every source slice the mask touches,
    at its centre's z. Coronal, sagittal or oblique slices: the LPS z of every mask
    voxel centre, snapped to the source's sampling along z (the smallest non-zero
    ``|direction[2, a]| * spacing[a]`` over the index axes ``a``); for a coronal or
    sagittal stack these are exactly the z of its rows. Empty mask: no levels.
    """
    source = mask if source is None else source
    view = slice_view(source)
    arr = sitk.GetArrayViewFromImage(mask)
    direction = np.asarray(source.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(source.GetSpacing(), dtype=float)
    if view == "axial":
        ks = np.nonzero(arr.reshape(arr.shape[0], -1).any(axis=1))[0]
        nx, ny, _ = source.GetSize()
        mid = ((nx - 1) / 2, (ny - 1) / 2)
        zs = [float(source.TransformContinuousIndexToPhysicalPoint((*mid, int(k)))[2]) for k in ks]
        order = np.argsort(zs)
        return AxialLevels(
            [zs[i] for i in order], [int(ks[i]) for i in order], float(spacing[2]), view
        )
    dz = np.abs(direction[2, :]) * spacing
    step = float(dz[dz > 1e-6].min())
    kji = np.argwhere(arr > 0)
    if kji.size == 0:
        return AxialLevels([], None, step, view)
    a = direction * spacing
    z = kji[:, ::-1].astype(float) @ a[2, :] + float(source.GetOrigin()[2])
    z0 = float(z.min())
    m = np.unique(np.rint((z - z0) / step).astype(int))
    return AxialLevels([z0 + float(v) * step for v in m], None, step, view)


def standard_plane(
    source: sitk.Image,
    view: str,
    centre,
    *,
    size_mm: float | tuple[float, float] | None = None,
    pixel_mm: float | None = None,
) -> Plane:
    """Axial, coronal or sagittal reformat through ``centre`` (LPS mm) of ``source``.

    ``size_mm`` defaults to the source's physical extent along the two screen axes;
    ``pixel_mm`` to the finest source spacing. Works for any direction matrix.
    """
    from hepanav.imaging.geometry import physical_extent

    if view not in STANDARD_VIEWS:
        raise ValueError(f"view must be one of {sorted(STANDARD_VIEWS)}, got {view!r}")
    right, down = (np.asarray(v) for v in STANDARD_VIEWS[view])
    lo, hi = physical_extent(source)
    if size_mm is None:
        span = hi - lo
        size = (float(np.abs(down) @ span), float(np.abs(right) @ span))
    elif np.isscalar(size_mm):
        size = (float(size_mm), float(size_mm))
    else:
        size = (float(size_mm[0]), float(size_mm[1]))
    px = float(pixel_mm or min(source.GetSpacing()))
    c = np.asarray(centre, dtype=float)
    if size_mm is None:  # centre the in-plane axes on the volume, keep the through-plane point
        mid = (lo + hi) / 2.0
        normal = np.cross(right, down)
        c = mid + ((c - mid) @ normal) * normal
    return plane_at(c, right, down, size, px, name=view, source=source)


def native_plane(source: sitk.Image, slice_index: int) -> Plane:
    """Slice ``slice_index`` (0-based, third index axis) of ``source`` as stored.

    Columns run along the first direction column, rows along the second, at the
    source's spacing; no reorientation, so the orientation letters show how the
    series itself is stored (a flipped direction gives mirrored letters).
    """
    nx, ny, nz = source.GetSize()
    if not 0 <= slice_index < nz:
        raise ValueError(f"slice {slice_index} outside 0..{nz - 1}")
    direction = np.asarray(source.GetDirection(), dtype=float).reshape(3, 3)
    sx, sy, _ = source.GetSpacing()
    origin = np.asarray(source.TransformIndexToPhysicalPoint([0, 0, int(slice_index)]))
    plane = Plane(origin, direction[:, 0], direction[:, 1], (ny, nx), (sy, sx), name="native")
    plane.source_slice = int(slice_index) + 1
    plane.source_slices = int(nz)
    plane.source_instance = _source_instance(source, int(slice_index))
    plane.table_mm = float(plane.centre[2])
    plane.source_view = slice_view(source)
    plane.source_parallel = plane.source_on_slice = True
    return plane


def line_planes(
    entry,
    tip,
    *,
    beyond_mm: float = 20.0,
    width_mm: float = 80.0,
    pixel_mm: float = 0.7,
    source: sitk.Image | None = None,
) -> tuple[Plane, Plane]:
    """Two planes containing the line entry -> tip (a needle), at right angles.

    The line runs left to right on the screen, entry on the left. The first plane
    ("in-plane") contains the line and the patient's z axis projected off it (for a
    needle close to the axial plane this is the plane a CT-fluoroscopy operator
    tilts the gantry into, seen from the side); the second ("orthogonal") is turned
    by 90 degrees about the line. Each covers the line plus ``beyond_mm`` past the
    tip and before the entry, and ``width_mm`` across.
    """
    e, t = np.asarray(entry, dtype=float), np.asarray(tip, dtype=float)
    axis = t - e
    length = float(np.linalg.norm(axis))
    if length == 0:
        raise ValueError("entry and tip coincide")
    u = axis / length
    # the screen-down direction: patient inferior made orthogonal to the needle,
    # or posterior for a needle running craniocaudally
    hint = np.array([0.0, 0.0, -1.0]) if abs(u[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    down1 = hint - (hint @ u) * u
    down1 /= np.linalg.norm(down1)
    down2 = np.cross(u, down1)
    # keep the second view's down pointing posterior or inferior (a stable choice)
    if down2 @ np.array([0.0, 1.0, -1.0]) < 0:
        down2 = -down2
    centre = (e + t) / 2.0
    size = (width_mm, length + 2 * beyond_mm)
    p1 = plane_at(centre, u, down1, size, pixel_mm, name="along the needle, view 1", source=source)
    p2 = plane_at(centre, u, down2, size, pixel_mm, name="along the needle, view 2", source=source)
    return p1, p2


def probe_eye_plane(
    point,
    direction,
    *,
    size_mm: float = 70.0,
    pixel_mm: float = 0.5,
    source: sitk.Image | None = None,
    name: str = "probe's eye",
) -> Plane:
    """The plane through ``point`` perpendicular to ``direction``, seen looking along it.

    The viewer looks from the entry towards the tip (the normal of the plane is the
    needle direction). Screen-right is the patient's left (or posterior) projected
    onto the plane, so the view turns with the needle as little as possible.
    """
    u = np.asarray(direction, dtype=float)
    u = u / np.linalg.norm(u)
    hint = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    right = hint - (hint @ u) * u
    right /= np.linalg.norm(right)
    down = np.cross(u, right)  # right x down = u: looking along the needle
    return plane_at(point, right, down, (size_mm, size_mm), pixel_mm, name=name, source=source)


def resample_to_plane(
    image: sitk.Image,
    plane: Plane,
    *,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
    transform: sitk.Transform | None = None,
) -> np.ndarray:
    """Resample ``image`` onto ``plane`` in physical space; array of shape (rows, cols).

    ``transform`` maps plane (output) points to ``image`` points (ITK convention),
    e.g. a registration transform to show a moved image. Use
    ``sitk.sitkNearestNeighbor`` for label maps.
    """
    out = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32),
        plane.reference(),
        transform or sitk.Transform(),
        interpolator,
        float(default_value),
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(out)[0]


def resample_mask_to_plane(
    mask: sitk.Image, plane: Plane, transform: sitk.Transform | None = None
) -> np.ndarray:
    """A binary mask on ``plane`` as float fractions in [0, 1] (contour at 0.5)."""
    return resample_to_plane(sitk.Cast(mask > 0, sitk.sitkFloat32), plane, transform=transform)
