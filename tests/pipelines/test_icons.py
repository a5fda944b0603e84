"""`sensorium data icons`: the category table, index.theme, member paths, and the whole build from small
hand-made icon-theme .debs (offline: `--from DIR`, apt's index mocked), hostile members included."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from deb_archives import ar_archive

from sensorium.pipelines.datasets import icons
from sensorium.pipelines.datasets.icons import (
    IconTheme,
    build_icons,
    category_of,
    parse_index_theme,
    plain_name,
    read_theme_deb,
    render_icon,
    safe_member_path,
    signature,
)
from sensorium.runtime.errors import DataError


# === The category table ===
@pytest.mark.parametrize("name, context, expected", [
    ("folder", "Places", "folder"),
    ("folder-music", "Places", "folder"),
    ("folder-blue-music", "Places", "folder"),
    ("user-home", "Places", "folder"),
    ("drive-harddisk-usb", "Devices", "device"),
    ("media-optical-dvd", "Devices", "device"),
    ("gnome-dev-cdrom", "Devices", "device"),
    ("gnome-dev-trash-full", "Places", None),  # a bin, not a device
    ("printer-error", "Status", "device"),
    ("video-display", "Devices", "device"),  # a device before `video-*` file types
    ("input-keyboard", "Devices", "device"),
    ("audio-x-generic", "MimeTypes", "media file"),
    ("video-x-generic", "MimeTypes", "media file"),
    ("image-png", "MimeTypes", "media file"),
    ("audio-x-generic", "Applications", None),  # file types only in MimeTypes directories
    ("text-x-python", "MimeTypes", "text file"),
    ("application-x-shellscript", "MimeTypes", "text file"),
    ("x-office-calendar", "MimeTypes", "calendar"),  # a calendar before an office document
    ("x-office-spreadsheet", "MimeTypes", "office document"),
    ("x-office-address-book", "MimeTypes", None),  # excluded: contacts, not a document
    ("application-vnd.ms-cab-compressed", "MimeTypes", "archive"),
    ("weather-showers-scattered", "Status", "weather"),
    ("face-smile-big", "Emotes", "emote"),
    ("face-smile-symbolic", "Emotes", None),
    ("mail-unread", "Status", "mail"),
    ("mail-attachment", "Actions", None),  # a paper clip
    ("mail-reply-sender", "Actions", "mail"),
    ("battery-caution", "Status", "battery"),
    ("network-wireless", "Devices", "network"),
    ("go-next", "Actions", "arrow"),
    ("firefox", "Applications", None),  # apps are never a category
    ("utilities-terminal", "Applications", None),
])
def test_category_of(name, context, expected):
    assert category_of(name, context) == expected


def test_the_category_table_is_well_formed():
    names = [c.name for c in icons.CATEGORIES]
    assert len(names) == len(set(names)) >= 8
    assert all(c.patterns and c.what for c in icons.CATEGORIES)
    assert set(icons.DEFAULT_THEMES) <= set(icons.THEMES)


def test_plain_name_drops_colour_words():
    assert plain_name("folder-blue-music") == "folder-music"
    assert plain_name("folder-red") == "folder"
    assert plain_name("folder-documents") == "folder-documents"
    assert plain_name("blue") == "blue"


def test_parse_index_theme():
    text = """[Icon Theme]
Name=Demo
Directories=48x48/places,16x16/places,48x48@2x/places

# a comment
[48x48/places]
Size=48
Context=Places
Type=Fixed

[16x16/places]
Context=Places
Size=16

[48x48@2x/places]
Size=48
Scale=2
Context=Places

[broken]
Size=big
"""
    dirs = parse_index_theme(text)
    assert [(d.path, d.size, d.context, d.scale) for d in dirs] == [
        ("48x48/places", 48, "Places", 1), ("16x16/places", 16, "Places", 1), ("48x48@2x/places", 48, "Places", 2)]


@pytest.mark.parametrize("name, expected", [
    ("./usr/share/icons/T/index.theme", "usr/share/icons/T/index.theme"),
    ("usr//share/./icons", "usr/share/icons"),
    ("./", ""),
    ("../evil.png", None),
    ("usr/share/icons/T/../../../../etc/passwd", None),
    ("/etc/passwd", None),
    ("usr\\share", None),
    ("", None),
])
def test_safe_member_path(name, expected):
    assert safe_member_path(name) == expected


# === Rendering ===
def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _drawing(seed: int, size: int = 48) -> np.ndarray:
    """A distinct RGBA drawing per seed: coloured blocks on a transparent background."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 2, (6, 6)).astype(bool)
    cells[0, 0] = cells[-1, -1] = True  # the same bounding box for every seed
    colour = rng.integers(0, 200, 3)
    image = np.zeros((6, 6, 4), np.uint8)
    image[cells] = [*colour, 255]
    return np.kron(image, np.ones((size // 6, size // 6, 1), np.uint8))


def test_render_icon_composites_onto_white_and_centres():
    rgba = np.zeros((20, 40, 4), np.uint8)
    rgba[:, :, :3] = (200, 0, 0)
    rgba[:, :, 3] = 255
    rgba[:, :5, 3] = 0  # a transparent strip
    image = render_icon(_png(rgba), "png", 64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (255, 255, 255)  # above the (40:20) drawing, scaled to 64x32 and centred
    assert tuple(image[32, 40]) == (200, 0, 0)
    assert tuple(image[32, 2]) == (255, 255, 255)  # the transparent strip shows the white background


def test_render_icon_svg_needs_a_renderer_and_refuses_bad_data():
    with pytest.raises(DataError, match="no SVG renderer"):
        render_icon(b"<svg/>", "svg", 32, svg=None)
    fake = lambda svg, px: _png(np.full((px, px, 4), 255, np.uint8))  # noqa: E731
    assert render_icon(b"<svg/>", "svg", 32, svg=fake).shape == (32, 32, 3)
    with pytest.raises(DataError, match="undecodable"):
        render_icon(b"not a png", "png", 32)
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    with pytest.raises(DataError, match="not a PNG"):
        render_icon(buf.getvalue(), "png", 32)


def test_signature_ignores_size_and_padding():
    big = render_icon(_png(_drawing(1, 48)), "png", 128)
    small = render_icon(_png(_drawing(1, 24)), "png", 128)
    other = render_icon(_png(_drawing(2, 48)), "png", 128)
    d = icons.differences(np.stack([signature(big)]), np.stack([signature(small), signature(other)]))[0]
    assert d[0] < icons.DUPLICATE_FRACTION < icons.GROUP_FRACTION < d[1]


# === Hand-made .debs ===
_ar = ar_archive


def _tar(entries: list[tuple[str, bytes | str]], compression: str = "xz") -> bytes:
    """A tar of (name, body) files and (name, "->target") symbolic links / ("name", "=>target") hard links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}", format=tarfile.GNU_FORMAT) as t:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            if isinstance(body, str) and body.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, body[2:]
                t.addfile(info)
            elif isinstance(body, str) and body.startswith("=>"):
                info.type, info.linkname = tarfile.LNKTYPE, body[2:]
                t.addfile(info)
            else:
                data = body.encode() if isinstance(body, str) else body
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb(package: str, entries: list[tuple[str, bytes | str]], version: str = "1.0-1") -> bytes:
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
    return _ar([("debian-binary", b"2.0\n"), ("control.tar.xz", _tar([("./control", control)])),
                ("data.tar.xz", _tar(entries))])


INDEX = """[Icon Theme]
Name={name}

[48x48/places]
Size=48
Context=Places

[24x24/places]
Size=24
Context=Places

[48x48/emotes]
Size=48
Context=Emotes

[24x24/emotes]
Size=24
Context=Emotes

[48x48/mimetypes]
Size=48
Context=MimeTypes

[48x48/apps]
Size=48
Context=Applications

[16x16/places]
Size=16
Context=Places

[48x48/symbolic]
Size=48
Context=Places

[48x48@2x/places]
Size=48
Scale=2
Context=Places
"""


def _theme_deb(package: str, directory: str, offset: int, hostile: bool = True) -> bytes:
    """A theme with 4 folders, 4 emotes and 4 file-type icons (each a distinct drawing), plus what must not count."""
    root = f"./usr/share/icons/{directory}/"
    png = lambda seed, size=48: _png(_drawing(offset + seed, size))  # noqa: E731
    entries: list[tuple[str, bytes | str]] = [
        ("./usr/", b""), (root + "index.theme", INDEX.format(name=directory)),
        (f"./usr/share/doc/{package}/copyright", "Format: x\n\nFiles: *\nLicense: GPL-3+\n"),
    ]
    entries = [e for e in entries if e[1] != b""]
    for i, name in enumerate(["folder", "folder-music", "folder-video", "user-home"]):
        entries.append((f"{root}48x48/places/{name}.png", png(i)))
    entries.append((f"{root}24x24/places/folder.png", png(0, 24)))  # the same drawing, smaller: a duplicate
    entries.append((f"{root}24x24/places/folder-music.png", png(50, 24)))  # redrawn for 24 px: a size variant
    entries.append((f"{root}48x48/places/folder-blue-video.png", png(2)))  # a colour variant of folder-video
    entries.append((f"{root}48x48/places/inode-directory.png", "->folder.png"))  # an alias (symbolic link)
    for i, name in enumerate(["face-smile", "face-sad", "face-cool", "face-angel"]):
        entries.append((f"{root}48x48/emotes/{name}.png", png(10 + i)))
    for i, name in enumerate(["text-x-python", "image-png", "audio-x-generic", "text-plain"]):
        entries.append((f"{root}48x48/mimetypes/{name}.png", png(20 + i)))
    entries += [
        (f"{root}48x48/apps/firefox.png", png(30)),  # an app: no category
        (f"{root}16x16/places/folder-pictures.png", png(31, 16)),  # under MIN_ICON_SIZE
        (f"{root}48x48/symbolic/folder-documents.png", png(32)),  # symbolic directory
        (f"{root}48x48@2x/places/folder-documents.png", png(33, 96)),  # HiDPI duplicate directory
        (f"{root}48x48/places/folder-white.png", _png(np.zeros((48, 48, 4), np.uint8))),  # blank on white
    ]
    if hostile:
        entries += [
            ("../../escape/folder-evil.png", png(40)),
            (f"{root}48x48/places/../../../../../../../tmp/folder-evil2.png", png(41)),
            ("/" + root[2:] + "48x48/places/folder-absolute.png", png(42)),
            (f"{root}48x48/places/folder-passwd.png", "->/etc/passwd"),
            (f"{root}48x48/places/folder-climb.png", "->../../../../../../../../etc/passwd"),
            (f"{root}48x48/places/folder-loop.png", "->folder-loop2.png"),
            (f"{root}48x48/places/folder-loop2.png", "->folder-loop.png"),
            (f"{root}48x48/places/folder-hard.png", f"=>{root[2:]}48x48/emotes/face-smile.png"),
            (f"{root}48x48/places/folder-hard-evil.png", "=>../etc/shadow"),
        ]
    return _deb(package, entries)


@pytest.fixture
def two_themes(monkeypatch):
    """Two fake themes registered in THEMES, and apt's index mocked to list whatever .deb it is asked about."""
    monkeypatch.setitem(icons.THEMES, "alpha", IconTheme("alpha", "alpha-icon-theme", "Alpha", "flat test drawings"))
    monkeypatch.setitem(icons.THEMES, "beta", IconTheme("beta", "beta-icon-theme", "Beta", "other test drawings"))
    listed: dict[str, str] = {}
    monkeypatch.setattr(icons, "_apt_sha256", lambda package, version=None: listed.get(package) and
                        (version or "", listed[package]))
    return listed


def test_read_theme_deb_keeps_only_safe_category_icons():
    theme = IconTheme("alpha", "alpha-icon-theme", "Alpha", "")
    got = read_theme_deb(_theme_deb("alpha-icon-theme", "Alpha", 0), theme)
    names = sorted((i.name, i.size) for i in got.icons)
    assert names == sorted([
        ("folder", 48), ("folder-music", 48), ("folder-video", 48), ("user-home", 48), ("folder", 24),
        ("folder-music", 24), ("folder-blue-video", 48), ("inode-directory", 48), ("folder-hard", 48),
        ("face-smile", 48), ("face-sad", 48), ("face-cool", 48), ("face-angel", 48),
        ("text-x-python", 48), ("image-png", 48), ("audio-x-generic", 48), ("text-plain", 48), ("folder-white", 48)])
    alias = next(i for i in got.icons if i.name == "inode-directory")
    assert alias.target.endswith("48x48/places/folder.png") and alias.data  # resolved inside the theme
    assert got.license == "GPL-3+"
    assert got.skipped["unsafe member path"] == 3  # ../, /../, an absolute path
    # /etc/passwd, ../../etc/passwd, the two links of a loop, the hard link to ../etc/shadow
    assert got.skipped["link outside the theme or to nothing"] == 5
    assert all(not i.name.endswith("evil") and "absolute" not in i.name for i in got.icons)


def test_read_theme_deb_refuses_what_is_not_the_theme():
    theme = IconTheme("alpha", "alpha-icon-theme", "Alpha", "")
    with pytest.raises(DataError, match="no usr/share/icons/Alpha/index.theme"):
        read_theme_deb(_deb("alpha-icon-theme", [("./usr/share/icons/Other/index.theme", "[Icon Theme]\n")]), theme)
    with pytest.raises(DataError, match="not an ar archive"):
        read_theme_deb(b"PK\x03\x04 not a deb", theme)
    with pytest.raises(DataError, match="no data.tar member"):
        read_theme_deb(_ar([("debian-binary", b"2.0\n")]), theme)
    with pytest.raises(DataError, match="unsupported member data.tar.zst"):
        read_theme_deb(_ar([("debian-binary", b"2.0\n"), ("data.tar.zst", b"x")]), theme)


def _write_debs(folder: Path, listed: dict[str, str], **kwargs) -> None:
    folder.mkdir(exist_ok=True)
    for key, directory, offset in (("alpha", "Alpha", 0), ("beta", "Beta", 100)):
        data = _theme_deb(f"{key}-icon-theme", directory, offset, **kwargs)
        (folder / f"{key}-icon-theme_1.0-1_all.deb").write_bytes(data)
        listed[f"{key}-icon-theme"] = hashlib.sha256(data).hexdigest()


def test_build_icons_from_local_debs(tmp_path, two_themes):
    debs = tmp_path / "debs"
    _write_debs(debs, two_themes)
    out = build_icons(tmp_path / "icons", themes=["alpha", "beta"], source=debs, min_per_class=4,
                      target_per_class=5, workers=2)
    meta = json.loads((out / "icons.json").read_text())
    assert meta["classes"] == ["emote", "folder"]  # 2 text files and 2 media files per theme: under 4
    alpha = meta["themes"]["alpha"]
    assert alpha["version"] == "1.0-1" and alpha["license"] == "GPL-3+"
    assert alpha["deb_sha256"] == two_themes["alpha-icon-theme"]
    assert alpha["verified"].startswith("SHA-256 matches")
    # folder: 4 names (folder-blue-video is a colour variant, inode-directory an alias, folder@24 a duplicate,
    # folder-hard a copy of face-smile that the emote category kept) + the redrawn folder-music@24
    assert meta["counts"]["alpha"]["folder"] == {"images": 5, "names": 4, "size_variants": 1, "groups": 4}
    assert meta["counts"]["alpha"]["emote"]["images"] == 4
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "alpha/folder/folder-music@24.png" in files and "alpha/folder/folder.png" in files
    assert not any("evil" in f or "absolute" in f or "white" in f or "firefox" in f for f in files)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "tmp").exists()
    with open(out / "alpha" / "images.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["group"] for r in rows if r["name"] == "folder-music"} == {"folder-music"}
    assert len(rows) == 9 and all((out / "alpha" / r["path"]).is_file() for r in rows)
    from PIL import Image

    with Image.open(out / "beta" / "emote" / "face-smile.png") as im:
        assert im.mode == "RGB" and im.size == (icons.IMAGE_SIZE, icons.IMAGE_SIZE)
        alpha = _drawing(110)[4::8, 4::8, 3]  # beta's face-smile: seed 100 + 10, one pixel per 8-px cell
        y, x = (int(v[0]) for v in np.nonzero(alpha == 0))
        centre = lambda i: int((i * 8 + 4) * icons.IMAGE_SIZE / 48)  # noqa: E731
        assert im.getpixel((centre(x), centre(y))) == (255, 255, 255)  # transparent: white
    card = (out / "ICONS.md").read_text()
    assert "| emote |" in card and "alpha-icon-theme" in card
    # a second call reuses the build; a folder that is not one is refused
    assert build_icons(out, themes=["alpha", "beta"], source=debs) == out
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(DataError, match="is not an icon benchmark"):
        build_icons(tmp_path / "busy", themes=["alpha", "beta"], source=debs)


def test_build_icons_refuses_tampered_or_wrong_packages(tmp_path, two_themes):
    debs = tmp_path / "debs"
    _write_debs(debs, two_themes, hostile=False)
    two_themes["beta-icon-theme"] = "0" * 64
    with pytest.raises(DataError, match="does not match .* apt's index .*tampered or corrupt"):
        build_icons(tmp_path / "a", themes=["alpha", "beta"], source=debs, min_per_class=4)
    assert not (tmp_path / "a").exists()
    (debs / "beta-icon-theme_1.0-1_all.deb").write_bytes(_deb("gamma", [("./x", "x")]))
    with pytest.raises(DataError, match="names package 'gamma', not beta-icon-theme"):
        build_icons(tmp_path / "b", themes=["alpha", "beta"], source=debs, min_per_class=4)
    with pytest.raises(DataError, match="nowhere: no alpha-icon-theme_\\*.deb"):
        build_icons(tmp_path / "c", themes=["alpha", "beta"], source=tmp_path / "nowhere", min_per_class=4)
    with pytest.raises(DataError, match="unknown icon theme nope"):
        build_icons(tmp_path / "d", themes=["alpha", "nope"], source=debs)
    with pytest.raises(DataError, match="at least two different themes"):
        build_icons(tmp_path / "e", themes=["alpha", "alpha"], source=debs)


def test_build_icons_needs_shared_classes(tmp_path, two_themes):
    debs = tmp_path / "debs"
    _write_debs(debs, two_themes, hostile=False)
    with pytest.raises(DataError, match="fewer than two categories reach 50 images"):
        build_icons(tmp_path / "icons", themes=["alpha", "beta"], source=debs, min_per_class=50)
    assert not (tmp_path / "icons").exists()


def test_icons_is_a_sensorium_data_builder():
    from sensorium.pipelines.datasets.registry import buildable, get_builtin

    assert "icons" in buildable()
    entry = get_builtin("icons")
    assert entry.task == "image" and not entry.needs_tensorflow
    assert entry.entry("build") is icons.build
