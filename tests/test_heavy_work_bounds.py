"""CPU-heavy work is bounded and runs off the event loop (bench/offloop.py measures the redirect meanwhile).

- an async route runs on the event loop, so only routes that do no CPU work may be async: the list is fixed;
- image decoding is bounded by frames and decoded pixels, CSV parsing by rows (bytes by the request ceiling).
"""

import asyncio
import io

import pytest
from fastapi.routing import APIRoute
from PIL import Image

from service.directory.sources import csv_file
from service.errors import Invalid
from service.models import Role
from signatures.campaigns import images

# Async endpoints, each doing only I/O that awaits (no parsing, decoding or rendering).
ASYNC_ALLOWED = {"preferences_post"}  # reads a small form; the writes are single-row updates


def _routes(routes):
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)


def test_cpu_heavy_routes_are_not_on_the_event_loop(app):
    async_routes = {r.endpoint.__name__ for r in _routes(app.routes) if asyncio.iscoroutinefunction(r.endpoint)}
    assert async_routes <= ASYNC_ALLOWED, f"async routes doing work on the event loop: {async_routes - ASYNC_ALLOWED}"


def _gif(frames: int, size=(100, 40)) -> bytes:
    imgs = []
    for i in range(frames):  # each frame differs from the previous one (Pillow merges identical frames)
        img = Image.new("L", size, color=0)
        img.putpixel((i % size[0], (i // size[0]) % size[1]), 255)
        imgs.append(img)
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=40)
    return buf.getvalue()


def test_gif_with_too_many_frames_is_refused_before_decoding():
    assert images.check_banner(_gif(images.MAX_FRAMES)).ext == "gif"
    with pytest.raises(Invalid, match=f"the limit is {images.MAX_FRAMES} frames"):
        images.check_banner(_gif(images.MAX_FRAMES + 1))


def test_gif_over_the_decoded_pixel_budget_is_refused(monkeypatch):
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 100 * 40 * 10)
    with pytest.raises(Invalid, match="megapixels in all"):
        images.check_banner(_gif(11))


def test_banner_upload_with_366_frames_is_a_422(client, tenant):
    r = client.post("/api/banners", headers=tenant.headers(Role.comms), files={"file": ("b.gif", _gif(366))})
    assert r.status_code == 422 and "frames" in r.json()["error"]["message"]


def test_csv_with_too_many_rows_is_refused(monkeypatch):
    monkeypatch.setattr(csv_file, "MAX_ROWS", 50)
    rows = "".join(f"p{i}@acme.example\n" for i in range(51))
    with pytest.raises(Invalid, match="more than 50 rows"):
        csv_file.parse_csv(("email\n" + rows).encode())
    assert len(csv_file.parse_csv(("email\n" + "".join(f"p{i}@acme.example\n" for i in range(50))).encode())) == 50


def test_csv_errors_reported_are_bounded():
    rows = "".join("not-an-email\n" for _ in range(500))
    with pytest.raises(Invalid) as caught:
        csv_file.parse_csv(("email\n" + rows).encode())
    assert "500 row(s)" in caught.value.message
    assert len(caught.value.details["errors"]) == csv_file.MAX_REPORTED_ERRORS
