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
        raise Invalid("The uploaded file is empty; choose a PNG, JPG or GIF banner.")
    if len(data) > MAX_BYTES:
        raise Invalid(
            f"The banner is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB. "
            "Export it smaller (a 600 × 200 px banner is usually under 100 KB)."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Invalid(
                "This file is not a PNG, JPG or GIF image (whatever its name says); "
                "upload a banner in one of those formats."
            ) from None
        except Exception:
            raise Invalid("This image file is damaged and can't be read; export it again.") from None
    width, height = img.size
    if width > MAX_WIDTH or height > MAX_HEIGHT or width * height > MAX_PIXELS:
        raise Invalid(
            f"The banner is {width} × {height} px; the limit is {MAX_WIDTH} × {MAX_HEIGHT} px "
            f"({MAX_PIXELS // 1_000_000} megapixels). Banners show at 600 px wide at most."
        )
    if width < 20 or height < 10:
        raise Invalid(f"The banner is only {width} × {height} px; that is too small to be seen.")
    frames = getattr(img, "n_frames", 1)  # counted from the frame headers, without decoding
    if frames > MAX_FRAMES or frames * width * height > MAX_DECODED_PIXELS:
        raise Invalid(
            f"The animated banner has {frames} frames of {width} × {height} px; the limit is {MAX_FRAMES} "
            f"frames and {MAX_DECODED_PIXELS // 1_000_000} megapixels in all. Shorten the animation."
        )
    try:
        img.load()
        if getattr(img, "is_animated", False):
            for frame in range(1, frames):
                img.seek(frame)
                img.load()
    except Exception:
        raise Invalid("This image file is truncated or damaged (it can't be fully decoded); export it again.") from None
    assert img.format is not None  # Image.open read it as one of FORMATS
    return CheckedImage(ext=FORMATS[img.format], width=width, height=height, size=len(data))
