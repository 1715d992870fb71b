"""Research export: PS3.15 Basic Application Level Confidentiality Profile with the Retain
Longitudinal Temporal Information with Modified Dates Option and the Clean Structured
Content Option (SR content trees are cleaned by the same table, not emptied).

dicognito does the replacing, keyed by a secret: UIDs are replaced consistently (the
same original UID gives the same pseudonym in every file and reference, so a study
stays a study and a SEG still points at its CT), names and IDs get dummies, and all
dates and times are shifted by one key-derived offset (intervals are kept). Then
the Basic Profile table (PS3.15 Table E.1-1, ``data/basic_profile.yaml``) is
enforced attribute by attribute: X removed, Z/D attributes dicognito left unchanged
emptied, private attributes removed. The original -> pseudonym mapping of the
patient and study identifiers goes to a separate CSV (it re-identifies: keep it
apart from the export).
"""

from __future__ import annotations

import csv
import os
import re
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import pydicom
import yaml
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from hepanav.core.atomic import atomic_path
from hepanav.core.errors import InputError

# PS3.16 CID 7050 De-identification Method: Basic Application Confidentiality Profile,
# Retain Longitudinal Temporal Information Modified Dates Option.
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113104", "Clean Structured Content Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
# Sequences cleaned item by item instead of emptied: the SR content tree (Clean
# Structured Content Option), whose numbers and codes are what a research export is for.
CLEANED_SEQUENCES = ("ContentSequence",)
_TEMPORAL = ("DA", "DT", "TM")
MAPPED = ("PatientID", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class ProfileRule:
    """One row of Table E.1-1: tag pattern, basic action, modified-dates option action."""

    group: str
    element: str
    keyword: str
    basic: str
    modified_dates: str | None

    def matches(self, tag: int) -> bool:
        text = f"{tag:08X}"
        pattern = (self.group + self.element).upper()
        return all(p in ("X", c) for p, c in zip(pattern, text, strict=True))

    @property
    def action(self) -> str:
        """The action with the option applied: 'C' (keep shifted) or the basic action."""
        return self.modified_dates or self.basic


@cache
def profile_rules() -> tuple[ProfileRule, ...]:
    """Table E.1-1 rules with a concrete or repeating-group tag (private row handled apart)."""
    text = resources.files("hepanav.dicom").joinpath("data/basic_profile.yaml").read_text()
    rules = []
    for row in yaml.safe_load(text):
        if not re.fullmatch(r"[0-9A-FX]{4},[0-9A-FX]{4}", row["tag"]):
            continue  # the "private attributes" row: remove_private_tags()
        group, element = row["tag"].split(",")
        rules.append(
            ProfileRule(
                group, element, row["keyword"], row["basic"], row["retain_long_modified_dates"]
            )
        )
    return tuple(rules)


@cache
def _exact_rules() -> dict[int, ProfileRule]:
    return {
        int(r.group + r.element, 16): r for r in profile_rules() if "X" not in r.group + r.element
    }


def rule_for(tag: int) -> ProfileRule | None:
    """The Table E.1-1 rule for ``tag``, or None when the table does not list it."""
    exact = _exact_rules().get(tag)
    if exact is not None:
        return exact
    for rule in profile_rules():
        if "X" in rule.group + rule.element and rule.matches(tag):
            return rule
    return None


def _keyed_uid(key: str, uid: str) -> str:
    """A UID derived from ``uid`` and the secret key (same input, same pseudonym)."""
    return pydicom.uid.generate_uid(prefix="2.25.", entropy_srcs=[key, uid])


_TEXT_VRS = ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT")


def _dummy(vr: str, key: str, value):
    """A dummy of the right VR (PS3.15 action D), or None when there is none to give."""
    if vr in _TEXT_VRS:
        return "ANONYMIZED"
    if vr == "UI":
        return _keyed_uid(key, str(value))
    if vr in ("IS", "DS"):
        return "0"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD"):
        return 0
    return None


def enforce_profile(ds: Dataset, original: Dataset, key: str) -> None:
    """Apply the table to ``ds`` (already through dicognito), recursing into sequences.

    ``original`` is the same dataset before dicognito, to see what it left unchanged;
    ``key`` derives replacement UIDs for the ones dicognito left.
    """
    ds.remove_private_tags()
    for elem in list(ds):
        rule = rule_for(elem.tag)
        before = original.get(elem.tag) if original is not None else None
        if elem.VR == "SQ":
            action = rule.action if rule is not None else "K"
            if action in ("X", "X/D"):
                del ds[elem.tag]
                continue
            if action in ("X/Z", "X/Z/D", "Z", "Z/D", "D") and (
                rule.keyword not in CLEANED_SEQUENCES
            ):
                # Zero-length keeps a Type 2 sequence present (IOD still valid); for D
                # an empty sequence is the conservative dummy.
                elem.value = Sequence([])
                continue
            # Kept and cleaned: sequences the table does not list, references whose
            # UIDs dicognito replaced (X/Z/U*: Referenced/Source Image Sequence) and,
            # with the Clean Structured Content Option, an SR's Content Sequence.
            originals = before.value if before is not None and before.VR == "SQ" else []
            for i, item in enumerate(elem.value):
                enforce_profile(item, originals[i] if i < len(originals) else None, key)
            continue
        if rule is None or rule.action == "K":
            continue  # not listed, or kept
        action = rule.action
        unchanged = before is not None and elem.value == before.value
        if action == "U":  # dicognito replaces most UIDs; the ones it leaves: keyed hash
            if unchanged and elem.value:
                elem.value = _keyed_uid(key, str(elem.value))
            continue
        if action == "C":  # modified dates: dicognito shifted DA/DT/TM; others emptied
            if unchanged and elem.value not in (None, "", b""):
                elem.value = None
            continue
        if action == "X":
            del ds[elem.tag]
        elif elem.VR in _TEMPORAL:
            # A shifted date is not a dummy outside the retained (C) dates: the birth
            # date would keep the age. Zero-length, or removed where Z is not allowed.
            if "Z" in action:
                elem.value = None
            else:
                del ds[elem.tag]
        elif unchanged and elem.value not in (None, "", b""):
            # dicognito left it: a dummy where D is allowed (keeps Type 1 attributes
            # such as Device Serial Number present), else zero-length (Z, X/Z).
            dummy = _dummy(elem.VR, key, elem.value) if "D" in action else None
            if dummy is not None:
                elem.value = dummy
            elif "Z" in action:
                elem.value = None
            else:
                del ds[elem.tag]  # X/D without a dummy for this VR


def _mark(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    # LO: at most 64 characters; the options are in the code sequence below.
    ds.DeidentificationMethod = "HepaNav: PS3.15 Basic Profile and options (see codes)"
    items = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def read_or_create_key(path: Path) -> str:
    """The secret key in ``path`` (created with 256 random bits, mode 0600, when missing)."""
    if path.exists():
        key = path.read_text().strip()
        if len(key) < 32:
            raise InputError("key file holds fewer than 32 characters", path)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


@dataclass
class Summary:
    """What one pseudonymisation did (counts only: no identifiers)."""

    files: int
    skipped: int


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def pseudonymise_tree(src: Path, dst: Path, key_file: Path, mapping: Path) -> Summary:
    """Pseudonymise every DICOM file under ``src`` into ``dst`` (same relative layout).

    Raises
    ------
    InputError
        Missing input, ``dst`` already existing, key or mapping inside ``dst`` (they
        would ship with the export), a short key.
    """
    from dicognito.anonymizer import Anonymizer

    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError("file or folder does not exist", src)
    if dst.exists():
        raise InputError("output folder exists; give a new one", dst)
    for name, path in (("--key-file", key_file), ("--mapping", mapping)):
        if _inside(Path(path), dst) or (src.is_dir() and _inside(Path(path), src)):
            raise InputError("must not lie inside the input or output folder", name)
    key = read_or_create_key(Path(key_file))
    anonymizer = Anonymizer(seed=key)
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    pairs: dict[tuple[str, str], str] = {}
    from hepanav.core.atomic import output_folder

    # One set (hepanav.core.atomic.output_folder): the files go into a temporary sibling,
    # flushed, listed in a manifest and renamed onto dst last -- after the mapping, so dst
    # never exists without the mapping that re-identifies it. A full disk or a kill leaves
    # no dst and no temporary (the next run removes a killed run's).
    with output_folder(dst, "hepanav dicom pseudonymise") as tmp:
        written, skipped = _write_all(files, src, tmp, anonymizer, pairs, key)
        if not written:
            raise InputError("no DICOM file found", src)
        with atomic_path(Path(mapping), suffix=".csv") as out:
            with open(out, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["attribute", "original", "pseudonym"])
                for (keyword, value), pseudo in sorted(pairs.items()):
                    writer.writerow([keyword, value, pseudo])
            os.chmod(out, 0o600)
    return Summary(written, skipped)


def _write_all(files, src, tmp, anonymizer, pairs, key) -> tuple[int, int]:
    import copy

    written = skipped = 0
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except (pydicom.errors.InvalidDicomError, OSError):
            skipped += 1
            continue
        original = copy.deepcopy(ds)
        anonymizer.anonymize(ds)
        enforce_profile(ds, original, key)
        _mark(ds)
        for keyword in MAPPED:
            if keyword in original:
                pairs[(keyword, str(original.get(keyword)))] = str(ds.get(keyword, ""))
        rel = path.name if src.is_file() else path.relative_to(src)
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        written += 1
    return written, skipped
