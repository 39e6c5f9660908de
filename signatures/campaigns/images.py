"""Banner upload validation with Pillow: real type, dimensions, file size and integrity.

The name or the declared content type of an upload are never trusted: the bytes are parsed. Dimensions
are read from the header before anything is decoded (no decompression bombs), then the whole image is
decoded once so a truncated file is refused instead of being shown half-drawn in every signature.
"""

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from service.errors import Invalid
from service.sentences import N_

MAX_BYTES = 1_000_000  # a banner travels in every email's first view: keep it small
MAX_WIDTH = 2000  # 2x a 600 px display width leaves room for high-density screens
MAX_HEIGHT = 1000
MAX_PIXELS = 2_000_000
MAX_FRAMES = 100  # an animated banner of a few seconds; each frame is decoded to check it
MAX_DECODED_PIXELS = 40_000_000  # all frames together: bounds the decoding time of one upload
FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif"}


@dataclass(frozen=True)
class CheckedImage:
    ext: str  # png | jpg | gif
    width: int
    height: int
    size: int


def check_banner(data: bytes) -> CheckedImage:
    """Return the image's real type and size, or raise Invalid with a sentence saying what to fix."""
    if not data:
        raise Invalid(N_("The uploaded file is empty; choose a PNG, JPG or GIF banner."))
    if len(data) > MAX_BYTES:
        size, limit = f"{len(data) / 1e6:.1f}", f"{MAX_BYTES / 1e6:.0f}"
        raise Invalid(
            N_(
                "The banner is %(size)s MB; the limit is %(limit)s MB. Export it smaller (a 600 × 200 px banner "
                "is usually under 100 KB).",
                size=size,
                limit=limit,
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Invalid(
                N_(
                    "This file is not a PNG, JPG or GIF image (whatever its name says); "
                    "upload a banner in one of those formats."
                )
            ) from None
        except Exception:
            raise Invalid(N_("This image file is damaged and can't be read; export it again.")) from None
    width, height = img.size
    if width > MAX_WIDTH or height > MAX_HEIGHT or width * height > MAX_PIXELS:
        raise Invalid(
            N_(
                "The banner is %(width)s × %(height)s px; the limit is %(max_width)s × %(max_height)s px "
                "(%(megapixels)s megapixels). Banners show at 600 px wide at most.",
                width=width,
                height=height,
                max_width=MAX_WIDTH,
                max_height=MAX_HEIGHT,
                megapixels=MAX_PIXELS // 1_000_000,
            )
        )
    if width < 20 or height < 10:
        raise Invalid(
            N_(
                "The banner is only %(width)s × %(height)s px; that is too small to be seen.",
                width=width,
                height=height,
            )
        )
    frames = getattr(img, "n_frames", 1)  # counted from the frame headers, without decoding
    if frames > MAX_FRAMES or frames * width * height > MAX_DECODED_PIXELS:
        raise Invalid(
            N_(
                "The animated banner has %(frames)s frames of %(width)s × %(height)s px; the limit is "
                "%(max_frames)s frames and %(megapixels)s megapixels in all. Shorten the animation.",
                frames=frames,
                width=width,
                height=height,
                max_frames=MAX_FRAMES,
                megapixels=MAX_DECODED_PIXELS // 1_000_000,
            )
        )
    try:
        img.load()
        if getattr(img, "is_animated", False):
            for frame in range(1, frames):
                img.seek(frame)
                img.load()
    except Exception:
        raise Invalid(
            N_("This image file is truncated or damaged (it can't be fully decoded); export it again.")
        ) from None
    assert img.format is not None  # Image.open read it as one of FORMATS
    return CheckedImage(ext=FORMATS[img.format], width=width, height=height, size=len(data))
