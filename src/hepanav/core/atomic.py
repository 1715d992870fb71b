"""Write results so that a reader never sees a half-written file.

Everything is written to a temporary file in the destination folder and then
renamed over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hepanav.core.errors import InputError

# mkstemp creates files readable by the owner only; results should get the usual
# permissions (0666 less the umask), as open() would give them. Read once at import.
_UMASK = os.umask(0)
os.umask(_UMASK)
# Temporary siblings: ".<name>.hepanav-tmp-<pid>-<random>"; a later run removes those of
# processes that no longer exist (killed while writing).
_TMP_TAG = ".hepanav-tmp-"
_OLD_TAG = ".hepanav-old-"


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Parameters
    ----------
    target : str or Path
        Final file name. Its folder is created if missing.
    suffix : str, optional
        Suffix of the temporary file (defaults to the target's full suffix, so
        that writers choosing a format by extension, e.g. ``.nii.gz``, work).

    Raises
    ------
    InputError
        When ``target`` is an existing folder.

    Notes
    -----
    On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    if target.is_dir():
        raise InputError("is a folder; give a file name", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes) or ".tmp"
    _remove_stale(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}{_TMP_TAG}{os.getpid()}-", suffix=suffix, dir=target.parent
    )
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_UMASK)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``target``; return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | Path, data: Any) -> Path:
    """Atomically write ``data`` (a Pydantic model or JSON-able object) as indented JSON."""
    if hasattr(data, "model_dump_json"):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, allow_nan=False, default=_json_default)
    return write_text(target, text + "\n")


def _json_default(obj: Any) -> Any:
    # NumPy scalars and arrays show up in results; JSON has no type for them.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


# ----------------------------------------------------------------------------- output sets
#: Name of the manifest written last into every output folder; it marks the folder as a
#: complete HepaNav output set (and as one HepaNav may replace on the next run).
MANIFEST = ".hepanav-output.json"


def check_output_folder(out: str | Path) -> Path:
    """Refuse an output folder HepaNav must not replace, before any work starts.

    ``out`` may be missing, an empty folder, or a folder a previous HepaNav run wrote
    (it holds :data:`MANIFEST`); such a folder is replaced as a whole. A file, or a
    folder with other content (the user's own files), is refused.

    Raises
    ------
    InputError
        ``out`` is a file, or a non-empty folder HepaNav did not write.
    """
    out = Path(out)
    for ancestor in out.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(
                    f"cannot create the output folder: {ancestor} is a file (Not a directory)",
                    out,
                )
            break
    if out.is_symlink() and not out.exists():
        raise InputError("is a broken symbolic link; give a folder", out)
    if out.exists():
        if not out.is_dir():
            raise InputError("exists and is not a folder; give a folder name", out)
        try:
            names = {p.name for p in out.iterdir()}
        except OSError as exc:
            raise InputError(f"output folder cannot be read ({exc.strerror})", out) from None
        if names and MANIFEST not in names:
            raise InputError(
                "output folder holds files HepaNav did not write; give a new or empty folder "
                "(a previous HepaNav result is replaced as a whole)",
                out,
            )
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(out: Path) -> None:
    """Remove temporary siblings of ``out`` left by a run that was killed."""
    import shutil

    parent = out.parent
    if not parent.is_dir():
        return
    for tag in (_TMP_TAG, _OLD_TAG):
        for p in parent.glob(f".{out.name}{tag}*"):
            pid = p.name.split(tag, 1)[1].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system without exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_manifest(folder: Path, command: str) -> None:
    from hepanav import __version__

    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )
    manifest = {
        "hepanav_version": __version__,
        "command": command,
        "files": [{"name": n, "bytes": s} for n, s in files],
    }
    path = folder / MANIFEST
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def output_folder(out: str | Path, command: str = "hepanav") -> Iterator[Path]:
    """Write an output SET: yield a temporary sibling folder, rename it onto ``out`` at the end.

    Everything the command writes goes into the yielded folder. When the ``with`` block
    ends without an exception, a manifest (:data:`MANIFEST`, the list of files and their
    sizes) is written last, the files are flushed to disk, and the folder is renamed
    onto ``out`` in one step. A reader therefore sees either the complete new set, the
    complete previous set, or nothing -- never a mix, even when the process is killed.

    An existing ``out`` that a previous HepaNav run wrote is swapped atomically with the
    new set (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere: the old folder is moved
    aside, then the new one moved in) and then deleted. An existing folder holding other
    files is refused (:func:`check_output_folder`) so that ``--out ~/Documents`` can
    never delete a user's files.

    Parameters
    ----------
    out : str or Path
        The output folder.
    command : str
        Recorded in the manifest.

    Yields
    ------
    Path
        The temporary folder (``.<name>.hepanav-tmp-<pid>-<random>`` beside ``out``).
        Paths written inside it map to ``out`` by :func:`final_path`.

    Raises
    ------
    InputError
        ``out`` cannot be replaced (see :func:`check_output_folder`).
    OSError
        A write error (disk full, permission, quota); ``out`` is then untouched.
    """
    import shutil

    out = Path(out)
    check_output_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_TAG}{os.getpid()}-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        _write_manifest(tmp, command)
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb+") as fh:
                    os.fsync(fh.fileno())
        check_output_folder(out)  # the user may have put files there meanwhile
        if out.is_dir() and any(out.iterdir()):
            if _exchange(tmp, out):
                _fsync_dir(out.parent)
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old set
                return
            old = Path(
                tempfile.mkdtemp(prefix=f".{out.name}{_OLD_TAG}{os.getpid()}-", dir=out.parent)
            )
            os.replace(out, old / "set")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # rename(2) may replace an empty folder
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def output_files(
    targets: Sequence[str | Path], stale: Sequence[str | Path] = ()
) -> Iterator[list[Path]]:
    """Write several files of one folder as a SET (e.g. a mask, its JSON and its report).

    Yields one temporary path per target (same file names, in a temporary folder
    ``.<first name>.hepanav-tmp-<pid>-<random>`` beside the targets). When the ``with``
    block ends without an exception, the files are flushed and each is renamed onto its
    target (renames need no disk space); on an exception (disk full, quota, a failed
    check) nothing is renamed and the temporaries are removed, so the targets keep their
    previous content, and the folders created for the set are removed again (nothing
    half-written, no empty folder). Targets not written inside the block are left alone.
    ``stale`` files (members of a previous set this one has no counterpart for, e.g. the
    report of a run that now skips it) are removed once the new set is in place, so the
    folder never shows the new set beside a previous run's member.

    Raises
    ------
    InputError
        A target is an existing folder.
    """
    import shutil

    targets = [Path(t) for t in targets]
    parent = targets[0].parent
    if any(t.parent != parent for t in targets):  # pragma: no cover - programming error
        raise ValueError("output_files: the targets must share one folder")
    for t in targets:
        if t.is_dir():
            raise InputError("is a folder; give a file name", t)
    created = _make_folder(parent)
    _remove_stale(targets[0])
    tmp = Path(tempfile.mkdtemp(prefix=f".{targets[0].name}{_TMP_TAG}{os.getpid()}-", dir=parent))
    try:
        paths = [tmp / t.name for t in targets]
        yield paths
        written = [(p, t) for p, t in zip(paths, targets, strict=True) if p.is_file()]
        for p, _ in written:
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
        for p, t in written:
            os.replace(p, t)
        for old in (Path(x) for x in stale):
            if old.is_file() or old.is_symlink():
                old.unlink()
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_folder(folder: Path) -> list[Path]:
    """``mkdir -p folder``; return the folders it created, deepest first."""
    created = []
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_created(created: list[Path]) -> None:
    """Remove the folders a failed output set created, deepest first, while empty (a
    failed run leaves no trace; a folder something else wrote into meanwhile stays)."""
    for p in created:
        try:
            p.rmdir()
        except OSError:
            return


def final_path(path: str | Path, tmp: Path, out: str | Path) -> Path:
    """Where ``path``, written inside the temporary folder ``tmp``, lives once moved to ``out``."""
    path = Path(path)
    try:
        return Path(out) / path.relative_to(tmp)
    except ValueError:
        return path
