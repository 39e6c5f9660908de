"""An article's image, served by the app itself (comms' article pages, the employees' share center): fetched
once through the article fetcher (its address policy, a 5 MB limit, image types only), checked to be an image
by Pillow, cached in the data directory under a name derived from its URL. No page makes the browser load
another host's image (no hotlinking, no referrer leak)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse, Response
from PIL import Image, UnidentifiedImageError

from newsletter.articles import FetchFailed, fetch
from service.errors import AppError
from service.settings import Settings

log = logging.getLogger(__name__)

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


def image_response(settings: Settings, article_id: int, image_url: str | None, *, download: bool) -> Response:
    """The image as a response (404 when there is none, or it cannot be fetched or is not an image)."""
    if not image_url:
        return Response(status_code=404)
    try:
        path, content_type = cached_image(settings, image_url)
    except AppError as exc:
        log.info("newsletter.article.image_unavailable", extra={"article_id": article_id, "reason": exc.message})
        return Response(status_code=404)
    headers = {"cache-control": "private, max-age=86400"}
    if download:
        headers["content-disposition"] = f'attachment; filename="article-{article_id}.{path.suffix.lstrip(".")}"'
    return FileResponse(path, media_type=content_type, headers=headers)
