"""Public, immutable assets (logos, banners, re-hosted photos) stored under their content hash.

A new image is a new URL, so no mail client or image proxy can show a stale one, and the files can be
cached for a year.
"""

import hashlib
import os
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from service.errors import NotFound
from service.settings import Settings

router = APIRouter()

CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}
NAME_RE = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif)$")


def asset_dir(settings: Settings) -> Path:
    path = settings.ensure_data_dir() / "assets"
    path.mkdir(exist_ok=True)
    return path


def store_asset(settings: Settings, data: bytes, ext: str) -> str:
    """Write once (atomically) and return the file name; the same bytes always give the same name."""
    if ext not in CONTENT_TYPES:
        raise ValueError(f"unsupported asset type {ext!r}")
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.{ext}"
    path = asset_dir(settings) / name
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return name


def asset_url(settings: Settings, name: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/assets/{name}"


@router.get("/assets/{name}", tags=["public"], include_in_schema=False)
def get_asset(name: str, request: Request):
    if not NAME_RE.match(name):
        raise NotFound("No such asset.")
    path = asset_dir(request.app.state.settings) / name
    if not path.is_file():
        raise NotFound("No such asset.")
    return FileResponse(
        path,
        media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
