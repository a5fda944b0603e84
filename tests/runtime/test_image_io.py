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


def test_decoding_cost_is_checked_from_the_header(tmp_path):
    """A 10000x10000 RGBA PNG is a few hundred KB on disk and 800 MB to decode: refused before decoding."""
    from sensorium.runtime.image_io import MAX_DECODE_BYTES, decode_cost

    big = tmp_path / "big.png"
    Image.new("RGBA", (10000, 10000)).save(big, optimize=False, compress_level=9)
    assert big.stat().st_size < 2 * 2**20 and decode_cost("RGBA", 10000, 10000) > MAX_DECODE_BYTES
    with pytest.raises(ImageDecodeError, match=r"big.png: decoding this 10000x10000 RGBA image takes 763 MiB, over"):
        load_image(big)
    small = tmp_path / "small.png"
    Image.new("RGBA", (300, 200), (10, 20, 30, 128)).save(small)
    with pytest.raises(ImageDecodeError, match="SENSORIUM_MAX_IMAGE_BYTES"):
        load_image(small, max_bytes=1000)
    assert load_image(small).shape == (200, 300, 3)


def test_concurrent_decodes_share_one_budget():
    import threading
    import time

    from sensorium.runtime.image_io import _DecodeBudget

    budget, inside, peak = _DecodeBudget(), [0], [0]
    lock = threading.Lock()

    def work(cost: int) -> None:
        with budget.hold(cost, 100):
            with lock:
                inside[0] += cost
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= cost

    threads = [threading.Thread(target=work, args=(c,)) for c in (60, 60, 30, 90, 10, 40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=10)
    assert peak[0] <= 100 and not any(th.is_alive() for th in threads)


def test_large_16_bit_images_in_a_thread_pool_stay_within_memory(tmp_path):
    """Four 16-bit 7000x7000 PNGs decoded by 4 threads: the old float64 conversion peaked at several GB."""
    script = f"""
import resource, numpy as np
from concurrent.futures import ThreadPoolExecutor
from PIL import Image
from sensorium.runtime.image_io import load_image
paths = []
for i in range(4):
    a = (np.arange(7000, dtype=np.uint32)[None, :] * (i + 1) * 9 % 65536).astype(np.uint16).repeat(7000, axis=0)
    p = "{tmp_path}/g%d.png" % i
    Image.fromarray(a, "I;16").save(p, compress_level=1)
    paths.append(p)
del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with ThreadPoolExecutor(4) as pool:
    out = list(pool.map(lambda p: load_image(p, size=(28, 28)), paths))
assert all(o.shape == (28, 28, 3) for o in out)
import PIL
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(PIL.__version__, Image.open(paths[0]).mode, before // 1024, peak // 1024)
"""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the peak over what writing the files took, in MB: the decode budget is 512 MiB (it was over 1,000 MB
    # with float64 conversions)
    before, peak = map(int, proc.stdout.split()[-2:])
    assert peak - before < 700, proc.stdout
