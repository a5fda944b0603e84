"""Safe image decoding for untrusted files, without TensorFlow (the edge runner uses it too).

Every image comes out as RGB uint8 (H, W, 3): grayscale, palette, RGBA/LA (composited on black),
16-bit and 32-bit integer, float and CMYK images are converted; EXIF orientation is applied; animated
files give their first frame. Memory stays bounded: an image is refused from its header, before any
pixel is decoded, when it has more than `DEFAULT_MAX_PIXELS` pixels or decoding it would take more than
`MAX_DECODE_BYTES`; and all the decodes running at once in a process (the thread pools of `classify`
and of training-data loading) share one budget of `MAX_DECODE_BYTES`, so a batch of large images is
decoded a few at a time instead of all together. Conversions (16-bit, alpha) work on bounded strips.
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sensorium.runtime.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = int(os.environ.get("SENSORIUM_MAX_IMAGE_PIXELS", 100_000_000))
# What decoding one image may take (its decoded pixels plus the RGB copy), and what all the decodes
# running at once may take together: 512 MiB fits a 48-megapixel 16-bit photo or 64 megapixels of RGBA.
MAX_DECODE_BYTES = int(os.environ.get("SENSORIUM_MAX_IMAGE_BYTES", 512 * 2**20))
_STRIP_ROWS = 256  # rows converted at a time (16-bit, float and alpha images)
_BYTES_PER_BAND = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4, "1": 1}
_PIL_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-global


class _DecodeBudget:
    """Bytes of decoding in flight across threads: a decode waits until its cost fits."""

    def __init__(self) -> None:
        self._used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, cost: int, limit: int) -> Iterator[None]:
        with self._cond:
            while self._used and self._used + cost > limit:  # one decode alone always runs
                self._cond.wait()
            self._used += cost
        try:
            yield
        finally:
            with self._cond:
                self._used -= cost
                self._cond.notify_all()


_BUDGET = _DecodeBudget()


def decode_cost(mode: str, width: int, height: int, resized: bool = True) -> int:
    """Bytes that decoding an image of `mode` and size takes in Pillow: its decoded pixels (Pillow keeps
    multi-band 8-bit images at 4 bytes a pixel) plus the full-size 8-bit image a conversion makes (none
    for L and RGB; an RGB one when `resized` is False, as nothing is shrunk before the RGB result)."""
    from PIL import Image

    try:
        bands = Image.getmodebands(mode)
    except (KeyError, ValueError):
        bands = 4
    decoded = _BYTES_PER_BAND.get(mode, 1 if bands == 1 else 4)
    if mode in ("L", "RGB"):
        extra = 0 if resized or mode == "RGB" else 4
    elif mode in _BYTES_PER_BAND and mode != "1":
        extra = 1 if resized else 5  # an L image, then (unresized) its RGB copy
    else:
        extra = 4  # an RGB image (alpha composited, palette / CMYK converted)
    return width * height * (decoded + extra)


class ImageDecodeError(InputError):
    """A file that is not a decodable image, or one too large to decode."""


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               size: tuple[int, int] | None = None, max_bytes: int | None = None, min_side: int = 0) -> np.ndarray:
    """Decode a file path or encoded bytes into RGB uint8 (H, W, 3).

    `size=(height, width)` also resizes (bilinear), so a large photo is shrunk right after decoding.
    `min_side` refuses images whose width or height is smaller (read from the header).
    Raises ImageDecodeError with one line naming the file and the cause.
    """
    max_bytes = MAX_DECODE_BYTES if max_bytes is None else max_bytes
    from PIL import Image, ImageOps, UnidentifiedImageError

    from sensorium.runtime.paths import open_input

    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    fp = (io.BytesIO(source) if isinstance(source, (bytes, bytearray))
          else open_input(source, folder="not an image", error=ImageDecodeError))
    with fp:
        try:
            with warnings.catch_warnings(), _PIL_LOCK:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None  # we apply our own limits from the header below
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
        if min(width, height) < min_side:
            raise ImageDecodeError(f"{name}: image is {width}x{height} px; this model needs at least {min_side} px "
                                   "on each side")
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"{name}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
                f"limit of {max_pixels / 1e6:.0f} megapixels; downscale it first "
                "(or raise SENSORIUM_MAX_IMAGE_PIXELS)"
            )
        if size is not None and im.format == "JPEG":
            im.draft("RGB", (size[1] * 2, size[0] * 2))  # decode big JPEGs at reduced scale
        cost = decode_cost(im.mode, *im.size, resized=size is not None)
        if cost > max_bytes:
            raise ImageDecodeError(
                f"{name}: decoding this {width}x{height} {im.mode} image takes {cost / 2**20:.0f} MiB, over the "
                f"limit of {max_bytes / 2**20:.0f} MiB; downscale it first (or raise SENSORIUM_MAX_IMAGE_BYTES)")
        try:
            with _BUDGET.hold(cost, max_bytes):
                im.seek(0)
                im.load()
                im = ImageOps.exif_transpose(im) or im
                eight = _to_8bit(im)  # L or RGB, converted a strip at a time
                del im
                if size is not None and eight.size != (size[1], size[0]):
                    eight = eight.resize((size[1], size[0]), Image.BILINEAR)  # shrink before any RGB copy
                arr = np.asarray(eight.convert("RGB"), dtype=np.uint8)
        except ImageDecodeError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(f"{name}: truncated or corrupt image data ({_one_line(exc)})") from None
        except MemoryError:
            raise ImageDecodeError(f"{name}: not enough memory to decode {width}x{height} pixels") from None
    return arr.reshape(arr.shape[0], arr.shape[1], 3)


def image_from_array(pixels: np.ndarray, *, size: tuple[int, int] | None = None,
                     name: str = "<array>", min_side: int = 0) -> np.ndarray:
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
    if min(a.shape[:2]) < min_side:
        raise ImageDecodeError(f"{name}: image is {a.shape[1]}x{a.shape[0]} px; this model needs at least "
                               f"{min_side} px on each side")
    if a.shape[0] * a.shape[1] > DEFAULT_MAX_PIXELS:
        raise ImageDecodeError(f"{name}: {a.shape[1]}x{a.shape[0]} pixels is over the limit of "
                               f"{DEFAULT_MAX_PIXELS / 1e6:.0f} megapixels")
    im = _to_8bit(Image.fromarray(a)).convert("RGB")
    if size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).reshape(im.size[1], im.size[0], 3)


def _strips(im) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, pixels) of `im` a strip of `_STRIP_ROWS` rows at a time (no full-size array copy)."""
    width, height = im.size
    for top in range(0, height, _STRIP_ROWS):
        yield top, np.asarray(im.crop((0, top, width, min(height, top + _STRIP_ROWS))))


def _to_8bit(im):
    """Any Pillow mode -> an "L" or "RGB" image: 16-bit, 32-bit and float data scaled to 8 bits, alpha
    composited on black, palette / CMYK / bilevel converted. Wide modes are converted a strip at a time."""
    from PIL import Image

    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        if mode == "F":
            hi = 1.0 if im.getextrema()[1] <= 1.0 else 255.0
        else:
            hi = 65535.0 if mode.startswith("I;16") or im.getextrema()[1] > 255 else 255.0
        gray = Image.new("L", im.size)
        for top, strip in _strips(im):
            scaled = np.clip(strip.astype(np.float32) / np.float32(hi) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            gray.paste(Image.fromarray(scaled, "L"), (0, top))
        return gray
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgb = Image.new("RGB", im.size)
        for top, strip in _strips(im if mode in ("RGBA", "LA") else im.convert("RGBA")):
            if strip.ndim == 3 and strip.shape[-1] == 2:  # LA: gray and alpha
                strip = np.concatenate([strip[..., :1].repeat(3, axis=-1), strip[..., 1:]], axis=-1)
            s = strip.astype(np.uint16)  # composite on black: colour * alpha / 255
            rgb.paste(Image.fromarray(((s[..., :3] * s[..., 3:] + 127) // 255).astype(np.uint8), "RGB"), (0, top))
        return rgb
    if mode == "1":
        return im.convert("L")
    return im.convert("RGB")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
