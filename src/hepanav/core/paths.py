"""Inputs versus outputs: refuse an output that would overwrite an input, record inputs safely.

Every command calls :func:`check_inputs_outputs` with all the paths it reads and all
it writes, before any work starts. Outputs then never replace an input (``fluoro
render --nir rec.mp4 --out rec.mp4``), never land inside an input folder (a DICOM series
folder), and an output folder -- which :func:`hepanav.core.atomic.output_folder`
replaces as a whole -- never holds an input (``margin --ablation OUT/margin_map.nii.gz
--out OUT``).

Results record input files with :func:`recorded_path`: relative to the working folder
when the file is below it, otherwise the file name and a short content hash -- never an
absolute path, which may name a patient's folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from hepanav.core.errors import InputError


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_inputs_outputs(
    inputs: Iterable[str | Path | None],
    outputs: Iterable[str | Path | None],
    folders: Iterable[str | Path | None] = (),
) -> None:
    """Refuse outputs that are, or would hold, or sit inside, an input.

    Parameters
    ----------
    inputs : iterable of path or None
        Every file or folder the command reads (``None`` entries are skipped; text such
        as ``camera:0`` or a glob is compared as a path and simply never matches).
    outputs : iterable of path or None
        Output files.
    folders : iterable of path or None
        Output folders (replaced as a whole by ``output_folder``): no input may lie inside.

    Raises
    ------
    InputError
        Naming the output and the input it collides with.
    """
    ins = [(p, _resolved(p)) for p in inputs if p is not None and str(p)]
    outs = [(p, _resolved(p), False) for p in outputs if p is not None]
    outs += [(p, _resolved(p), True) for p in folders if p is not None]
    for out, rout, is_folder in outs:
        for inp, rin in ins:
            if rout == rin or _same_file(rout, rin):
                raise InputError(f"is also an input ({inp}); choose another output", out)
            if is_folder and rout in rin.parents:
                raise InputError(
                    f"output folder holds the input {inp}; its content is replaced, "
                    "choose another output folder",
                    out,
                )
            if rin in rout.parents:
                raise InputError(
                    f"lies inside the input folder {inp}; choose an output outside it", out
                )


def recorded_path(path: str | Path | None) -> str | None:
    """How a result records an input file: never an absolute path.

    A path below the working folder is recorded relative to it (``case/ct.nii.gz``); any
    other path as ``<name> (sha256:<first 12 hex of the file content>)`` -- a file name
    alone could be ambiguous, the hash identifies the content without naming a folder.
    A folder (DICOM series) outside the working folder is recorded by its name only.
    """
    if path is None:
        return None
    p = Path(path)
    resolved = _resolved(p)
    try:
        return resolved.relative_to(_resolved(Path.cwd())).as_posix() or "."
    except ValueError:
        pass
    if resolved.is_file():
        h = hashlib.sha256()
        try:
            with open(resolved, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            return p.name
        return f"{p.name} (sha256:{h.hexdigest()[:12]})"
    return p.name
