"""Safe image decoding for untrusted files, without TensorFlow (the edge runner uses it too).

Every image comes out as RGB uint8 (H, W, 3): grayscale, palette, RGBA/LA (composited on black),
16-bit and 32-bit integer, float and CMYK images are converted; EXIF orientation is applied; animated
files give their first frame. Oversized images are refused from their header, before any pixel is
decoded, so memory stays bounded.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from sensorium.runtime.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = int(os.environ.get("SENSORIUM_MAX_IMAGE_PIXELS", 100_000_000))


class ImageDecodeError(InputError):
    """A file that is not a decodable image, or one too large to decode."""


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes into RGB uint8 (H, W, 3).

    `size=(height, width)` also resizes (bilinear), so a large photo is shrunk right after decoding.
    Raises ImageDecodeError with one line naming the file and the cause.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    from sensorium.runtime.paths import open_input

    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    fp = (io.BytesIO(source) if isinstance(source, (bytes, bytearray))
          else open_input(source, folder="not an image", error=ImageDecodeError))
    with fp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None  # we apply our own limit from the header below
                try:
                    im = Image.open(fp)
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
        except UnidentifiedImageError:
            raise ImageDecodeError(f"{name}: not an image (unrecognised format)") from None
        except Exception as exc:  # PIL raises many types for broken headers
            raise ImageDecodeError(f"{name}: corrupt image header ({_one_line(exc)})") from None
        width, height = im.size
        if width < 1 or height < 1:
            raise ImageDecodeError(f"{name}: image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"{name}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
                f"limit of {max_pixels / 1e6:.0f} megapixels; downscale it first "
                "(or raise SENSORIUM_MAX_IMAGE_PIXELS)"
            )
        try:
            if size is not None and im.format == "JPEG":
                im.draft("RGB", (size[1] * 2, size[0] * 2))  # decode big JPEGs at reduced scale
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            rgb = _to_rgb(im)
            if size is not None and rgb.size != (size[1], size[0]):
                rgb = rgb.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(rgb, dtype=np.uint8)
        except ImageDecodeError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(f"{name}: truncated or corrupt image data ({_one_line(exc)})") from None
        except MemoryError:
            raise ImageDecodeError(f"{name}: not enough memory to decode {width}x{height} pixels") from None
    return arr.reshape(arr.shape[0], arr.shape[1], 3)


def image_from_array(pixels: np.ndarray, *, size: tuple[int, int] | None = None,
                     name: str = "<array>") -> np.ndarray:
    """An image given as pixels -> RGB uint8 (H, W, 3), resized (bilinear) to `size=(height, width)`.

    Takes uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha composited on black)."""
    from PIL import Image

    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise ImageDecodeError(f"{name}: expected uint8 pixels, got {a.dtype} (convert with "
                               "np.clip(x, 0, 255).astype(np.uint8))")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise ImageDecodeError(f"{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape "
                               f"{a.shape}")
    if a.shape[0] * a.shape[1] > DEFAULT_MAX_PIXELS:
        raise ImageDecodeError(f"{name}: {a.shape[1]}x{a.shape[0]} pixels is over the limit of "
                               f"{DEFAULT_MAX_PIXELS / 1e6:.0f} megapixels")
    im = _to_rgb(Image.fromarray(a))
    if size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).reshape(im.size[1], im.size[0], 3)


def _to_rgb(im):
    """Any PIL mode -> RGB, with 16-bit / float data scaled to 8 bits and alpha composited on black."""
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a8 = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a8, "L").convert("RGB")
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        hi = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        a8 = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a8, "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    return im.convert("RGB")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
