import io

import numpy as np
import pytest
from PIL import Image

from sensorium.runtime.image_io import ImageDecodeError, load_image


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16", "1", "LA"])
def test_all_modes_become_rgb_uint8(tmp_path, mode):
    src = Image.new("RGB", (5, 4), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    path = tmp_path / f"x.{fmt.lower()}"
    src.save(path, fmt)
    arr = load_image(path)
    assert arr.shape == (4, 5, 3) and arr.dtype == np.uint8


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    a = np.full((3, 3), 65535, np.uint16)
    a[0, 0] = 32768
    path = tmp_path / "deep.png"
    Image.fromarray(a).save(path)
    arr = load_image(path)
    assert arr[1, 1, 0] == 255 and 126 <= arr[0, 0, 0] <= 129


def test_rgba_is_composited_on_black(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGBA", (2, 2), (255, 255, 255, 0)).save(path)
    assert load_image(path).max() == 0


def test_one_pixel_and_resize(tmp_path):
    path = tmp_path / "p.bmp"
    Image.new("RGB", (1, 1), (9, 8, 7)).save(path)
    assert load_image(path).tolist() == [[[9, 8, 7]]]
    assert load_image(path, size=(6, 4)).shape == (6, 4, 3)


def test_truncated_corrupt_and_non_images(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    good = _png(Image.fromarray(noise), "JPEG")
    (tmp_path / "trunc.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.png").write_text("hello, not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="trunc.jpg: truncated or corrupt"):
        load_image(tmp_path / "trunc.jpg")
    with pytest.raises(ImageDecodeError, match="not an image"):
        load_image(tmp_path / "text.png")
    with pytest.raises(ImageDecodeError, match="not an image"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageDecodeError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_huge_image_refused_from_header_without_decoding(tmp_path):
    # A 20000x20000 PNG header (400 megapixels) with almost no data: refusing it must not decode it.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b""))
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError, match="20000x20000 .400 megapixels.*over the limit"):
        load_image(path)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    arr = load_image(path)
    assert arr[0, 0, 0] > 200 and arr[0, 0, 2] < 50
