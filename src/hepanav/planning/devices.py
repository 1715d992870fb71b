"""Ablation device zone models, read from YAML tables (built-in or the user's own file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from hepanav.core.errors import InputError
from hepanav.core.validation import first_error, parse_yaml, read_user_text
from hepanav.planning.schema import Device


def _parse(text: str, source: str) -> list[Device]:
    raw = parse_yaml(text, source)
    entries = raw.get("devices") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError("expected a 'devices:' list of device entries", source)
    devices = []
    for i, entry in enumerate(entries):
        try:
            devices.append(Device.model_validate(entry))
        except ValidationError as exc:
            raise InputError(f"devices[{i}].{first_error(exc)}", source) from None
    return devices


def builtin_devices() -> dict[str, Device]:
    """All devices of the built-in tables in ``hepanav/planning/data/devices/*.yaml``."""
    found: dict[str, Device] = {}
    folder = resources.files("hepanav.planning") / "data" / "devices"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            for device in _parse(item.read_text(encoding="utf-8"), item.name):
                found[device.name] = device
    return found


def load_device(name_or_path: str | Path) -> Device:
    """A device by built-in name, or the first device of a user YAML file.

    Parameters
    ----------
    name_or_path : str or Path
        A name listed by :func:`builtin_devices`, or ``path.yaml`` / ``path.yaml:NAME``
        for a user table in the same format.

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones), unreadable or invalid file.
    """
    text = str(name_or_path)
    path_part, _, wanted = text.partition(":") if text.count(":") == 1 else (text, "", "")
    path = Path(path_part)
    if path.suffix in (".yaml", ".yml"):
        devices = _parse(read_user_text(path, "device file"), str(path))
        if not wanted:
            return devices[0]
        for device in devices:
            if device.name == wanted:
                return device
        raise InputError(f"no device named {wanted!r} in the file", path)
    known = builtin_devices()
    if text not in known:
        raise InputError(
            f"unknown device {text!r}; choose one of {', '.join(sorted(known))} "
            "or give a YAML file",
            "--device",
        )
    return known[text]
