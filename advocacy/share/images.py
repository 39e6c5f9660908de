"""An article's image, served by the app itself: fetched once through the article fetcher (its address policy,
a 5 MB limit, image types only), checked to be an image by Pillow, cached in the data directory under a name
derived from its URL. The share center never makes the browser load another host's image."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from newsletter.articles import FetchFailed, fetch
from service.settings import Settings

MAX_IMAGE_BYTES = 5 * 1024 * 1024
TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def cache_dir(settings: Settings) -> Path:
    folder = settings.ensure_data_dir() / "share-images"
    folder.mkdir(exist_ok=True)
    return folder


def cached_image(settings: Settings, image_url: str, **fetch_kw: Any) -> tuple[Path, str]:
    """(file, content type) of the image at `image_url`, fetched on first use. Raises FetchFailed."""
    stem = hashlib.sha256(image_url.encode()).hexdigest()[:32]
    folder = cache_dir(settings)
    for ext_type, ext in TYPES.items():
        path = folder / f"{stem}.{ext}"
        if path.is_file():
            return path, ext_type
    got = fetch(image_url, accept=", ".join(TYPES), content_ok=lambda t: t in TYPES, what="image",
                max_bytes=MAX_IMAGE_BYTES, **({"allow_private": settings.fetch_allow_private} | fetch_kw))  # fmt: skip
    try:
        with Image.open(io.BytesIO(got.body)) as img:
            content_type = FORMATS.get(img.format or "")
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        content_type = None
    if content_type is None:
        raise FetchFailed("The article's image is not a PNG, JPEG, GIF or WebP image.")
    path = folder / f"{stem}.{TYPES[content_type]}"
    tmp = folder / f"{stem}.{os.getpid()}.{id(got)}.part"
    tmp.write_bytes(got.body)
    os.replace(tmp, path)  # whole or absent: a concurrent reader never sees half a file
    return path, content_type
