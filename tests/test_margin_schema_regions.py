"""margin.json's short and residual regions share their location/direction fields through
one base model (``SurfaceRegion``); the JSON schema (field names, types, required,
defaults) and the JSON written are those of the two separate models before (the
expected values below were generated from main at 48d3aad)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from hepanav.margin.schema import MarginResult, ResidualRegion, ShortRegion, SurfaceRegion

_NUM = {"type": "number"}
_VEC3 = {"maxItems": 3, "minItems": 3, "prefixItems": [_NUM, _NUM, _NUM], "type": "array"}
_SHARED = {
    "centroid_lps_mm": _VEC3,
    "area_mm2": _NUM,
    "min_margin_mm": _NUM,
    "direction_lps": _VEC3,
    "lesion": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
    "lesion_centroid_lps_mm": {"anyOf": [_VEC3, {"type": "null"}], "default": None},
    "direction": {"type": "string"},
}
BEFORE = {
    ShortRegion: (
        _SHARED,
        ["centroid_lps_mm", "area_mm2", "min_margin_mm", "direction_lps", "direction"],
    ),
    ResidualRegion: (
        {**_SHARED, "volume_ml": _NUM},
        ["centroid_lps_mm", "area_mm2", "volume_ml", "min_margin_mm", "direction_lps", "direction"],
    ),  # fmt: skip
}
# margin.json's key order of each region before the shared base
KEYS = {
    ShortRegion: list(_SHARED),
    ResidualRegion: ["centroid_lps_mm", "area_mm2", "volume_ml", "min_margin_mm",
                     "direction_lps", "lesion", "lesion_centroid_lps_mm", "direction"],
}  # fmt: skip


def _bare(schema: dict) -> dict:
    """Field schemas without the human-readable title/description."""
    return {
        name: {k: v for k, v in field.items() if k not in ("title", "description")}
        for name, field in schema["properties"].items()
    }


@pytest.mark.parametrize("model", [ShortRegion, ResidualRegion])
@pytest.mark.parametrize("mode", ["validation", "serialization"])
def test_region_schema_is_unchanged(model, mode):
    properties, required = BEFORE[model]
    schema = model.model_json_schema(mode=mode)
    assert _bare(schema) == properties
    assert sorted(schema["required"]) == sorted(required)
    assert schema["additionalProperties"] is False  # unknown fields still refused
    assert schema["title"] == model.__name__
    for field in schema["properties"].values():
        assert field["description"]  # every field still documented


def test_shared_fields_are_defined_once():
    assert issubclass(ShortRegion, SurfaceRegion) and issubclass(ResidualRegion, SurfaceRegion)
    for name in ("direction_lps", "direction", "lesion", "lesion_centroid_lps_mm"):
        assert name in SurfaceRegion.model_fields
        for model in (ShortRegion, ResidualRegion):  # inherited, not redeclared
            assert name not in model.__dict__.get("__annotations__", {})
            assert repr(model.model_fields[name]) == repr(SurfaceRegion.model_fields[name])
    assert set(ResidualRegion.model_fields) - set(SurfaceRegion.model_fields) == {"volume_ml"}
    assert set(ShortRegion.model_fields) == set(SurfaceRegion.model_fields)


def test_margin_json_regions_are_written_as_before():
    """Same keys in the same order, same values, in a model and nested in a list (as
    MarginResult holds them); and the regions MarginResult references are these."""
    common = dict(
        centroid_lps_mm=(1.5, -2.0, 30.25),
        area_mm2=12.5,
        min_margin_mm=-1.25,
        direction_lps=(0.6, 0.0, 0.8),
        lesion=2,
        lesion_centroid_lps_mm=(0.0, -2.0, 28.0),
        direction="left-superior",
    )
    short = ShortRegion(**common)
    residual = ResidualRegion(**common, volume_ml=0.125)

    class Holder(BaseModel):
        short_regions: list[ShortRegion]
        residual_regions: list[ResidualRegion]

    dumped = json.loads(
        Holder(short_regions=[short], residual_regions=[residual]).model_dump_json()
    )
    assert list(dumped["short_regions"][0]) == KEYS[ShortRegion]
    assert list(dumped["residual_regions"][0]) == KEYS[ResidualRegion]
    assert list(residual.model_dump()) == KEYS[ResidualRegion]
    assert dumped["residual_regions"][0] == {
        **json.loads(short.model_dump_json()),
        "volume_ml": 0.125,
    }
    assert dumped["short_regions"][0]["centroid_lps_mm"] == [1.5, -2.0, 30.25]
    # round trip: what margin.json holds loads back into the same region
    assert ResidualRegion.model_validate(dumped["residual_regions"][0]) == residual
    fields = MarginResult.model_fields
    assert fields["short_regions"].annotation == list[ShortRegion]
    assert fields["residual_regions"].annotation == list[ResidualRegion]
