"""Uploads: streamed to disk with a size limit and a suffix check, never half-kept."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import UploadFile

from hepanav.core.errors import InputError
from hepanav.web.messages import upload_name


async def save_upload(
    upload: UploadFile, folder: Path, max_mb: int, suffixes: tuple[str, ...]
) -> Path:
    """Write ``upload`` to a new file in ``folder``; returns its path.

    The file gets a random name (the user's file name may carry patient data) with the
    upload's suffix. Too large, empty or of the wrong kind: ``InputError`` naming the
    upload as the page does (:func:`hepanav.web.messages.upload_name`), nothing kept.
    """
    name = upload.filename or ""
    shown = upload_name(name)
    suffix = next((s for s in suffixes if name.lower().endswith(s)), None)
    if suffix is None:
        raise InputError(f"expected a {', '.join(suffixes)} file", shown)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"upload-{secrets.token_hex(8)}{suffix}"
    tmp = folder / f".{target.name}.part"
    limit = max_mb * 2**20
    written = 0
    try:
        with open(tmp, "wb") as handle:
            while chunk := await upload.read(2**20):
                written += len(chunk)
                if written > limit:
                    raise InputError(f"is larger than the limit of {max_mb} MiB", shown)
                handle.write(chunk)
        if written == 0:
            raise InputError("is empty", shown)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
