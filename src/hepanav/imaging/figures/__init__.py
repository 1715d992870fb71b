"""The one figure toolkit of HepaNav (every capability draws its images with it).

- :mod:`planes`: planes in LPS space (native slices, axial/coronal/sagittal
  reformats, oblique needle views) and resampling onto them with SimpleITK.
- :mod:`orientation`: R/L, A/P, S/I letters from any direction.
- :mod:`draw`: slice views with orientation letters, scale bar, physical position
  (LPS mm) and DICOM instance number, window/level, contours, crosshairs, needle segments, legends.
- :mod:`palettes`: Okabe-Ito categories, viridis/cividis maps, fixed colour roles.
- :mod:`surface3d`: static (matplotlib) and interactive (self-contained HTML) 3D views.
- :mod:`views`: three planes through a point, fusion checkerboards.

See docs/figures.md.
"""

from hepanav.imaging.figures.draw import (
    LIVER_WINDOW,
    ScaleBar,
    add_orientation_letters,
    add_scale_bar,
    annotate_plane,
    draw_crosshair,
    draw_mask,
    draw_points,
    draw_segment,
    figure_legend,
    instance_label,
    legend,
    show_plane,
    slice_caption,
    slice_label,
)
from hepanav.imaging.figures.orientation import direction_letters, edge_letters
from hepanav.imaging.figures.palettes import CATEGORICAL, OKABE_ITO, ROLE, needle_colour
from hepanav.imaging.figures.planes import (
    STANDARD_VIEWS,
    AxialLevels,
    Plane,
    axial_levels,
    line_planes,
    locate_in_source,
    native_plane,
    plane_at,
    probe_eye_plane,
    resample_mask_to_plane,
    resample_to_plane,
    slice_view,
    standard_plane,
)
from hepanav.imaging.figures.surface3d import SurfaceLayer, interactive_html, static_figure
from hepanav.imaging.figures.views import checkerboard, three_planes

__all__ = [
    "CATEGORICAL",
    "LIVER_WINDOW",
    "OKABE_ITO",
    "ROLE",
    "STANDARD_VIEWS",
    "AxialLevels",
    "Plane",
    "ScaleBar",
    "SurfaceLayer",
    "add_orientation_letters",
    "add_scale_bar",
    "annotate_plane",
    "axial_levels",
    "checkerboard",
    "direction_letters",
    "draw_crosshair",
    "draw_mask",
    "draw_points",
    "draw_segment",
    "edge_letters",
    "figure_legend",
    "instance_label",
    "interactive_html",
    "legend",
    "line_planes",
    "locate_in_source",
    "native_plane",
    "needle_colour",
    "plane_at",
    "probe_eye_plane",
    "resample_mask_to_plane",
    "resample_to_plane",
    "show_plane",
    "slice_view",
    "slice_caption",
    "slice_label",
    "standard_plane",
    "static_figure",
    "three_planes",
]
