"""PACS connection settings: from a settings file and the environment, never the command line.

Sources, strongest first (pydantic-settings):

1. environment variables ``HEPANAV_PACS_<FIELD>`` (e.g. ``HEPANAV_PACS_PASSWORD``);
2. the TOML file named by ``HEPANAV_PACS_CONFIG`` (default
   ``~/.config/hepanav/pacs.toml`` when it exists);
3. the defaults below.

Keeping server, AE titles and credentials out of the arguments keeps them out of
shell history and process listings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hepanav.core.errors import InputError

DEFAULT_CONFIG = Path("~/.config/hepanav/pacs.toml")


def config_file() -> Path | None:
    """The settings file in use: ``$HEPANAV_PACS_CONFIG`` or the default, if it exists."""
    named = os.environ.get("HEPANAV_PACS_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise InputError("PACS settings file does not exist", f"HEPANAV_PACS_CONFIG={path}")
        return path
    default = DEFAULT_CONFIG.expanduser()
    return default if default.is_file() else None


class PacsSettings(BaseSettings):
    """How to reach the PACS (DICOMweb or DIMSE) and who we are to it."""

    model_config = SettingsConfigDict(env_prefix="HEPANAV_PACS_", extra="forbid")

    protocol: Literal["dicomweb", "dimse"] = Field(
        "dicomweb", description="'dicomweb' (QIDO/WADO/STOW-RS) or 'dimse' (C-FIND/C-GET/C-STORE)"
    )
    # DICOMweb
    url: str | None = Field(None, description="DICOMweb base URL, e.g. https://pacs/dicom-web")
    username: str | None = Field(None, description="HTTP basic-auth user (DICOMweb)")
    password: SecretStr | None = Field(None, description="HTTP basic-auth password (DICOMweb)")
    # DIMSE
    host: str | None = Field(None, description="DIMSE host name or address")
    port: int | None = Field(None, ge=1, le=65535, description="DIMSE port")
    called_ae: str = Field("ORTHANC", max_length=16, description="the PACS's AE title")
    calling_ae: str = Field("HEPANAV", max_length=16, description="our AE title")
    retrieve: Literal["get", "move"] = Field(
        "get", description="DIMSE retrieval: C-GET, or C-MOVE to our own storage SCP"
    )
    move_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="port of our storage SCP for C-MOVE (0: any free port; "
        "the PACS must know calling_ae at that port)",
    )
    # TLS (both protocols)
    tls: bool = Field(False, description="use TLS (https for DICOMweb, TLS association for DIMSE)")
    ca_file: Path | None = Field(None, description="CA bundle to verify the server (PEM)")
    cert_file: Path | None = Field(None, description="client certificate (PEM), mutual TLS")
    key_file: Path | None = Field(None, description="client key (PEM), mutual TLS")
    timeout_s: float = Field(30.0, gt=0, description="network timeout, s")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def where(self) -> str:
        """The server as text for messages (no credentials)."""
        if self.protocol == "dicomweb":
            return f"DICOMweb {self.url}"
        return f"DIMSE {self.called_ae}@{self.host}:{self.port}"

    def check(self) -> None:
        """Raise ``InputError`` for settings that cannot work (names the setting)."""
        if self.protocol == "dicomweb":
            if not self.url:
                raise InputError("no DICOMweb URL configured", "HEPANAV_PACS_URL")
            if self.tls and not self.url.startswith("https://"):
                raise InputError("tls is on but the URL is not https://", "HEPANAV_PACS_URL")
        else:
            if not self.host or not self.port:
                raise InputError("no DIMSE host/port configured", "HEPANAV_PACS_HOST/PORT")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise InputError("file does not exist", f"HEPANAV_PACS_{name.upper()}={path}")
        if (self.cert_file is None) != (self.key_file is None):
            raise InputError(
                "give both cert_file and key_file for mutual TLS", "HEPANAV_PACS_CERT_FILE"
            )


def load_settings() -> PacsSettings:
    """Settings from file + environment, checked; a bad value is one ``InputError`` line."""
    from pydantic import ValidationError

    try:
        settings = PacsSettings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError(err["msg"], f"PACS setting {field}") from None
    settings.check()
    return settings
