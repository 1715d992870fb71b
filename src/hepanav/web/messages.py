"""Error messages for the page: the CLI's one-line errors in the web page's words.

A job step is a ``hepanav`` command line, so its error names CLI options (``--tumor``,
``--source``) and absolute server paths. A web user has neither: the page shows series
by their name in the case and fields by their label. :func:`for_the_page` is the one
place that translates (the untranslated line stays in the job's ``job.log`` and the
server log):

* paths in the data folder become what the page shows: a case's series by its name
  (``pre_ct.nii.gz``), a file of the job by its name in the result (``margin``), an
  upload by the file name it was uploaded with where the request knows it
  (``junk.xlsx``), else as "the uploaded file"; any other absolute path by its last part;
* CLI options become the page's field names, per command where the same option means
  different fields (``segment tumor --ct`` is the pre CT, ``plan --ct`` the planning
  CT); options without a field on any page are kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PureWindowsPath

# Options the web's job steps pass, in the words of the page that sets them.
OPTION_WORDS = {
    "--pre": "the pre-procedure CT",
    "--post": "the post-ablation CT",
    "--tumor": "the tumour mask",
    "--ablation": "the zone mask",
    "--tumor-seed": "the tumour seed",
    "--ablation-seed": "the zone seed",
    "--liver-pre": "the liver mask (pre)",
    "--liver-post": "the liver mask (post)",
    "--labels": "the risk structures (label map)",
    "--margin": "the safety margin",
    "--device": "the device",
    "--control-ct": "the control CT",
    "--source": "a DICOM CT series",
    "--patient-id": "the patient id",
    "--procedure-id": "the procedure id",
    "--lesion-id": "the lesion id",
    "--include": "an include point",
    "--exclude": "an exclude point",
    "--db": "the registry database",
}
# Where one option is two fields: (command, subcommand) -> option -> words.
COMMAND_WORDS = {
    ("segment", "tumor"): {
        "--ct": "the pre-procedure CT",
        "--seed": "the tumour seed",
        "--include": "a tumour include point",
        "--exclude": "a tumour exclude point",
    },
    ("segment", "ablation"): {
        "--ct": "the post-ablation CT",
        "--seed": "the zone seed",
        "--include": "a zone include point",
        "--exclude": "a zone exclude point",
    },
    ("plan", None): {"--ct": "the planning CT"},
    # The /fluoro form: the recording and its "Bit depth" choice.
    ("fluoro", "analyze"): {"--nir": "the NIR recording", "--bit-depth": "the bit depth"},
}
# "choose with --tumor-label (...)": the pages take masks of one structure, no label field.
LABEL_HINT = re.compile(r"choose with --[a-z-]*label \(one or several numbers or names\)")
SOURCE_HINT = re.compile(r"with --source \(a DICOM folder\)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?![\w-])")
LOG_HINT = re.compile(r";? *(?:details|library messages) in \S+")
# An absolute path not inside a URL (``http://host/x``) or a word (``mg/m²``).
ABSOLUTE = re.compile(r"(?<![\w.~:/-])~?/[^\s:;,'\"()\[\]]*/[^\s:;,'\"()\[\]]+")


def for_the_page(
    message: str,
    data_dir: Path,
    argv: Sequence[str] | None = None,
    job_id: int | None = None,
    uploads: Mapping[Path, str] | None = None,
) -> str:
    """``message`` (a CLI error line or an ``InputError``) as the page shows it.

    Parameters
    ----------
    message : str
        One line, without the ``error:`` prefix.
    data_dir : Path
        The server's data folder (``cases/``, ``jobs/``, ``uploads/``).
    argv : sequence of str, optional
        The failing step's command line after ``hepanav`` (which command's words).
    job_id : int, optional
        The job, named where the CLI points to a log file on the server.
    uploads : mapping of Path to str, optional
        Saved upload -> the name the page calls it (:func:`upload_name` of the file name
        it was uploaded with); other uploads are "the uploaded file".
    """
    text = " ".join(message.split())
    text = LOG_HINT.sub(f"; details in the server log (job {job_id})" if job_id else "", text)
    for saved, name in (uploads or {}).items():
        for form in {str(saved), str(Path(saved).absolute()), str(Path(saved).resolve())}:
            text = text.replace(form, name)
    text = _paths(text, data_dir)
    text = LABEL_HINT.sub("choose a mask of that structure alone (the pages take no labels)", text)
    text = SOURCE_HINT.sub("as a DICOM series (the case has none for it)", text)
    words = dict(OPTION_WORDS)
    if argv:
        command = (str(argv[0]), str(argv[1]) if len(argv) > 1 else None)
        words.update(COMMAND_WORDS.get(command, COMMAND_WORDS.get((command[0], None), {})))
    return OPTION.sub(lambda m: words.get(m.group(0), m.group(0)), text)


def upload_name(filename: str | None) -> str:
    """What the page calls an upload: the last part of the file name it was uploaded
    with (a browser may send a Windows path), at most 100 characters; without one,
    "the uploaded file". The name is only shown back to its uploader, never stored."""
    name = PureWindowsPath(filename or "").name.strip()
    name = " ".join(name.split())
    if not name:
        return "the uploaded file"
    return name if len(name) <= 100 else name[:97] + "..."


def _paths(text: str, data_dir: Path) -> str:
    """Paths under the data folder as the page names them; other absolute paths by name."""
    roots = {str(data_dir), str(Path(data_dir).absolute()), str(Path(data_dir).resolve())}
    for root in sorted(roots, key=len, reverse=True):
        # A case's series by its name, a job's file by its name in the result.
        text = re.sub(re.escape(root) + r"/cases/[^/\s]+/", "", text)
        job = re.escape(root) + r"/jobs/job-\d+/(?:result|\.work-\d+)"
        text = re.sub(job + r"/([^\s:;,)]+)", r"the result (\1)", text)
        text = re.sub(job + r"(?![^\s:;,)])", "the result", text)
        text = re.sub(re.escape(root) + r"/uploads/[^\s:;,)]+", "the uploaded file", text)
    return ABSOLUTE.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "/", text)


# Form fields by the labels the pages give them (a request the form's own checks let
# through, or one not sent from the page, is refused naming the field so).
FIELD_WORDS = {
    "nir": "NIR recording",
    "bit_depth": "Bit depth",
    "case_text": "Case (YAML)",
    "file": "Template file (CSV/XLSX)",
    "pre": "Pre-procedure CT",
    "post": "Post-ablation CT",
    "ct": "Planning CT",
    "tumor": "Tumour mask",
    "margin_mm": "Safety margin (mm)",
    "device": "Device",
    "control_ct": "Placement check on control CT",
    "study_uid": "Study",
    "username": "User name",
    "password": "Password",
    "job_id": "job number",
}
# What a pydantic error type means for a form field.
FIELD_PROBLEMS = {
    "missing": "is required",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be on or off",
}


def field_problem(errors: Sequence[Mapping]) -> str:
    """The first of a request's validation errors (FastAPI's ``RequestValidationError``)
    as one line naming the form field by its label: ``Bit depth: must be a whole
    number``; the value typed is not repeated (it may be long, or patient data)."""
    if not errors:
        return "the form was not complete; reload the page and send it again"
    error = errors[0]
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "form")]
    name = loc[-1] if loc else ""
    field = FIELD_WORDS.get(name, name.replace("_", " ") or "the form")
    kind = str(error.get("type", ""))
    problem = FIELD_PROBLEMS.get(kind)
    if problem is None:
        text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        problem = re.sub(r"^Input should", "should", text)
    return f"{field}: {problem}"
