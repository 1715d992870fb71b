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

    SEGs HepaNav wrote itself (results sent back earlier) are not inputs: empty.
    """
    from hepanav.imaging.dicomout.seg import MANUFACTURER

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if ds.get("Manufacturer") == MANUFACTURER:
        return []
    if ds.SOPClassUID == _RTSTRUCT:
        return [str(r.ROIName) for r in ds.get("StructureSetROISequence", [])]
    if ds.SOPClassUID == _SEG:
        return [str(s.SegmentLabel) for s in ds.get("SegmentSequence", [])]
    return []


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
    provenance: dict = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        from_pacs: str | None,
        dicom_out: Path | None,
        send: bool,
        source: Path | None = None,
        pre_source: Path | None = None,
    ) -> DicomIO:
        """Check the options and fetch the study when ``from_pacs`` is given.

        ``source`` is the CT (DICOM folder) the result will lie on, when not fetched;
        ``pre_source`` the pre-procedure CT of a pre/post pair (registration objects).
        Everything that can be refused is refused here, before the pipeline runs.
        """
        io = cls(from_pacs, dicom_out, send, source=source, pre_source=pre_source)
        if (dicom_out or send) and not from_pacs and (source is None or not Path(source).is_dir()):
            raise InputError(
                "DICOM output needs the CT the result lies on as a DICOM series folder "
                "(--post or --ct, or --from-pacs); for masks in one space run "
                "'hepanav dicom export RESULT --source CT_FOLDER' afterwards",
                "--dicom-out" if dicom_out else "--send",
            )
        if send or from_pacs:
            from hepanav.dicom.settings import load_settings

            load_settings()  # a bad or missing PACS setting fails before any work
        if from_pacs:
            from hepanav.dicom.fetch import fetch_study
            from hepanav.dicom.pacs import open_pacs

            key, _, wanted_ct = from_pacs.partition("/")
            pacs = open_pacs()
            study_uid = pacs.resolve_study(key)
            listed = pacs.find_series(study_uid)
            cts = [s for s in listed if s.modality == "CT"]
            if wanted_ct:
                cts = [s for s in cts if s.series_uid == wanted_ct]
                if not cts:
                    raise InputError(f"the study has no CT series {wanted_ct}", "--from-pacs")
            if not cts:
                found = ", ".join(sorted({s.modality for s in listed})) or "nothing"
                raise InputError(f"the study holds no CT series (found {found})", "--from-pacs")
            if len(cts) > 1:
                raise InputError(
                    f"the study holds {len(cts)} CT series "
                    f"({', '.join(s.series_uid for s in cts)}); choose one with "
                    "--from-pacs KEY/SERIES_UID",
                    "--from-pacs",
                )
            masks = [s.series_uid for s in listed if s.modality in ("SEG", "RTSTRUCT")]
            io._tmp = tempfile.TemporaryDirectory(prefix="hepanav-pacs-")
            fetched = fetch_study(
                study_uid, Path(io._tmp.name), [cts[0].series_uid, *masks], pacs=pacs
            )
            ct = next(f for f in fetched if f.info.series_uid == cts[0].series_uid)
            io.ct_folder = ct.folder
            io.provenance = {
                "query": "study" if key == study_uid else "accession",
                "study_instance_uid": study_uid,
                "ct_series_instance_uid": ct.info.series_uid,
                "ct_series_description": ct.info.description,
                "converted_to_nifti_on_the_ct": io.converted,
            }
            io._objects = [p for f in fetched if f.info.series_uid in masks for p in f.files]
        return io

    @property
    def active(self) -> bool:
        return bool(self.from_pacs or self.dicom_out or self.send)

    @staticmethod
    def refuse_pair_mode(*paths) -> None:
        """``--from-pacs`` reads masks on the study's one CT; pre/post pairs are not fetched."""
        if any(p is not None for p in paths):
            raise InputError(
                "masks in one space only (the study's CT); for a pre/post pair fetch the "
                "series with 'hepanav pacs get' and give them as folders",
                "--from-pacs",
            )

    def object_with(self, name: str, option: str) -> Path:
        """The fetched RTSTRUCT or SEG file holding the ROI / segment called ``name``.

        Raises
        ------
        InputError
            No such ROI or segment (the names present are listed), or it is in several.
        """
        holders = [p for p in self._objects if name in object_names(p)]
        if not holders:
            present = sorted({n for p in self._objects for n in object_names(p)})
            raise InputError(
                f"no ROI or segment named {name!r} in the study (present: "
                f"{', '.join(present) or 'none'})",
                option,
            )
        if len(holders) > 1:
            raise InputError(f"{len(holders)} objects in the study hold {name!r}", option)
        return holders[0]

    def mask_from_study(self, name: str, role: str, option: str) -> tuple[Path, str | None]:
        """(file, label) for the normal mask readers: the fetched SEG or RTSTRUCT and the
        segment / ROI name, so the result's input records name the DICOM object.

        The grid-defining mask of the one-space mode (``role`` 'ablation', read without
        a reference image) is read on the study's CT here and passed as a NIfTI mask
        (label None): an RTSTRUCT needs a grid, and a sparse SEG read alone would give a
        grid cut at its first and last frames (the zone would touch the image border).
        Its DICOM object is named in ``dicom_sources.json``.
        """
        from hepanav.imaging import read_dicom_series, write_image
        from hepanav.imaging.masks import read_mask

        path = self.object_with(name, option)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if role != "ablation":
            return path, name
        self.converted[role] = {
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "series_instance_uid": str(ds.SeriesInstanceUID),
            "modality": str(ds.Modality),
            "segment": name,
        }
        ct = read_dicom_series(self.ct_folder)
        mask = read_mask(path, reference=ct, labels=name)
        return write_image(mask, Path(self._tmp.name) / f"{role}.nii.gz"), None

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
            written = export_result(result_dir, out, source, self.pre_source)
            if self.dicom_out:
                lines += [f"wrote {p}" for p in written]
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
