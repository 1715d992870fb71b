"""Pseudonymised export: nothing the Basic Profile removes survives (attribute by attribute
against PS3.15 Table E.1-1), and the study stays consistent."""

from __future__ import annotations

import csv
import stat

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cli_helpers import one_line_error
from hepanav.dicom.pseudonymise import CLEANED_SEQUENCES, profile_rules
from test_dicom_objects import margin_export  # noqa: F401 - fixture

VALUES = {
    "DA": "20200102",
    "TM": "101010",
    "DT": "20200102101010",
    "PN": "Doe^John",
    "LO": "IDENTIFYING",
    "SH": "IDENTIFYING",
    "ST": "IDENTIFYING",
    "LT": "IDENTIFYING",
    "UT": "IDENTIFYING",
    "UC": "IDENTIFYING",
    "CS": "IDENTIFYING",
    "AS": "045Y",
    "UI": "1.2.826.0.1.3680043.8.498.4242",
    "DS": "1.5",
    "IS": "3",
    "US": 1,
    "SS": 1,
    "UL": 1,
    "SL": 1,
    "FL": 1.0,
    "FD": 1.0,
    "OB": b"\x00\x01",
    "OW": b"\x00\x01",
    "UR": "http://identifying.example",
}


def _filled(rule_tags):
    """Every Table E.1-1 attribute with a fixed tag, filled with an identifying value."""
    extra = {}
    for rule in profile_rules():
        if "X" in rule.group + rule.element:
            continue
        tag = int(rule.group + rule.element, 16)
        if tag >> 16 in (0x0000, 0x0002) or tag in rule_tags:
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if vr == "SQ":
            item = Dataset()
            item.CodeMeaning = "IDENTIFYING"
            extra[tag] = ("SQ", Sequence([item]))
        elif vr in VALUES:
            extra[tag] = (vr, VALUES[vr])
    return extra


@pytest.fixture(scope="module")
def pseudonymised(margin_export, tmp_path_factory):
    from hepanav.dicom.pseudonymise import pseudonymise_tree

    folder, ct_dir, _, files = margin_export
    tmp = tmp_path_factory.mktemp("pseudo")
    study = tmp / "in"
    (study / "ct").mkdir(parents=True)
    (study / "derived").mkdir()
    keep = {
        "SOPInstanceUID",
        "SOPClassUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
    }
    keep_tags = {pydicom.datadict.tag_for_keyword(k) for k in keep}
    extra = _filled(keep_tags | {0x7FE00010})
    for path in sorted(ct_dir.iterdir()):
        ds = pydicom.dcmread(path)
        for tag, (vr, value) in extra.items():
            if tag not in ds:
                ds.add_new(tag, vr, value)
        ds.add_new(0x00091001, "LO", "private identifying")  # a private attribute
        ds.save_as(study / "ct" / path.name, enforce_file_format=True)
    for path in files[:2]:  # the SEG and the SR refer to the CT by UID
        pydicom.dcmread(path).save_as(study / "derived" / path.name, enforce_file_format=True)
    key, mapping = tmp / "secret" / "key.txt", tmp / "secret" / "mapping.csv"
    summary = pseudonymise_tree(study, tmp / "out", key, mapping)
    return study, tmp / "out", key, mapping, summary, extra


def test_no_attribute_the_basic_profile_removes_is_kept(pseudonymised):
    study, out, _, _, summary, extra = pseudonymised
    assert summary.files == len(list(study.rglob("*.dcm")))
    before = pydicom.dcmread(sorted((study / "ct").iterdir())[0])
    after = pydicom.dcmread(out / "ct" / sorted((study / "ct").iterdir())[0].name)
    checked = 0
    for rule in profile_rules():
        if "X" in rule.group + rule.element:
            continue
        tag = int(rule.group + rule.element, 16)
        if tag not in before or before[tag].value in (None, "", b""):
            continue
        checked += 1
        old = before[tag].value
        new = after[tag].value if tag in after else None
        action = rule.action
        if before[tag].VR == "SQ":
            if action in ("X", "X/D"):
                assert tag not in after, rule.keyword
            elif action.startswith("X") and "U" not in action:
                assert tag not in after or len(after[tag].value) == 0, rule.keyword
            elif "U" in action or rule.keyword in CLEANED_SEQUENCES:
                assert tag in after, rule.keyword  # references kept, UIDs replaced
            else:
                assert new is None or len(new) == 0, rule.keyword
            continue
        if action == "X":
            assert tag not in after, rule.keyword
        elif action.startswith("X") or action in ("Z", "D", "Z/D"):
            assert new in (None, "", b"") or new != old, (rule.keyword, action)
            assert "IDENTIFYING" not in str(new) and "Doe^John" not in str(new)
        elif action == "U":
            assert new != old and pydicom.uid.UID(str(new)).is_valid, rule.keyword
        elif action == "C":  # Retain Longitudinal Temporal Information, Modified Dates
            assert new != old, rule.keyword
    assert checked > 150  # most of the table was present in the input
    assert not any(elem.tag.is_private for elem in after)
    assert after.PatientIdentityRemoved == "YES"
    codes = {c.CodeValue for c in after.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113104", "113107"}


def test_pseudonymised_derived_objects_stay_valid(pseudonymised):
    from dicomout_helpers import dciodvfy

    _, out, _, _, _, _ = pseudonymised
    for path in sorted((out / "derived").iterdir()):  # our SEG and SR, valid before
        errors, _ = dciodvfy(path)
        assert errors == [], (path.name, errors)


def test_dates_shift_together_and_the_study_stays_consistent(pseudonymised):
    study, out, _, mapping, _, _ = pseudonymised
    cts = [pydicom.dcmread(p) for p in sorted((out / "ct").iterdir())]
    originals = [pydicom.dcmread(p) for p in sorted((study / "ct").iterdir())]
    assert len({d.StudyInstanceUID for d in cts}) == 1
    assert len({d.SeriesInstanceUID for d in cts}) == 1
    assert cts[0].StudyInstanceUID != originals[0].StudyInstanceUID
    seg = pydicom.dcmread(next((out / "derived").glob("*seg*")))
    sr = pydicom.dcmread(next((out / "derived").glob("*sr*")))
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == cts[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == cts[0].FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == cts[0].SeriesInstanceUID
    referenced = {
        i.ReferencedSOPInstanceUID
        for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced <= {d.SOPInstanceUID for d in cts}
    # Longitudinal temporal information: one offset for every date.
    from datetime import date

    def day(text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))

    shift = day(originals[0].StudyDate) - day(cts[0].StudyDate)
    assert shift.days > 0
    assert day(originals[0].ContentDate) - day(cts[0].ContentDate) == shift
    rows = list(csv.DictReader(mapping.open()))
    assert {
        "attribute": "StudyInstanceUID",
        "original": originals[0].StudyInstanceUID,
        "pseudonym": cts[0].StudyInstanceUID,
    } in rows


def test_the_key_gives_the_same_pseudonyms_and_stays_private(pseudonymised, tmp_path):
    from hepanav.dicom.pseudonymise import pseudonymise_tree

    study, out, key, _, _, _ = pseudonymised
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pseudonymise_tree(study, tmp_path / "again", key, tmp_path / "m.csv")
    name = sorted((study / "ct").iterdir())[0].name
    a = pydicom.dcmread(out / "ct" / name)
    b = pydicom.dcmread(tmp_path / "again" / "ct" / name)
    assert (a.StudyInstanceUID, a.PatientID) == (b.StudyInstanceUID, b.PatientID)


def test_cli_refuses_an_existing_output_and_a_mapping_inside_it(pseudonymised, tmp_path, cli):
    study, out, key, _, _, _ = pseudonymised
    one_line_error(
        *cli(
            "dicom", "pseudonymise", study, out, "--key-file", key, "--mapping", tmp_path / "m.csv"
        )[0::2],
        "output folder exists",
    )
    one_line_error(
        *cli(
            "dicom",
            "pseudonymise",
            study,
            tmp_path / "new",
            "--key-file",
            key,
            "--mapping",
            tmp_path / "new" / "m.csv",
        )[0::2],
        "--mapping",
    )
    assert not (tmp_path / "new").exists()
