"""Read users' files safely; turn parse and validation errors into one-line ``InputError``.

Every text, JSON, YAML or CSV file a user names goes through this module:

* :func:`check_input_file` refuses what is not a regular file (a folder, a FIFO, a
  device, a socket) before anything opens it -- a FIFO would block the reader forever
  -- and refuses files above a size limit (a text input never needs more than a few MB;
  callers with larger legitimate inputs pass their own ``max_bytes``).
* :func:`read_user_text` reads at most ``max_bytes`` with ``O_NONBLOCK`` and checks the
  opened descriptor again (no race between the check and the open).
* :func:`read_user_json` / :func:`read_user_yaml` / :func:`read_user_data` bound the
  nesting depth (counted while parsing, before Python's recursion limit could be hit)
  and the number of nodes (YAML aliases are counted as expanded, so a "billion laughs"
  file is refused instead of exploding later), and refuse non-finite numbers
  (``NaN``, ``Infinity``, ``.inf``, ``.nan``): no user file of HepaNav needs them and a
  NaN compares false with every threshold, i.e. it silently turns a rule off.
* The same parsers refuse a key given twice in one mapping (``lung_dose_gy: 45`` then
  ``lung_dose_gy: 10``): JSON and YAML parsers keep the last one silently, which drops
  the first value (and any rule it triggers). YAML merge keys (``<<: *base``) may still
  be overridden.

Error messages name the file and the place (``a.b[3]``) but never echo a value from the
file: a value may identify a patient (see docs/privacy.md).
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hepanav.core.errors import InputError

#: Largest text/JSON/YAML file read by default (bytes). Case, rule, device, risk-map,
#: landmark, label and plan files are a few kB; 8 MiB leaves ample room.
MAX_TEXT_BYTES = 8 * 1024 * 1024
#: Deepest nesting of lists/mappings accepted in a JSON or YAML file. HepaNav's own
#: formats nest at most 6 deep (a Slicer .mrk.json: markups[].controlPoints[].position).
MAX_DEPTH = 32
#: Most nodes (scalars + containers, aliases expanded) accepted in one JSON/YAML file.
MAX_NODES = 200_000


@lru_cache(maxsize=64)
def code_lookup(allowed: tuple[str, ...]) -> dict[str, str]:
    """``{code.lower(): code}`` of a code list (a list whose codes differ only in case
    would be ambiguous: refused with ``ValueError``)."""
    lookup = {a.lower(): a for a in allowed}
    if len(lookup) != len(allowed):
        raise ValueError(f"codes {allowed} differ only in case")
    return lookup


def canonical_code(value: str, allowed: tuple[str, ...]) -> str:
    """The code of ``allowed`` that ``value`` stands for, in any case and with spaces for
    underscores (``" crc "`` -> ``"CRC"``, ``"grey zone"`` -> ``"grey_zone"``), or
    ``value`` unchanged when it stands for none (the caller's validation refuses it).
    Shared by the registry's templates and the therapy case format."""
    return code_lookup(allowed).get(value.strip().lower().replace(" ", "_"), value)


def first_error(exc: ValidationError, default_field: str = "input") -> str:
    """``"field.path: message"`` of the first error of a Pydantic ``ValidationError``.

    One error is enough to act on, and it keeps CLI messages on one line. The offending
    input value is not included (Pydantic's own ``str(exc)`` would print it).
    """
    err = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(safe_key(p) for p in err.get("loc", ())) or default_field
    message = " ".join(str(err.get("msg", "invalid value")).split())
    return f"{field}: {message}"


# ----------------------------------------------------------------------------- files
def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_file(path: str | Path, what: str, max_bytes: int | None = MAX_TEXT_BYTES) -> Path:
    """Check that ``path`` is an existing regular file of at most ``max_bytes``.

    Parameters
    ----------
    path : str or Path
        The file the user named (symbolic links are followed).
    what : str
        What the file should be (``"device file"``), for the message.
    max_bytes : int or None
        Size limit; ``None`` for no limit (binary images are bounded elsewhere).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        Missing, a folder, a FIFO, a device or socket, unreadable, or too large.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} does not exist", path) from None
    except OSError as exc:
        raise InputError(f"{what} cannot be read ({exc.strerror})", path) from None
    _check_stat(st, path, what, max_bytes)
    return path


def _check_stat(st: os.stat_result, path: Path, what: str, max_bytes: int | None) -> None:
    kind = _kind(st.st_mode)
    if kind is not None:
        raise InputError(f"{what} is {kind}, not a regular file", path)
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputError(
            f"{what} is {st.st_size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.1f} MiB",
            path,
        )


def read_user_bytes(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """Bytes of a user's regular file, at most ``max_bytes`` (see :func:`check_input_file`)."""
    path = check_input_file(path, what, max_bytes)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the check, open() must not
        # block; fstat on the descriptor then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(f"{what} cannot be read ({exc.strerror})", path) from None
    with os.fdopen(fd, "rb") as fh:
        _check_stat(os.fstat(fd), path, what, max_bytes)
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):  # pragma: no cover
                raise InputError(f"{what} is not a regular file", path) from None
            raise InputError(f"{what} cannot be read ({exc.strerror})", path) from None
    if len(data) > max_bytes:  # grew while being read
        raise InputError(f"{what} is larger than the {max_bytes / 2**20:.1f} MiB limit", path)
    return data


def read_user_text(
    path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES, encoding: str = "utf-8"
) -> str:
    """UTF-8 text of ``path``; a missing, special, oversized or binary file is an ``InputError``.

    Parameters
    ----------
    path : Path
        The file the user named.
    what : str
        What the file should be (``"device file"``, ``"plan file"``), for the message.
    max_bytes : int
        Size limit (default :data:`MAX_TEXT_BYTES`).
    encoding : str
        ``"utf-8"``, or ``"utf-8-sig"`` to accept a byte-order mark (spreadsheet CSVs).
    """
    data = read_user_bytes(path, what, max_bytes)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text", path) from None
    if "\x00" in text:
        raise InputError(f"{what} is not text (it holds NUL bytes)", path)
    return text


# ----------------------------------------------------------------------------- parsing
def safe_key(key: Any) -> str:
    """A mapping key as messages show it: at most 40 word characters, others as ``?``.

    Keys come from users' files; they are shown so the user finds the place, but never
    with line breaks or control characters, and never long enough to carry a value.
    """
    import re

    text = re.sub(r"[^\w.\-]", "?", str(key))
    return text[:40] + ("..." if len(text) > 40 else "")


def _where(path: list[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{safe_key(p)}" if out else safe_key(p))
    return out or "top level"


def check_tree(
    data: Any, source: str | Path, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Any:
    """Check parsed JSON/YAML: bounded depth and node count, finite numbers, plain keys.

    Shared references (YAML aliases) count once per use, so the expanded size of an
    alias bomb is what is bounded; each distinct container is visited once (memoised),
    so the check itself stays linear in the file size. Returns ``data`` unchanged.

    Raises
    ------
    InputError
        Too deep, too many values, a NaN or infinite number, an integer beyond 64 bits.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int, where: list[Any]) -> int:
        if isinstance(node, float):
            if not math.isfinite(node):
                raise InputError(
                    f"field '{_where(where)}': must be a finite number (no NaN or infinity)", source
                )
            return 1
        if isinstance(node, int) and not isinstance(node, bool):
            if not -(2**63) <= node < 2**63:
                raise InputError(f"field '{_where(where)}': integer out of range", source)
            return 1
        if not isinstance(node, dict | list | tuple):
            return 1  # None, bool, str, dates (YAML timestamps), bytes (!!binary)
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth >= max_depth:
            raise InputError(f"nested more than {max_depth} levels deep", source)
        total = 1
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str | int | float | bool | type(None)):
                    raise InputError(
                        f"field '{_where(where)}': a mapping key must be a plain value", source
                    )
                total += size(value, depth + 1, [*where, key])
                if total > max_nodes:
                    break
        else:
            for i, value in enumerate(node):
                total += size(value, depth + 1, [*where, i])
                if total > max_nodes:
                    break
        if total > max_nodes:
            raise InputError(f"more than {max_nodes:,} values (aliases expanded)", source)
        sizes[id(node)] = total
        return total

    size(data, 0, [])
    return data


def parse_json(
    text: str, source: str | Path, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Any:
    """Parse JSON strictly: no NaN/Infinity, no key twice in an object, bounded depth and
    size; errors name ``source``."""

    def _no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed (numbers must be finite)")

    def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _DuplicateKey(key, None)
            out[key] = value
        return out

    _check_bracket_depth(text, source, max_depth)
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)
    except _DuplicateKey as exc:
        raise InputError(exc.message(), source) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno})", source) from None
    except RecursionError:
        raise InputError(f"nested more than {max_depth} levels deep", source) from None
    except ValueError as exc:  # NaN/Infinity constants, integers of > 4300 digits
        msg = str(exc) if "not allowed" in str(exc) else "a number is out of range"
        raise InputError(f"not valid JSON: {msg}", source) from None
    return check_tree(data, source, max_depth, max_nodes)


def _check_bracket_depth(text: str, source: str | Path, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` before the recursive parser sees it."""
    import re

    import numpy as np

    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    b = np.frombuffer(stripped.encode("utf-8", "replace"), dtype=np.uint8)
    step = np.zeros(b.shape, dtype=np.int32)
    step[(b == ord("[")) | (b == ord("{"))] = 1
    step[(b == ord("]")) | (b == ord("}"))] = -1
    if step.size and int(np.cumsum(step).max()) > max_depth:
        raise InputError(f"nested more than {max_depth} levels deep", source)


class _DuplicateKey(Exception):
    """A key given twice in one mapping (the parsers would keep the last one silently)."""

    def __init__(self, key: Any, line: int | None) -> None:
        super().__init__("duplicate key")
        self.key, self.line = key, line

    def message(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return (
            f"duplicate key {safe_key(self.key)!r}{where}: a key may appear only once in a "
            "mapping (the parser would silently keep the last value); remove one"
        )


class _UniqueKeys:
    """Mixin for PyYAML loaders: refuse a key given twice in one mapping.

    Keys merged in with ``<<`` may be overridden (that is what a merge is for); two
    explicit keys of one mapping may not.
    """

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201 - PyYAML's API
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue
                key = self.construct_object(key_node)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: PyYAML refuses it itself
                    continue
                if duplicate:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _BoundedLoader(_UniqueKeys, yaml.SafeLoader):
    """PyYAML's safe loader counting the nesting depth while composing nodes."""

    max_depth = MAX_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise _TooDeep(mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_CLoader = (
    type("_UniqueCLoader", (_UniqueKeys, yaml.CSafeLoader), {})
    if hasattr(yaml, "CSafeLoader")
    else None
)


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def parse_yaml(
    text: str, source: str | Path, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Any:
    """Parse YAML (JSON is YAML too), safely and bounded; errors name ``source``.

    Raises
    ------
    InputError
        Syntax error, more than ``max_depth`` levels, more than ``max_nodes`` values with
        aliases expanded, a NaN or infinite number, a key given twice in one mapping.
    """
    # Flow collections ([...], {...}) are checked before PyYAML sees them: its scanner
    # is quadratic in the flow depth (1,200 levels took seconds). Brackets in comments or
    # plain scalars count too; 32 unclosed ones there are not a real file.
    _check_bracket_depth(text, source, max_depth)
    loader = None
    try:
        if _CLoader is not None:
            # libyaml parses iteratively in C (fast, no recursion); the tree it builds is
            # bounded by check_tree below, flow nesting by the bracket check above.
            loader = _CLoader(text)
        else:  # pragma: no cover - PyYAML without libyaml
            loader = _BoundedLoader(text)
            loader.max_depth = max_depth
        data = loader.get_single_data()
    except _DuplicateKey as exc:
        raise InputError(exc.message(), source) from None
    except _TooDeep as exc:
        raise InputError(
            f"nested more than {max_depth} levels deep (line {exc.line})", source
        ) from None
    except RecursionError:
        raise InputError(f"nested more than {max_depth} levels deep", source) from None
    except yaml.YAMLError as exc:
        # The problem and its line; the snippet PyYAML quotes could hold a patient's value.
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "syntax error"
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InputError(
            f"not valid YAML: {' '.join(str(problem).split())}{where}", source
        ) from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise InputError("not valid YAML: a number is out of range", source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return check_tree(data, source, max_depth, max_nodes)


def read_user_json(
    path: str | Path,
    what: str,
    max_bytes: int = MAX_TEXT_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> Any:
    """Parse a user's JSON file (regular file, size/depth/node bounded, finite numbers)."""
    text = read_user_text(path, what, max_bytes, encoding="utf-8-sig")
    return parse_json(text, path, max_depth, max_nodes)


def read_user_yaml(
    path: str | Path,
    what: str,
    max_bytes: int = MAX_TEXT_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> Any:
    """Parse a user's YAML (or JSON) file (regular file, bounded, finite numbers)."""
    text = read_user_text(path, what, max_bytes, encoding="utf-8-sig")
    return parse_yaml(text, path, max_depth, max_nodes)


def read_user_data(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """A user's ``.json`` file as JSON, anything else as YAML; both bounded (see above)."""
    if Path(path).suffix.lower() == ".json":
        return read_user_json(path, what, max_bytes)
    return read_user_yaml(path, what, max_bytes)


def validate_model(
    model: type, data: Any, source: str | Path, prefix: str = "", suffix: str = ""
) -> Any:
    """``model.model_validate(data)``; a failure becomes a one-line ``InputError`` on ``source``
    (``prefix`` and ``suffix`` around Pydantic's first error, without the input value)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{prefix}{first_error(exc, 'file')}{suffix}", source) from None
