"""Planning structures derived from the CT itself, for a plan without a label map.

Classical thresholds and morphology (SimpleITK, SciPy), no model weights:

* **body outline**: :func:`hepanav.segmentation.body.body_mask` (above -500 HU, largest
  component, axial hole filling). It bounds the others: gas outside it is room air and
  dense voxels outside it are the table.
* **bone** (ribs, spine, sternum): above ``BONE_HU`` (cortical bone), closed by
  ``CORTEX_CLOSING_MM`` and filled slice by slice (the marrow it encloses), plus the
  voxels >= ``MARROW_HU`` within ``MARROW_MM`` of it (trabecular bone the cortex does not
  enclose); components under ``MIN_BONE_ML`` dropped (noise, calcifications). Split
  into **spine** (the bone within ``SPINE_HALF_WIDTH_MM`` of the body's left-right
  centre, posterior to the body's antero-posterior centre) and **ribs** (the rest).
* **lung and gas**: below ``GAS_HU`` inside the body and not connected to the air
  outside it (:func:`enclosed_gas`; lung bases and bowel gas: both are no-go, with the
  same 5 mm clearance in the default risk map), components under ``MIN_GAS_ML`` dropped.
* **costal cartilages** (:func:`costal_cartilage`): 100-300 HU (Gaussian 1 mm) in the
  anterior half of the body, connected to the ribs, away from liver, vessels and gas;
  when none is found they are listed as absent (red, ``NOT_FOUND``).
* **liver**: :func:`hepanav.segmentation.liver.segment_liver` from a click, or from a
  seed found next to the tumour (the parenchyma peak in a 6-20 mm shell around it);
  the tumour itself is liver.
* **large vessels** (contrast-enhanced CT only, liver >= ``ENHANCED_LIVER_HU``): above
  the liver by ``VESSEL_CONTRAST_HU`` and below ``BONE_HU`` (Gaussian 1 mm), away from
  bone, opened by 1.5 mm; inside the liver (grown by 3 mm) they are the portal and
  hepatic veins (id 200, heat sink), outside it, where they lie within
  ``CENTRAL_VESSEL_MM`` of the spine's left-right centre and in front of it, the large
  enhancing vessels (id 52): the aorta, and the vena cava only where it enhances as much
  (in arterial and early portal phase it is often no denser than the liver). The vena
  cava counts as derived (:func:`vena_cava_note`) only when, in at least half the axial
  slices with an aorta cross-section, a vessel cross-section of ``IVC_MIN_AREA_MM2``
  lies 15-50 mm right of the spine's centre (``IVC_RIGHT_MM``; the aorta lies on or
  left of the midline); else a note says it is NOT in the risk map. On an unenhanced CT no vessel is
  derived (said in the notes).

Ids are those of ``imaging/data/anatomy_labels.yaml`` (TotalSegmentator v2, 200 = the
HepaNav heat-sink vessel id), named "... (derived from the CT)" so that reports never
pass them off as a segmentation of that single structure.

HU limits: ``data/hu_windows.yaml`` and the module constants below; they are HepaNav
defaults chosen from the standard CT windows cited there (cortical bone >= 400 HU,
air/lung < -500 HU), not published thresholds of a validated method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.errors import InputError
from hepanav.segmentation.body import body_mask
from hepanav.segmentation.morphology import close_mm
from hepanav.segmentation.seeds import Seed

BONE_HU = 300.0  # cortical bone is >= 400 HU; 300 keeps thin ribs blurred by the voxel
MIN_BONE_ML = 0.2
CORTEX_CLOSING_MM = 3.0
MARROW_HU = 200.0  # trabecular bone 150-300 HU; above enhanced blood in portal phase
MARROW_MM = 3.0
SPINE_HALF_WIDTH_MM = 30.0
GAS_HU = -400.0
MIN_GAS_ML = 0.5
ENHANCED_LIVER_HU = 80.0  # unenhanced liver is 50-65 HU (hu_windows.yaml source)
VESSEL_CONTRAST_HU = 35.0
MIN_VESSEL_ML = 0.5
CENTRAL_VESSEL_MM = 50.0
IVC_RIGHT_MM = (15.0, 50.0)  # IVC centre ~20-35 mm right of the spine's; the aorta left
IVC_MIN_AREA_MM2 = 100.0  # a vessel cross-section of >= 100 mm^2 (aorta, IVC: 200-600)
IVC_MIN_SLICE_FRACTION = 0.5
TUMOUR_SHELL_MM = (6.0, 20.0)

SPINE_ID, RIBS_ID, LUNG_ID, LIVER_ID, CENTRAL_VESSEL_ID, LIVER_VESSEL_ID = 31, 97, 10, 5, 52, 200
CARTILAGE_ID = 117  # TotalSegmentator v2 costal_cartilages
IVC_ID, PORTAL_VEIN_ID = 63, 64  # TotalSegmentator v2 inferior_vena_cava, portal/splenic vein
#: The ids each kind of note is about (``DerivedAnatomy.note_ids``).
CENTRAL_IDS = (CENTRAL_VESSEL_ID, IVC_ID)
VESSEL_IDS = (CENTRAL_VESSEL_ID, IVC_ID, PORTAL_VEIN_ID, LIVER_VESSEL_ID)
CARTILAGE_HU = 100.0  # uncalcified costal cartilage 100-200 HU (phantom 140 HU)
CARTILAGE_EXCLUDE_MM = 2.0
NAMES = {
    SPINE_ID: "spine (derived from the CT)",
    RIBS_ID: "ribs and other bone (derived from the CT)",
    LUNG_ID: "lung and gas (derived from the CT)",
    LIVER_ID: "liver (derived from the CT)",
    CENTRAL_VESSEL_ID: "large enhancing vessels: aorta; vena cava only if enhancing "
    "(derived from the CT)",
    LIVER_VESSEL_ID: "portal and hepatic veins (derived from the CT)",
    CARTILAGE_ID: "costal cartilages (derived from the CT)",
}


@dataclass
class DerivedAnatomy:
    """Label map derived from a CT (uint16, the CT's grid) and what was derived how.

    Attributes
    ----------
    labels : SimpleITK.Image
        Ids of ``NAMES`` (TotalSegmentator v2 ids; 200 = portal/hepatic veins).
    names : dict of int to str
        Id -> readable name (each says "derived from the CT").
    derived : dict of str to str
        Structure -> how it was derived and its volume (ml), for plan.json and the report.
    body : SimpleITK.Image
        uint8 body outline on the CT grid.
    notes : list of str
        What could not be derived and why (e.g. vessels on an unenhanced CT).
    not_found : dict of int to str
        Ids of structures the derivation never finds although their group is derived
        (``NOT_FOUND``: the costal cartilages, softer than the bone threshold), with why.
    note_ids : dict of str to tuple of int
        Note -> the TotalSegmentator v2 ids it is about (the vena-cava note: 63), so that a
        caller filling only some groups of a given label map from the CT keeps only the
        notes about those groups; a note not listed concerns every group.
    """

    labels: sitk.Image
    names: dict[int, str]
    derived: dict[str, str]
    body: sitk.Image
    notes: list[str] = field(default_factory=list)
    not_found: dict[int, str] = field(default_factory=dict)
    note_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)


#: Structures of a derived group the derivation did not find (TotalSegmentator v2 id ->
#: why), listed as absent (red) instead of being passed off as covered by "bone": the
#: costal cartilages when no 100-300 HU tissue connected to the ribs is found.
NOT_FOUND = {
    117: "costal cartilages NOT derived: no tissue of 100-300 HU connected to the ribs in "
    "the anterior half of the body (uncalcified cartilage is 100-200 HU, below the bone "
    f"threshold of {BONE_HU:.0f} HU)",
}


def _ml(mask: np.ndarray, image: sitk.Image) -> float:
    return float(np.count_nonzero(mask)) * float(np.prod(image.GetSpacing())) / 1000.0


def _drop_small(mask: np.ndarray, image: sitk.Image, min_ml: float) -> np.ndarray:
    labelled, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labelled, np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes * float(np.prod(image.GetSpacing())) / 1000.0 >= min_ml
    return keep[labelled]


def _dilated(mask: np.ndarray, image: sitk.Image, radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``mask`` (ITK Maurer distance: every core, float32;
    SciPy's EDT would need gigabytes of index arrays on a 512 x 512 x 300 CT)."""
    from hepanav.segmentation.morphology import dilate_mm

    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.CopyInformation(image)
    return sitk.GetArrayFromImage(dilate_mm(img, radius_mm)) > 0


def _fill_axial(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for k in np.nonzero(mask.any(axis=(1, 2)))[0]:
        out[k] = ndimage.binary_fill_holes(mask[k])
    return out


def vena_cava_note(central: np.ndarray, left_mm: np.ndarray, image: sitk.Image) -> str | None:
    """None when the vena cava is among the derived large vessels, else the note saying
    it is not (see module: per axial slice, a cross-section >= ``IVC_MIN_AREA_MM2`` right
    of the spine in >= ``IVC_MIN_SLICE_FRACTION`` of the slices with the aorta's).

    ``central``: bool (z, y, x) derived large vessels; ``left_mm``: (x,) distance of each
    column from the spine's centre toward the patient's left, mm. Checked on the
    procedural phantom (IVC 149 HU, liver 105 HU: 90 of 127 aorta slices; the IVC set to
    liver HU: 5 of 127) and the real portal-venous DICOM scan (IVC 94 HU, liver 93 HU:
    0 of 20).
    """
    area = float(image.GetSpacing()[0] * image.GetSpacing()[1])
    lo, hi = IVC_RIGHT_MM
    right = central & ((left_mm <= -lo) & (left_mm >= -hi))[None, None, :]
    left = central & (left_mm > -5.0)[None, None, :]
    aorta_slices = left.sum(axis=(1, 2)) * area >= IVC_MIN_AREA_MM2
    both = aorta_slices & (right.sum(axis=(1, 2)) * area >= IVC_MIN_AREA_MM2)
    n, k = int(aorta_slices.sum()), int(both.sum())
    if n and k >= IVC_MIN_SLICE_FRACTION * n:
        return None
    return (
        f"vena cava NOT derived: a vessel >= liver + {VESSEL_CONTRAST_HU:.0f} HU right of the "
        f"spine in {k} of the {n} slices with the aorta (no denser than the liver in this "
        "contrast phase?): it is not in the risk map; check it on the CT or give a label map "
        "with it (--labels)"
    )


def bone_masks(ct_arr: np.ndarray, body: np.ndarray, image: sitk.Image):
    """(spine, ribs) bool arrays (z, y, x): bone split at the body's centre (see module)."""
    cortex = sitk.GetImageFromArray(((ct_arr >= BONE_HU) & body).astype(np.uint8))
    cortex.CopyInformation(image)
    # Close the cortex ring where partial volume opens it (thin rib cortex, 2-5 mm
    # slices), fill the marrow slice by slice, then add the trabecular bone the
    # threshold missed: >= MARROW_HU (Gaussian 0.7 mm) within MARROW_MM of that bone.
    bone = _fill_axial(sitk.GetArrayFromImage(close_mm(cortex, CORTEX_CLOSING_MM)) > 0)
    smooth = sitk.GetArrayFromImage(
        sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), 0.7)
    )
    bone |= _dilated(bone, image, MARROW_MM) & (smooth >= MARROW_HU) & body
    bone = _drop_small(bone, image, MIN_BONE_ML)
    idx = np.argwhere(body[:, :, :])
    if not len(idx) or not bone.any():
        return np.zeros_like(bone), bone
    sx, sy = image.GetSpacing()[0], image.GetSpacing()[1]
    centre_x = 0.5 * (idx[:, 2].min() + idx[:, 2].max())
    centre_y = 0.5 * (idx[:, 1].min() + idx[:, 1].max())
    x = (np.arange(ct_arr.shape[2]) - centre_x) * sx
    # Posterior is +y in LPS; the array's row axis follows the image direction.
    post_sign = np.sign(image.GetDirection()[4]) or 1.0
    y = (np.arange(ct_arr.shape[1]) - centre_y) * sy * post_sign
    band = (np.abs(x)[None, :] <= SPINE_HALF_WIDTH_MM) & (y[:, None] > 0)
    spine = bone & band[None]
    return spine, bone & ~spine


def enclosed_gas(ct_arr: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Gas (< ``GAS_HU``) inside the body outline and not connected (26-neighbourhood) to
    air outside it, bool (z, y, x). The body outline is made on a ~4 mm grid, so it holds
    a rim of room air along the skin: that rim touches the outside air, the lungs and
    bowel gas do not. (On the procedural phantom the rim was 69 ml of "lung and gas"
    within needle reach, at the skin where every needle enters.)"""
    air = sitk.GetImageFromArray((ct_arr < GAS_HU).astype(np.uint8))
    comp = sitk.GetArrayFromImage(sitk.ConnectedComponent(air, True))
    outside = np.unique(comp[(comp > 0) & ~body])
    return (comp > 0) & body & ~np.isin(comp, outside[outside > 0])


def anterior_half(body: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Bool (1, y, 1): rows anterior of the body's antero-posterior centre (LPS -y)."""
    idx = np.nonzero(body.any(axis=(0, 2)))[0]
    rows = np.arange(body.shape[1])
    if not len(idx):
        return np.zeros((1, body.shape[1], 1), bool)
    centre = 0.5 * (idx.min() + idx.max())
    post_sign = np.sign(image.GetDirection()[4]) or 1.0
    return ((rows - centre) * post_sign < 0)[None, :, None]


def costal_cartilage(
    smooth: np.ndarray, body: np.ndarray, ribs: np.ndarray, taken: np.ndarray, image
) -> np.ndarray:
    """Costal cartilage, bool (z, y, x): voxels of ``CARTILAGE_HU`` to ``BONE_HU``
    (``smooth``: CT after a 1 mm Gaussian) in the anterior half of the body, farther than
    ``CARTILAGE_EXCLUDE_MM`` from ``taken`` (liver, vessels, gas), 26-connected to the
    derived ribs (the cartilages continue the ribs' arcs to the sternum). Uncalcified
    cartilage is as dense as enhanced blood, so only the connection to the ribs tells
    it: tissue of that density touching the ribs in front (the heart behind the sternum)
    can join it, which errs toward no-go. Measured 2026-12-01 (docs/planning.md): on
    the procedural phantom (``hepanav phantom``, cartilage 140 HU) 86.5 % of the true
    cartilage found, 1.4 ml called cartilage outside it, all within 3 mm of true rib or
    cartilage (partial volume; none in liver, heart or muscle); on the real portal-venous
    DICOM slab 68.7 % found, 11.8 ml farther than 3 mm from true rib or cartilage
    (enhanced stomach wall and unlabelled tissue touching the ribs; none in the liver)."""
    cand = (smooth >= CARTILAGE_HU) & (smooth < BONE_HU) & body & anterior_half(body, image)
    cand &= ~_dilated(taken, image, CARTILAGE_EXCLUDE_MM) & ~ribs
    if not cand.any() or not ribs.any():
        return np.zeros_like(cand)
    comp = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray((cand | ribs).astype(np.uint8)), True)
    )
    keep = np.unique(comp[ribs])
    return cand & np.isin(comp, keep[keep > 0])


def tumour_liver_seed(ct: sitk.Image, tumor: sitk.Image) -> Seed:
    """A liver-parenchyma click next to the tumour: in a 6-20 mm shell around it, the
    voxel of the shell's HU mode (soft tissue 0-220 HU) nearest to the tumour.

    Raises
    ------
    InputError
        No soft tissue around the tumour (the tumour is not in an organ).
    """
    from hepanav.segmentation.grow import histogram_mode

    t = sitk.GetArrayFromImage(tumor) > 0
    box = ndimage.find_objects(t.astype(np.uint8))[0]
    spacing = np.asarray(ct.GetSpacing())[::-1]
    pad = np.ceil(TUMOUR_SHELL_MM[1] / spacing).astype(int) + 1
    lo = [int(max(0, s.start - p)) for s, p in zip(box, pad, strict=True)]
    hi = [int(min(n, s.stop + p)) for s, p, n in zip(box, pad, t.shape, strict=True)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    size_xyz = [b - a for a, b in zip(lo, hi, strict=True)][::-1]
    region = sitk.Cast(sitk.RegionOfInterest(ct, size_xyz, lo[::-1]), sitk.sitkFloat32)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(region, 1.5))
    dist = ndimage.distance_transform_edt(~t[crop], sampling=spacing)
    shell = (dist >= TUMOUR_SHELL_MM[0]) & (dist <= TUMOUR_SHELL_MM[1])
    values = smooth[shell]
    soft = (values > 0.0) & (values < 220.0)
    if soft.sum() < 50:
        raise InputError(
            "no liver parenchyma (0-220 HU) found around the tumour to derive the liver "
            "from; give --liver-seed X,Y,Z or --labels",
            "--tumor",
        )
    mode = histogram_mode(values[soft], 2.0)[0]
    near = shell & (np.abs(smooth - mode) <= 5.0)
    cand = np.argwhere(near)
    best = cand[np.argmin(dist[near])] + np.asarray(lo)
    k, j, i = (int(v) for v in best)
    lps = ct.TransformIndexToPhysicalPoint((i, j, k))
    return Seed(tuple(float(v) for v in lps), (i, j, k), "next to the tumour")


def derive_planning_labels(
    ct: sitk.Image,
    tumor: sitk.Image,
    liver_seed: Seed | None = None,
    *,
    liver: sitk.Image | None = None,
) -> DerivedAnatomy:
    """Body, bone (spine, ribs), lung/gas, liver and large vessels from the CT.

    Parameters
    ----------
    ct : SimpleITK.Image
        Planning CT, HU, any grid (LPS geometry used throughout).
    tumor : SimpleITK.Image
        Tumour mask on the CT grid (uint8 0/1); it is part of the liver.
    liver_seed : Seed, optional
        A click in liver parenchyma; default: found next to the tumour.
    liver : SimpleITK.Image, optional
        A liver mask on the CT grid (e.g. from a given label map that lacks other
        groups): used instead of segmenting the liver (no seed needed); its parenchyma
        HU (median outside the tumour) decides the contrast phase.

    Returns
    -------
    DerivedAnatomy

    Raises
    ------
    InputError
        The liver cannot be segmented from the seed (message of the liver segmenter);
        an oblique CT (more than 5 degrees off the patient axes).

    A coronal or sagittal CT (and the tumour on its grid) is permuted to axial array
    order (slice filling, left-right columns) and the labels and body permuted back onto
    its grid (exact: :mod:`hepanav.imaging.orient`).
    """
    from hepanav.imaging.orient import axial_order, to_input_order

    axial, code = axial_order(ct, "planning CT")
    if axial is ct:
        return _derive_axial(ct, tumor, liver_seed, liver)
    seed = None
    if liver_seed is not None:
        index = axial.TransformPhysicalPointToIndex(liver_seed.lps)
        seed = Seed(liver_seed.lps, tuple(int(v) for v in index), liver_seed.label)
    given = None if liver is None else axial_order(liver, "liver")[0]
    out = _derive_axial(axial, axial_order(tumor, "tumour")[0], seed, given)
    out.labels = to_input_order(out.labels, code, ct)
    out.body = to_input_order(out.body, code, ct)
    return out


def _derive_axial(
    ct: sitk.Image, tumor: sitk.Image, liver_seed: Seed | None, liver: sitk.Image | None
) -> DerivedAnatomy:
    """:func:`derive_planning_labels` on a CT whose array index k runs along S-I."""
    from hepanav.segmentation.liver import segment_liver

    arr = sitk.GetArrayFromImage(ct).astype(np.float32)
    body = sitk.GetArrayFromImage(body_mask(ct)) > 0
    spine, ribs = bone_masks(arr, body, ct)
    bone = spine | ribs
    gas = _drop_small(enclosed_gas(arr, body), ct, MIN_GAS_ML)
    tum = sitk.GetArrayFromImage(tumor) > 0
    if liver is None:
        seed = liver_seed or tumour_liver_seed(ct, tumor)
        liver_seg = segment_liver(ct, [seed])
        liver_how = f"liver segmenter from a click {seed.label}"
        liver = (sitk.GetArrayFromImage(liver_seg.mask) > 0) | tum
        liver_hu = float(liver_seg.parenchyma_hu or 0.0)
    else:
        liver_how = "the given label map's liver"
        liver = (sitk.GetArrayFromImage(liver) > 0) | tum
        parenchyma = arr[liver & ~tum]
        liver_hu = float(np.median(parenchyma)) if parenchyma.size else 0.0
    notes: list[str] = []
    note_ids: dict[str, tuple[int, ...]] = {}
    central = np.zeros_like(liver)
    inner = np.zeros_like(liver)
    if liver_hu >= ENHANCED_LIVER_HU:
        smooth = sitk.GetArrayFromImage(
            sitk.SmoothingRecursiveGaussian(sitk.Cast(ct, sitk.sitkFloat32), 1.0)
        )
        near_bone = _dilated(bone, ct, 2.0)
        vessel = (smooth >= liver_hu + VESSEL_CONTRAST_HU) & (smooth < BONE_HU) & body
        vessel &= ~near_bone & ~tum
        vessel_img = sitk.GetImageFromArray(vessel.astype(np.uint8))
        vessel_img.CopyInformation(ct)
        from hepanav.segmentation.morphology import open_mm

        vessel = sitk.GetArrayFromImage(open_mm(vessel_img, 1.5)) > 0
        vessel = _drop_small(vessel, ct, MIN_VESSEL_ML)
        in_liver = _dilated(liver, ct, 3.0)
        inner = vessel & in_liver
        outside = vessel & ~in_liver
        if spine.any():
            xs = np.nonzero(spine.any(axis=(0, 1)))[0]
            cx = 0.5 * (xs.min() + xs.max())
            x_mm = (np.arange(arr.shape[2]) - cx) * ct.GetSpacing()[0]
            central = outside & (np.abs(x_mm) <= CENTRAL_VESSEL_MM)[None, None, :]
            central = _drop_small(central, ct, MIN_VESSEL_ML)
            note = vena_cava_note(central, x_mm * np.sign(ct.GetDirection()[0] or 1.0), ct)
            if note:
                notes.append(note)
                note_ids[note] = (IVC_ID,)
        else:
            notes.append("no spine found: aorta and vena cava not derived")
            note_ids[notes[-1]] = CENTRAL_IDS
    else:
        notes.append(
            f"unenhanced CT (liver {liver_hu:.0f} HU < {ENHANCED_LIVER_HU:.0f}): large "
            "vessels cannot be told from the liver by attenuation and were not derived"
        )
        note_ids[notes[-1]] = VESSEL_IDS
    smooth1 = sitk.GetArrayFromImage(
        sitk.SmoothingRecursiveGaussian(sitk.Cast(ct, sitk.sitkFloat32), 1.0)
    )
    cartilage = costal_cartilage(smooth1, body, ribs, liver | inner | gas | central, ct)
    cartilage = _drop_small(cartilage, ct, MIN_BONE_ML)
    not_found = {} if cartilage.any() else dict(NOT_FOUND)
    labels = np.zeros(arr.shape, np.uint16)
    # Later writes win: liver < its vessels < gas < central vessels < cartilage < bone.
    for mask, label in (
        (liver, LIVER_ID),
        (inner, LIVER_VESSEL_ID),
        (gas & ~liver, LUNG_ID),
        (central, CENTRAL_VESSEL_ID),
        (cartilage, CARTILAGE_ID),
        (ribs, RIBS_ID),
        (spine, SPINE_ID),
    ):
        labels[mask] = label
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    body_img = sitk.GetImageFromArray(body.astype(np.uint8))
    body_img.CopyInformation(ct)
    derived = {
        "body outline": f"above -500 HU, largest component, holes filled ({_ml(body, ct):.0f} ml)",
        "spine": f">= {BONE_HU:.0f} HU + marrow, central posterior ({_ml(spine, ct):.0f} ml)",
        "ribs": f">= {BONE_HU:.0f} HU + marrow, the other bone ({_ml(ribs, ct):.0f} ml)",
        "lung and gas": f"< {GAS_HU:.0f} HU inside the body, not open to the outside air "
        f"({_ml(gas & ~liver, ct):.0f} ml)",
        "liver": f"{liver_how} ({_ml(liver, ct):.0f} ml)",
    }
    if inner.any():
        derived["portal and hepatic veins"] = (
            f">= liver + {VESSEL_CONTRAST_HU:.0f} HU inside the liver ({_ml(inner, ct):.0f} ml)"
        )
    if central.any():
        derived["large enhancing vessels (aorta; vena cava only if enhancing)"] = (
            f">= liver + {VESSEL_CONTRAST_HU:.0f} HU beside the spine ({_ml(central, ct):.0f} ml)"
        )
    if cartilage.any():
        derived["costal cartilages"] = (
            f"{CARTILAGE_HU:.0f}-{BONE_HU:.0f} HU connected to the ribs, anterior half "
            f"({_ml(cartilage, ct):.0f} ml)"
        )
    else:
        notes.append(NOT_FOUND[CARTILAGE_ID])
        note_ids[notes[-1]] = (CARTILAGE_ID,)
    return DerivedAnatomy(image, dict(NAMES), derived, body_img, notes, not_found, note_ids)
