"""Ablation device zone models, read from YAML tables (built-in or the user's own file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from hepanav.core.errors import InputError
from hepanav.core.validation import first_error, parse_yaml, read_user_text
from hepanav.planning.schema import Device

# Plausibility floors of a microwave / RF device table (values below them are units slips,
# refused in one line; reasoning in docs/planning.md, "Built-in devices"):
#: Smallest manufacturer-chart zone length and width, mm. Chart zones of microwave and RF
#: devices are about 15-50 mm (the built-in tables: 27-50 mm); a zone under 10 mm could not
#: hold even a 5 mm tumour with a 5 mm margin, and 4.7 is a 4.7 cm chart typed as mm.
MIN_CHART_MM = 10.0
#: Smallest generator power, W. Microwave generators run at about 20-150 W and RF
#: generators at about 50-250 W; below 1 W is kW typed as W (0.065 for 65 W).
MIN_POWER_W = 1.0


def _check_plausible(device: Device, where: str, source: str) -> None:
    """Refuse chart sizes or power far below any microwave/RF device (units slips)."""
    for field, value in (
        ("chart_length_mm", device.chart_length_mm),
        ("chart_width_mm", device.chart_width_mm),
    ):
        if value < MIN_CHART_MM:
            raise InputError(
                f"{where}.{field}: {value:g} mm is implausible for a {device.kind} ablation "
                f"zone (charts are >= {MIN_CHART_MM:g} mm; a value in cm?)",
                source,
            )
    if device.power_w is not None and device.power_w < MIN_POWER_W:
        raise InputError(
            f"{where}.power_w: {device.power_w:g} W is implausible for a {device.kind} "
            f"generator (>= {MIN_POWER_W:g} W; a value in kW?)",
            source,
        )


def _parse(text: str, source: str) -> list[Device]:
    raw = parse_yaml(text, source)
    entries = raw.get("devices") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError("expected a 'devices:' list of device entries", source)
    devices = []
    for i, entry in enumerate(entries):
        try:
            device = Device.model_validate(entry)
        except ValidationError as exc:
            raise InputError(f"devices[{i}].{first_error(exc)}", source) from None
        _check_plausible(device, f"devices[{i}]", source)
        devices.append(device)
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
        Unknown name (the message lists the known ones), unreadable or invalid file,
        implausible values (chart length/width < ``MIN_CHART_MM`` = 10 mm, power <
        ``MIN_POWER_W`` = 1 W: units slips such as cm or kW), naming the entry and field.
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
