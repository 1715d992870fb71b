"""DICOM in and out for ``hepanav margin`` and ``hepanav plan``: --from-pacs, --dicom-out, --send.

The commands call :class:`DicomIO` around their normal pipeline: ``--from-pacs``
fetches the study into a temporary folder and turns the named RTSTRUCT ROIs / SEG
segments into masks with the normal readers; after the run, ``--dicom-out`` /
``--send`` write the result's DICOM objects and store them back.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from hepanav.core.errors import InputError

_RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
_SEG = "1.2.840.10008.5.1.4.1.1.66.4"


def object_names(path: Path) -> list[str]:
    """ROI names of an RTSTRUCT or segment labels of a SEG (empty for other objects).

    HepaNav's own margin and plan result SEGs (results sent back earlier,
    :func:`own_result`) are not inputs: empty. A SEG written by ``hepanav segment`` is.
    """
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return [] if own_result(ds) else _names(ds)


def _names(ds) -> list[str]:
    if ds.SOPClassUID == _RTSTRUCT:
        return [str(r.ROIName) for r in ds.get("StructureSetROISequence", [])]
    if ds.SOPClassUID == _SEG:
        return [str(s.SegmentLabel) for s in ds.get("SegmentSequence", [])]
    return []


def own_result(ds) -> str | None:
    """'margin result' or 'plan result' for a SEG ``hepanav dicom export``/``--send`` wrote
    from a margin or plan result; None for anything else (an RTSTRUCT, a SEG of another
    program, a SEG of ``hepanav segment``).

    A result SEG is HepaNav's (Manufacturer ``hepanav.imaging.dicomout.seg.MANUFACTURER``)
    with the Series Description the export gives it, or with a segment ``hepanav
    segment`` never writes (its SEGs hold one segment: Tumour, Ablation zone or Liver,
    :data:`hepanav.segmentation.pipeline.SEG_SEGMENTS`), so that a result whose
    description was changed on the way is still one. Results are not inputs: a margin
    result's *Ablation zone* would be a second object holding the name, and a plan's
    planned zones are not an ablation zone.
    """
    from hepanav.dicom.margin_objects import SEG_DESCRIPTION as MARGIN_SEG
    from hepanav.dicom.plan_objects import SEG_DESCRIPTION as PLAN_SEG
    from hepanav.dicom.plan_objects import TARGET_LABEL
    from hepanav.imaging.dicomout.seg import MANUFACTURER
    from hepanav.segmentation.pipeline import SEG_SEGMENTS

    if ds.SOPClassUID != _SEG or ds.get("Manufacturer") != MANUFACTURER:
        return None
    description = str(ds.get("SeriesDescription", ""))
    labels = _names(ds)
    if description == PLAN_SEG or TARGET_LABEL in labels:
        return "plan result"
    segment_labels = {label for label, _, _ in SEG_SEGMENTS.values()}
    if description == MARGIN_SEG or not set(labels) <= segment_labels:
        return "margin result"
    return None


@dataclass
class DicomIO:
    """State of one command's DICOM input/output (temporary study folder, options)."""

    from_pacs: str | None
    dicom_out: Path | None
    send: bool
    ct_folder: Path | None = None
    source: Path | None = None
    pre_source: Path | None = None
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _objects: list[Path] = field(default_factory=list, repr=False)
    converted: dict[str, dict] = field(default_factory=dict)
    converted_pre: dict[str, dict] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    from_pacs_post: str | None = None
    pre_study: FetchedStudy | None = None
    source_notes: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        from_pacs: str | None,
        dicom_out: Path | None,
        send: bool,
        source: Path | None = None,
        pre_source: Path | None = None,
        from_pacs_post: str | None = None,
    ) -> DicomIO:
        """Check the options and fetch the study (or the pre and post studies).

        ``source`` is the CT (DICOM folder) the result will lie on, when not fetched;
        ``pre_source`` the pre-procedure CT of a pre/post pair (registration objects).
        With ``from_pacs_post`` (margin pair mode), ``from_pacs`` is the pre-procedure
        study and ``from_pacs_post`` the post-ablation study; both are resolved and their
        CT series chosen before either is retrieved. The result lies on the post CT.
        Everything that can be refused is refused here, before the pipeline runs.
        """
        io = cls(from_pacs, dicom_out, send, source=source, pre_source=pre_source)
        io.from_pacs_post = from_pacs_post
        if from_pacs_post and not from_pacs:
            raise InputError(
                "needs --from-pacs PRE_KEY (the pre-procedure study)", "--from-pacs-post"
            )
        if from_pacs_post and from_pacs_post.strip() == from_pacs.strip():
            raise InputError(
                "names the same study and series as --from-pacs; when pre and post CT are "
                "series of one study, give KEY/SERIES_UID for each",
                "--from-pacs-post",
            )
        if (dicom_out or send) and not from_pacs and (source is None or not Path(source).is_dir()):
            raise InputError(
                "DICOM output needs the post CT the result lies on as a DICOM series folder "
                "(--post, or --from-pacs); for masks in one space run "
                "'hepanav dicom export RESULT --source CT_FOLDER' afterwards",
                "--dicom-out" if dicom_out else "--send",
            )
        if (dicom_out or send) and not from_pacs:
            # The DICOM objects reference this series: check it now (UIDs, frame of
            # reference), not after minutes of registration.
            from hepanav.imaging.dicomout.source import read_source_series

            # UIDs an anonymiser emptied are recovered or derived there: said with the
            # objects written (finish), never silently.
            io.source_notes += read_source_series(Path(source)).notes
            if pre_source is not None and Path(pre_source).is_dir():
                io.source_notes += [
                    f"pre CT: {n}" for n in read_source_series(Path(pre_source)).notes
                ]
        if send or from_pacs:
            from hepanav.dicom.settings import load_settings

            load_settings()  # a bad or missing PACS setting fails before any work
        if from_pacs:
            from hepanav.dicom.pacs import open_pacs

            pacs = open_pacs()
            if from_pacs_post:
                pre = _choose_ct(pacs, from_pacs, "--from-pacs")
                post = _choose_ct(pacs, from_pacs_post, "--from-pacs-post")
                if pre.ct.series_uid == post.ct.series_uid:
                    raise InputError(
                        f"pre and post name the same CT series {post.ct.series_uid}",
                        "--from-pacs-post",
                    )
                io._tmp = tempfile.TemporaryDirectory(prefix="hepanav-pacs-")
                io.pre_study = pre.fetch(pacs, Path(io._tmp.name) / "pre")
                post_study = post.fetch(pacs, Path(io._tmp.name) / "post")
                io.pre_source = io.pre_study.ct_folder
            else:
                chosen = _choose_ct(pacs, from_pacs, "--from-pacs")
                io._tmp = tempfile.TemporaryDirectory(prefix="hepanav-pacs-")
                post_study = chosen.fetch(pacs, Path(io._tmp.name))
            io.ct_folder = post_study.ct_folder
            io._objects = post_study.objects
            io.provenance = {**post_study.provenance, "converted_to_nifti_on_the_ct": io.converted}
            if io.pre_study is not None:
                io.provenance["pre"] = {
                    **io.pre_study.provenance,
                    "converted_to_nifti_on_the_ct": io.converted_pre,
                }
        return io

    @property
    def active(self) -> bool:
        return bool(self.from_pacs or self.dicom_out or self.send)

    @staticmethod
    def refuse_pair_mode(*paths) -> None:
        """``--from-pacs`` alone reads masks on the study's one CT; a pair needs
        ``--from-pacs-post`` as well."""
        if any(p is not None for p in paths):
            raise InputError(
                "alone reads masks in one space (the study's CT); for a pre/post pair "
                "give --from-pacs PRE_KEY --from-pacs-post POST_KEY",
                "--from-pacs",
            )

    @staticmethod
    def refuse_with_pair_from_pacs(**given) -> None:
        """Options the PACS pair mode takes from the fetched studies (or the names)."""
        for option, value in given.items():
            if value:
                raise InputError(
                    "does not apply with --from-pacs/--from-pacs-post: the CTs are the "
                    "studies' CT series (KEY/SERIES_UID picks one) and --tumor, --ablation, "
                    "--liver-pre, --liver-post name RTSTRUCT ROIs or SEG segments",
                    option,
                )

    def object_with(self, name: str, option: str, side: str = "post") -> Path:
        """The fetched RTSTRUCT or SEG file holding the ROI / segment called ``name``.

        ``side`` 'pre' searches the pre-procedure study (pair mode), 'post' the study
        the result lies on.

        Raises
        ------
        InputError
            No such ROI or segment (the names present are listed), or it is in several.
        """
        objects = self.pre_study.objects if side == "pre" else self._objects
        where = {"pre": "pre-procedure study", "post": "study"}[side]
        if self.from_pacs_post and side == "post":
            where = "post-ablation study"
        holders = [p for p in objects if name in object_names(p)]
        if not holders:
            present = ", ".join(sorted({n for p in objects for n in object_names(p)}))
            skipped = _results_skipped(objects)
            if skipped:
                present = f"{present}; {skipped}" if present else skipped
            raise InputError(
                f"no ROI or segment named {name!r} in the {where} (present: {present or 'none'})",
                option,
            )
        if len(holders) > 1:
            raise InputError(f"{len(holders)} objects in the {where} hold {name!r}", option)
        return holders[0]

    def mask_from_study(
        self, name: str, role: str, option: str, side: str = "post"
    ) -> tuple[Path, str | None]:
        """(file, label) for the normal mask readers: the fetched SEG or RTSTRUCT and the
        segment / ROI name, so the result's input records name the DICOM object.

        The grid-defining mask of the one-space mode (``role`` 'ablation', read without
        a reference image) is read on the study's CT here and passed as a NIfTI mask
        (label None): an RTSTRUCT needs a grid, and a sparse SEG read alone would give a
        grid cut at its first and last frames (the zone would touch the image border).
        In the pair mode (``--from-pacs-post``) the readers get each mask with its own
        CT as reference, so only the liver masks are converted (role 'liver'): the one
        ``--liver-label`` option cannot name two objects with different names.
        Converted objects are named in ``dicom_sources.json``.
        """
        from hepanav.imaging import read_dicom_series, write_image
        from hepanav.imaging.masks import read_mask

        path = self.object_with(name, option, side)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        convert = role == "liver" if self.from_pacs_post else role == "ablation"
        if not convert:
            return path, name
        converted = self.converted_pre if side == "pre" else self.converted
        converted[role] = {
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "series_instance_uid": str(ds.SeriesInstanceUID),
            "modality": str(ds.Modality),
            "segment": name,
        }
        ct_folder = self.pre_study.ct_folder if side == "pre" else self.ct_folder
        ct = read_dicom_series(ct_folder)
        mask = read_mask(path, reference=ct, labels=name)
        return write_image(mask, Path(self._tmp.name) / f"{role}_{side}.nii.gz"), None

    def finish(self, result_dir: Path) -> list[str]:
        """Write the DICOM objects (``--dicom-out`` or a temporary folder) and ``--send`` them.

        Returns lines for the user (written files, stored count). The temporary
        study folder is removed.
        """
        from hepanav.dicom.export import export_result, write_sources

        lines: list[str] = []
        try:
            source = self.ct_folder or self.source
            if self.from_pacs is not None:
                # Where the inputs came from: UIDs only (no patient attributes, no paths
                # of the temporary folder).
                write_sources(result_dir, None, None, pacs=self.provenance)
            if not (self.dicom_out or self.send):
                return lines
            if self.from_pacs is None:
                write_sources(result_dir, source, self.pre_source)
            out = self.dicom_out or Path(self._ensure_tmp()) / "out"
            # The registration objects need the pre CT as a DICOM series; a pre CT given
            # as a file (NIfTI) has none: SEG, SR and SC only (it once failed here, after
            # the result was written, with SEG/SR half-written into --dicom-out).
            pre = self.pre_source
            pre = pre if pre is not None and Path(pre).is_dir() else None
            written = export_result(result_dir, out, source, pre)
            if self.dicom_out:
                lines += [f"wrote {p}" for p in written]
            lines += [f"note: {n}" for n in self.source_notes]
            if self.send:
                from hepanav.dicom.pacs import open_pacs

                stored = open_pacs().store(written)
                lines.append(f"stored {len(stored)} DICOM object(s) in the PACS")
            return lines
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def _ensure_tmp(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hepanav-dicom-")
        return self._tmp.name


def _results_skipped(objects: list[Path]) -> str:
    """The HepaNav result SEGs among ``objects`` (:func:`own_result`) with their segments
    and why they are not used, for the "present:" part of an error; '' when none."""
    skipped = []
    for path in objects:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        kind = own_result(ds)
        if kind:
            skipped.append(f"a HepaNav {kind} SEG with segments {', '.join(_names(ds))}")
    if not skipped:
        return ""
    return (
        f"{'; '.join(skipped)}, not used: HepaNav's own margin and plan results are not "
        "inputs (a SEG of 'hepanav segment' is)"
    )


def referenced_series(path: Path) -> set[str]:
    """Series Instance UIDs an RTSTRUCT or SEG says it was drawn on (empty when unsaid)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    found = {str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])}
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                found.add(str(series.SeriesInstanceUID))
    return found


@dataclass
class FetchedStudy:
    """One fetched study: its chosen CT folder, candidate mask objects, provenance (UIDs)."""

    ct_folder: Path
    objects: list[Path]
    provenance: dict


@dataclass
class ChosenCT:
    """A study resolved on the PACS and its CT series chosen (nothing retrieved yet)."""

    key: str
    study_uid: str
    ct: object  # hepanav.dicom.pacs.SeriesInfo
    other_cts: set[str]
    masks: list[str]
    option: str = "--from-pacs"  # where the user gave the key (named in errors)

    def fetch(self, pacs, folder: Path) -> FetchedStudy:
        """Retrieve the CT and the SEG/RTSTRUCT series into ``folder``.

        Objects that reference another CT series of the study (and not this one) are
        left out: they belong to the other image (pre and post as series of one study).
        """
        from hepanav.dicom.fetch import fetch_study

        fetched = fetch_study(
            self.study_uid, folder, [self.ct.series_uid, *self.masks], pacs=pacs, option=self.option
        )
        ct = next(f for f in fetched if f.info.series_uid == self.ct.series_uid)
        objects = []
        for f in fetched:
            if f.info.series_uid not in self.masks:
                continue
            for p in f.files:
                refs = referenced_series(p)
                if self.ct.series_uid in refs or not refs & self.other_cts:
                    objects.append(p)
        provenance = {
            "query": "study" if self.key == self.study_uid else "accession",
            "study_instance_uid": self.study_uid,
            "ct_series_instance_uid": ct.info.series_uid,
            "ct_series_description": ct.info.description,
        }
        return FetchedStudy(ct.folder, objects, provenance)


def _choose_ct(pacs, spec: str, option: str) -> ChosenCT:
    """Resolve ``KEY[/CT_SERIES_UID]`` and choose the study's one CT series (QIDO/C-FIND only).

    Raises
    ------
    InputError
        No such study, no CT series, several CT series without a choice.
    """
    key, _, wanted_ct = spec.partition("/")
    study_uid = pacs.resolve_study(key, option)
    listed = pacs.find_series(study_uid)
    all_cts = [s for s in listed if s.modality == "CT"]
    cts = all_cts
    if wanted_ct:
        cts = [s for s in cts if s.series_uid == wanted_ct]
        if not cts:
            raise InputError(f"the study has no CT series {wanted_ct}", option)
    if not cts:
        found = ", ".join(sorted({s.modality for s in listed})) or "nothing"
        raise InputError(f"the study holds no CT series (found {found})", option)
    if len(cts) > 1:
        raise InputError(
            f"the study holds {len(cts)} CT series "
            f"({', '.join(s.series_uid for s in cts)}); choose one with "
            f"{option} KEY/SERIES_UID",
            option,
        )
    masks = [s.series_uid for s in listed if s.modality in ("SEG", "RTSTRUCT")]
    others = {s.series_uid for s in all_cts} - {cts[0].series_uid}
    return ChosenCT(key, study_uid, cts[0], others, masks, option)
