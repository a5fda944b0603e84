"""`sensorium data icons`: a cross-style image benchmark from Debian's icon themes.

Icon themes follow the freedesktop naming spec, so many artists draw the same icon names (`folder-music`,
`drive-harddisk`, `weather-showers`, `face-smile`, `mail-unread` ...). Grouping those names into visual
categories (`CATEGORIES`, the table below) gives one labelled image set per theme: train on one artist's
style, test on another's. At set-up time (never while training) `build_icons`:

1. downloads each theme's `.deb` with `apt-get download` (or takes it from a folder, `--from DIR`) and
   checks it: its SHA-256 must be the one `apt-cache show` lists for that version (apt's signed indices),
   and its control file must name the package;
2. reads the icons straight out of the `.deb` (ar archive -> data.tar.xz/gz/bz2/zst is refused) with the
   capped readers of `debian_de`, in two streaming passes: the theme's `index.theme`, its symbolic links and
   its file list, then only the files that the category table wants. Nothing is extracted by its archive
   path: member paths are normalised, anything outside `usr/share/icons/<theme>/` (absolute paths, `..`,
   links pointing out of the theme) is ignored, and every size has a cap (`MAX_*` below);
3. renders each icon at `IMAGE_SIZE` px (PNG: Pillow, the shipped raster scaled to fit; SVG: `rsvg-convert`
   from Debian's librsvg2-bin, or cairosvg, at the target size), alpha composited onto white
   (`BACKGROUND`), centred on a square canvas;
4. removes near-identical icons (aliases, copies under other names, the same drawing at another size): the
   content of each image, cropped to its bounding box and scaled to 32x32 (`signature`), is compared with the
   others of its category; two that differ (by more than `PIXEL_TOLERANCE` in a channel) in under
   `DUPLICATE_FRACTION` of those pixels are one image. Colour variants that some themes ship
   (`folder-blue-music`, `folder-red-music`) count as one name;
5. picks the images: per category and theme, one image per distinct icon name (its largest size >=
   `MIN_ICON_SIZE` px), and, only where a category has fewer than `TARGET_PER_CLASS` names, the other
   sizes of its names that survived step 4 (size variants: the themes draw small sizes separately), up
   to `TARGET_PER_CLASS`; at most `MAX_PER_CLASS` per category. A category is kept only when every theme
   reaches `MIN_PER_CLASS` images in it;
6. writes

       OUT/<theme>/<category>/<icon-name>.png          the largest size of a name
       OUT/<theme>/<category>/<icon-name>@<px>.png     a size variant (px: the theme's directory size)
       OUT/<theme>/images.csv                          path,label,name,size,group,source: a manifest
       OUT/icons.json                                  themes, package versions, SHA-256 of the .debs,
                                                       the category table, counts per class, what was dropped
       OUT/ICONS.md                                    the card

`group` in images.csv ties together the images that must stay on one side of a split: every size of a name,
and icons that differ in under `GROUP_FRACTION` of their signature (the same drawing with another small
emblem or label under different names). A folder of one
theme is ordinary class-folder data (`sensorium train image --data OUT/oxygen`); its random 80/10/10 split
does not know the groups, so a study that holds out part of a theme splits by `group` instead
(tests/benchmarks/icon_transfer.py). Images of one theme that are near-identical to an image of another
theme (a theme copying another) are dropped from both and counted in icons.json.
"""
from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import logging
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.datasets.debian_de import (
    _DECOMPRESSORS,
    _STREAM_ERRORS,
    _BoundedTarInfo,
    _CappedReader,
    ar_members,
)
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

ICONS_VERSION = 1
MANIFEST_FILE, CARD_NAME, IMAGES_FILE = "icons.json", "ICONS.md", "images.csv"
IMAGE_SIZE = 128  # px of every written image (square)
BACKGROUND = (255, 255, 255)  # transparent parts are composited onto white
MIN_ICON_SIZE = 22  # theme directories of smaller nominal sizes (8, 16 px) are not used
MIN_PER_CLASS = 50  # a category is kept only if every theme has this many images in it
TARGET_PER_CLASS = 60  # size variants are added only while a category has fewer images than this
MAX_PER_CLASS = 150  # images per category and theme at most (distinct names first)
SIGNATURE_SIDE = 32  # the content signature: the icon cropped to its bounding box, scaled to 32x32 RGB
PIXEL_TOLERANCE = 16  # signature pixels differing by more than this (0-255, in any channel) count as different
DUPLICATE_FRACTION = 0.02  # under this fraction of different pixels: the same image (kept once per theme)
GROUP_FRACTION = 0.06  # under this: the same drawing with a small change (a label, an emblem): one `group`
BLANK_FRACTION = 0.02  # an icon that changes fewer than this fraction of the canvas (white-on-white) is dropped

# Caps on what a package may make us read (the real themes: Papirus 23 MB .deb, 116,000 entries, 270 MB).
MAX_DEB_BYTES = 256 * 2**20  # one .deb
MAX_DATA_BYTES = 2 * 2**30  # its data.tar decompressed (streamed; bounds time, not memory)
MAX_MEMBERS = 500_000  # entries of one data.tar
MAX_INDEX_THEME_BYTES = 2**20  # an index.theme file (and the start of the package's copyright file read)
MAX_ICON_BYTES = 4 * 2**20  # one icon file (real ones: a few KB to ~300 KB)
MAX_WANTED_BYTES = 1024 * 2**20  # the icon files kept in memory for one theme, all together
MAX_ICON_PIXELS = 2048 * 2048  # a PNG's declared size
MAX_LINK_HOPS = 16
RENDER_TIMEOUT_S = 30
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")  # an icon name we write as a file name


# === Themes ===
@dataclass(frozen=True)
class IconTheme:
    key: str  # its folder in OUT
    package: str  # the Debian package
    directory: str  # usr/share/icons/<directory>
    style: str  # who drew it, and how it looks

    @property
    def root(self) -> str:
        return f"usr/share/icons/{self.directory}/"


THEMES: dict[str, IconTheme] = {t.key: t for t in (
    IconTheme("oxygen", "oxygen-icon-theme", "oxygen",
              "Oxygen (KDE 4, 2007-; Nuno Pinheiro, David Vignoni, David Miller, Johann Ollivier Lapeyre, Kenneth "
              "Wimer, Riccardo Iaconelli): glossy, shaded, photo-like, PNG at 8-256 px"),
    IconTheme("papirus", "papirus-icon-theme", "Papirus",
              "Papirus (2016-; Alexey Varfolomeev, Sergei Eremenko and others): flat, material-style, SVG per size"),
    IconTheme("numix", "numix-icon-theme", "Numix",
              "Numix (2013-; the Numix project): flat, SVG per size"),
    IconTheme("breeze", "breeze-icon-theme", "breeze",
              "Breeze (KDE Plasma 5, 2014-; the KDE Visual Design Group): flat, SVG per size, small sizes "
              "monochrome"),
    IconTheme("gnome", "gnome-icon-theme", "gnome",
              "GNOME 2/3 legacy (Tango style; Jakub Steiner, Lapo Calamandrei and others): shaded, PNG"),
    IconTheme("elementary-xfce", "elementary-xfce-icon-theme", "elementary-xfce",
              "elementary-xfce (after Daniel Fore's elementary): soft gradients, PNG"),
    IconTheme("faenza", "faenza-icon-theme", "Faenza", "Faenza (2010-; Matthieu James): glossy, square, PNG"),
)}
# The two themes that share the most categories (8 at 50+ images; with Papirus or Breeze instead of Numix, 7):
# glossy, shaded KDE 4 drawings against flat ones.
DEFAULT_THEMES = ("oxygen", "numix")


# === Categories ===
@dataclass(frozen=True)
class IconCategory:
    """A visual category: the icon names it takes (fnmatch globs) but those of `exclude`, optionally only in theme
    directories of one index.theme Context."""

    name: str
    patterns: tuple[str, ...]
    context: str | None = None  # e.g. "MimeTypes": only icons of theme directories of that Context
    what: str = ""
    exclude: tuple[str, ...] = ()  # names the patterns take that are not drawn as this category (a check mark)

    def matches(self, name: str, context: str | None) -> bool:
        if self.context is not None and context is not None and context.lower() != self.context.lower():
            return False
        return (any(fnmatch.fnmatchcase(name, p) for p in self.patterns)
                and not any(fnmatch.fnmatchcase(name, p) for p in self.exclude))


# Order matters: an icon name belongs to the first category that matches it (`video-display` is a device
# before `video-*` can be a file type; file types are looked for in the MimeTypes directories only). Names that
# match none are not used. Symbolic icons (`*-symbolic`) never count.
_DEVICE = (
    # storage
    "drive-*", "media-optical*", "media-floppy*", "media-flash*", "media-removable*", "media-tape*", "media-zip*",
    "media-cdrom*", "media-dvd*", "media-memory*", "harddisk*", "gnome-dev-harddisk*", "gnome-dev-cdrom*",
    "gnome-dev-dvd*", "gnome-dev-disc*", "gnome-dev-floppy*", "gnome-dev-removable*", "gnome-dev-media*",
    "gnome-dev-memory*", "gnome-dev-zipdisk*", "gnome-dev-jazdisk*", "gnome-dev-ipod*", "gnome-dev-printer*",
    "gnome-dev-keyboard*", "gnome-dev-mouse*", "gnome-dev-computer*",
    # printers and scanners
    "printer*", "document-print*", "print*", "scanner*",
    # input, sound, display and mobile hardware
    "input-*", "keyboard*", "mouse*", "audio-card*", "audio-speakers*", "audio-headphones*", "audio-headset*",
    "audio-input-*", "microphone*", "video-display*", "display*", "monitor*", "computer*", "phone*", "smartphone*",
    "pda*", "multimedia-player*", "camera-*", "camera", "modem*")
CATEGORIES: tuple[IconCategory, ...] = (
    IconCategory("weather", ("weather-*",), what="sky conditions: sun, moon, clouds, rain, snow, storm, fog"),
    IconCategory("emote", ("face-*", "emote-*", "emoticon*"), what="smileys: faces with expressions"),
    IconCategory("calendar", ("x-office-calendar*", "calendar*", "appointment*", "view-calendar*", "office-calendar*",
                              "text-calendar"), what="calendar pages, dates and appointments"),
    IconCategory("battery", ("battery*", "gpm-battery*", "xfce4-battery*", "gpm-primary*", "gpm-ups*",
                             "notification-battery*"), what="batteries and charge levels"),
    IconCategory("device", _DEVICE, what="drives and devices: hard disks, optical discs, floppies, flash drives, "
                 "printers, scanners, keyboards, mice, sound cards, speakers, headphones, microphones, displays, "
                 "computers, phones, cameras"),
    IconCategory("folder", ("folder", "folder-*", "inode-directory", "user-home", "user-desktop", "user-bookmarks"),
                 what="folders, plain or with an emblem (music, pictures, home, remote ...)"),
    IconCategory("network", ("network-*", "nm-*", "gnome-netstatus-*"),
                 what="networks: wired and wireless connections, signal strength, servers, workgroups"),
    IconCategory("mail", ("mail", "mail-*", "internet-mail", "stock_mail*", "evolution-mail"),
                 what="e-mail: envelopes, mailboxes, sending and receiving, read and unread",
                 # drawn without an envelope: a cabinet, a paper clip, a bin, a stamp, arrows, a stop sign, a
                 # check mark, flags, a clipboard, a notepad
                 exclude=("mail-archive", "mail-attachment", "mail-deleted", "mail-send", "mail-send-receive",
                          "mail-thread-*", "stock_mail-filters-apply", "stock_mail-flag*", "mail-mark-task",
                          "mail-tagged")),
    IconCategory("user", ("user-*", "avatar-default*", "system-users", "stock_person*", "im-user*"),
                 what="people: users, avatars, presence states"),
    IconCategory("lock", ("system-lock*", "object-locked", "object-unlocked", "changes-allow*", "changes-prevent*",
                          "emblem-readonly", "emblem-locked", "lock*", "security-*", "dialog-password"),
                 what="padlocks and security"),
    IconCategory("media control", ("media-playback-*", "media-skip-*", "media-seek-*", "media-record*",
                                   "media-eject*"), what="play, pause, stop, skip, record and eject buttons"),
    IconCategory("arrow", ("go-*", "arrow-*"), what="navigation arrows (up, down, next, previous, first, last)"),
    IconCategory("zoom", ("zoom-*", "view-zoom*"), what="magnifying glasses"),
    IconCategory("media file", ("audio-*", "video-*", "image-*", "application-ogg", "application-x-ogg",
                                "application-x-matroska", "application-vnd.rn-realmedia*", "application-x-krita",
                                "application-postscript", "application-illustrator"), context="MimeTypes",
                 what="file-type icons of sound, video and picture files"),
    IconCategory("text file", ("text-*", "application-x-shellscript", "application-x-perl", "application-x-php",
                               "application-x-ruby", "application-javascript", "application-json", "application-xml",
                               "application-x-python*", "application-x-java*"), context="MimeTypes",
                 what="file-type icons of plain text and source code"),
    IconCategory("archive", ("package-x-*", "application-x-*compressed*", "application-x-tar*", "application-x-archive",
                             "application-x-rar", "application-zip", "application-x-zip*", "application-x-7z*",
                             "application-x-lzma", "application-x-xz", "application-x-bzip*", "application-gzip",
                             "application-x-gzip", "application-x-lha", "application-x-lzh*", "application-x-cpio",
                             "application-x-arj", "application-vnd.rar", "application-x-cab*", "application-x-lz*",
                             "application-x-compress", "application-vnd.ms-cab*"), context="MimeTypes",
                 what="file-type icons of compressed archives"),
    IconCategory("font", ("font-*", "application-x-font*", "application-vnd.ms-fontobject", "application-font*"),
                 context="MimeTypes", what="file-type icons of fonts"),
    IconCategory("office document", ("x-office-*", "application-vnd.oasis.opendocument.*",
                                     "application-vnd.openxmlformats*", "application-vnd.ms-*", "application-msword*",
                                     "application-vnd.sun.xml.*", "application-vnd.stardivision*",
                                     "application-x-abiword", "application-x-kword", "application-x-kspread",
                                     "application-x-kpresenter", "application-rtf", "application-pdf",
                                     "application-x-gnumeric", "application-vnd.lotus*", "application-vnd.wordperfect",
                                     "application-x-mswrite"), context="MimeTypes",
                 what="file-type icons of word-processor, spreadsheet, presentation and PDF documents",
                 exclude=("x-office-address-book", "x-office-contact", "application-vnd.stardivision.mail")),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
# Themes ship one drawing in several colours under names with a colour word (Papirus: folder-blue-music,
# folder-red-music ...): such names count as one name, the one without a colour word if the theme has it.
COLOUR_WORDS = frozenset({
    "adwaita", "black", "blue", "bluegrey", "breeze", "brown", "carmine", "cyan", "darkcyan", "deeporange", "green",
    "grey", "gray", "indigo", "magenta", "nordic", "orange", "palebrown", "paleorange", "pink", "purple", "red",
    "teal", "violet", "white", "yaru", "yellow"})


def category_of(name: str, context: str | None = None,
                categories: Iterable[IconCategory] = CATEGORIES) -> str | None:
    """The category of icon `name` (first match of the table) in a theme directory of `context`; None if none."""
    if name.endswith("-symbolic"):
        return None
    for cat in categories:
        if cat.matches(name, context):
            return cat.name
    return None


def plain_name(name: str) -> str:
    """`name` without colour words: `folder-blue-music` -> `folder-music` (colour variants count as one name)."""
    parts = [p for p in name.split("-") if p.lower() not in COLOUR_WORDS]
    return "-".join(parts) or name


# === Reading a theme out of its .deb ===
@dataclass(frozen=True)
class ThemeDir:
    path: str  # relative to the theme root, e.g. "64x64/places"
    size: int
    context: str
    scale: int = 1


@dataclass
class IconFile:
    """One icon of a theme directory, its content resolved through links."""

    name: str
    size: int
    context: str
    category: str
    path: str  # the archive path of the directory entry
    target: str  # the archive path of the regular file it resolves to
    data: bytes = b""


@dataclass
class ThemeContents:
    theme: IconTheme
    package: str = ""
    version: str = ""
    license: str = "see the package's copyright file"
    directories: list[ThemeDir] = field(default_factory=list)
    icons: list[IconFile] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> count


def safe_member_path(name: str) -> str | None:
    """A tar member name as a normalised relative POSIX path ("" for the root entry); None for an absolute path, a
    `..` part, a backslash or a NUL, or no name."""
    if not name or "\x00" in name or "\\" in name:
        return None
    path = name[2:] if name.startswith("./") else name
    if path.startswith("/"):
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)  # "" for the archive's root entry "./"


def _link_target(path: str, linkname: str) -> str | None:
    """The archive path a symbolic link at `path` points to (normalised); None for an absolute target (it names
    the installed system, not this archive) or one that climbs out of the archive."""
    if not linkname or linkname.startswith("/") or "\x00" in linkname:
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), linkname))
    return None if target == ".." or target.startswith("../") or target.startswith("/") else target


def _resolve_link(path: str, links: dict[str, str | None], root: str) -> str | None:
    """Follow links from archive path `path` to a path inside `root` (None if one leaves it, loops or is too long)."""
    for _ in range(MAX_LINK_HOPS):
        if path not in links:
            return path if path.startswith(root) else None
        target = links[path]
        if target is None or not target.startswith(root):
            return None
        path = target
    return None


def _data_tars(deb: bytes) -> list[tuple[str, bytes]]:
    members = [(name, body) for name, body in ar_members(deb) if name.startswith("data.tar")]
    if not members:
        raise DataError("no data.tar member (not a Debian package)")
    for name, _ in members:
        if name not in _DECOMPRESSORS:
            raise DataError(f"unsupported member {name} (xz, gz, bz2 or uncompressed data.tar only)")
    return members


def _stream_members(deb: bytes) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str | None]]:
    """(tar, member, safe path or None) for every entry of the .deb's data.tar, streamed with caps."""
    for name, body in _data_tars(deb):
        stream = _CappedReader(_DECOMPRESSORS[name](io.BytesIO(body)), MAX_DATA_BYTES,
                               f"{name}: more than {MAX_DATA_BYTES} bytes decompressed (MAX_DATA_BYTES)")
        try:
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tar:
                for count, member in enumerate(tar, start=1):
                    if count > MAX_MEMBERS:
                        raise DataError(f"{name}: more than {MAX_MEMBERS} entries (MAX_MEMBERS)")
                    yield tar, member, safe_member_path(member.name)
        except (tarfile.TarError, *_STREAM_ERRORS) as exc:
            raise DataError(f"{name}: unreadable ({exc or type(exc).__name__})") from None


def deb_control(deb: bytes) -> dict[str, str]:
    """The fields of a .deb's control file (Package, Version, ...)."""
    for name, body in ar_members(deb):
        if not name.startswith("control.tar"):
            continue
        opener = _DECOMPRESSORS.get(name.replace("control.tar", "data.tar"))
        if opener is None:
            raise DataError(f"unsupported member {name}")
        stream = _CappedReader(opener(io.BytesIO(body)), 64 * 2**20, f"{name}: more than 64 MiB decompressed")
        try:
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tar:
                for member in tar:
                    if safe_member_path(member.name) == "control" and member.isfile():
                        text = tar.extractfile(member).read(2**20).decode("utf-8", "replace")
                        fields: dict[str, str] = {}
                        for line in text.splitlines():
                            key, sep, value = line.partition(":")
                            if sep and key and not key[0].isspace():
                                fields[key.strip()] = value.strip()
                        return fields
        except (tarfile.TarError, *_STREAM_ERRORS) as exc:
            raise DataError(f"{name}: unreadable ({exc or type(exc).__name__})") from None
    raise DataError("no control file (not a Debian package)")


def parse_index_theme(text: str) -> list[ThemeDir]:
    """The directories of an `index.theme` (freedesktop icon theme spec): path, Size, Context, Scale."""
    dirs: list[ThemeDir] = []
    section: str | None = None
    values: dict[str, str] = {}

    def flush() -> None:
        if section and section != "Icon Theme":
            size = values.get("Size", "")
            scale = values.get("Scale", "1")
            if size.isdigit() and scale.isdigit():
                dirs.append(ThemeDir(section, int(size), values.get("Context", ""), int(scale)))

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            flush()
            section, values = line[1:-1].strip(), {}
        elif "=" in line and not line.startswith("#") and section is not None:
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), value.strip())
    flush()
    return dirs


def _usable_dir(d: ThemeDir) -> bool:
    low = d.path.lower()
    return d.scale == 1 and d.size >= MIN_ICON_SIZE and "symbolic" not in low and "panel" not in low.split("/")


def read_theme_deb(deb: bytes, theme: IconTheme, categories: Iterable[IconCategory] = CATEGORIES) -> ThemeContents:
    """The category icons of `theme` in the .deb `deb` (two streaming passes; nothing is written)."""
    categories = tuple(categories)
    out = ThemeContents(theme)
    root = theme.root
    copyright_path = f"usr/share/doc/{theme.package}/copyright"
    index_text: str | None = None
    links: dict[str, str | None] = {}
    files: dict[str, int] = {}  # regular file -> size
    for tar, member, path in _stream_members(deb):
        if path is None:
            out.skipped["unsafe member path"] += 1
            continue
        if path == copyright_path and member.isfile():
            text = tar.extractfile(member).read(MAX_INDEX_THEME_BYTES).decode("utf-8", "replace")
            found = re.search(r"^License:\s*(\S.*)$", text, re.M)
            out.license = found.group(1).strip() if found else out.license
        if not path.startswith(root):  # the root entry "" included
            continue
        if member.issym():
            links[path] = _link_target(path, member.linkname)
        elif member.islnk():  # a hard link names another archive member
            links[path] = safe_member_path(member.linkname)
        elif member.isfile():
            files[path] = member.size
            if path == root + "index.theme":
                if member.size > MAX_INDEX_THEME_BYTES:
                    raise DataError(f"{path}: more than {MAX_INDEX_THEME_BYTES} bytes (MAX_INDEX_THEME_BYTES)")
                index_text = tar.extractfile(member).read(MAX_INDEX_THEME_BYTES).decode("utf-8", "replace")
    if index_text is None:
        raise DataError(f"{theme.package}: no {root}index.theme, so not the {theme.directory} icon theme")
    out.directories = parse_index_theme(index_text)
    wanted: dict[str, list[IconFile]] = defaultdict(list)
    entries = set(files) | set(links)
    for d in out.directories:
        if not _usable_dir(d):
            continue
        prefix = root + d.path.strip("/") + "/"
        for path in sorted(p for p in entries if p.startswith(prefix) and "/" not in p[len(prefix):]):
            base = path[len(prefix):]
            stem, dot, ext = base.rpartition(".")
            if not dot or ext not in ("png", "svg"):
                continue
            cat = category_of(stem, d.context, categories)
            if cat is None:
                continue
            if not _NAME_RE.match(stem):
                out.skipped["unusable icon name"] += 1
                continue
            target = _resolve_link(path, links, root)
            if target is None or target not in files or not target.endswith("." + ext):
                out.skipped["link outside the theme or to nothing"] += 1
                continue
            if files[target] > MAX_ICON_BYTES:
                out.skipped["icon file too large"] += 1
                continue
            wanted[target].append(IconFile(stem, d.size, d.context, cat, path, target))
    total = sum(files[t] for t in wanted)
    if total > MAX_WANTED_BYTES:
        raise DataError(f"{theme.package}: the wanted icons take {total} bytes, more than MAX_WANTED_BYTES")
    got: dict[str, bytes] = {}
    for tar, member, path in _stream_members(deb):
        if path in wanted and member.isfile() and path not in got:
            got[path] = tar.extractfile(member).read(MAX_ICON_BYTES + 1)
    for target, icons in wanted.items():
        data = got.get(target)
        if data is None or len(data) > MAX_ICON_BYTES:
            out.skipped["unreadable icon file"] += len(icons)
            continue
        for icon in icons:
            icon.data = data
            out.icons.append(icon)
    return out


# === Rendering ===
def svg_renderer() -> Callable[[bytes, int], bytes] | None:
    """A function SVG bytes, px -> PNG bytes: rsvg-convert (Debian's librsvg2-bin) or cairosvg; None if neither."""
    exe = shutil.which("rsvg-convert")
    if exe:
        def rsvg(svg: bytes, px: int) -> bytes:
            try:
                done = subprocess.run([exe, "-w", str(px), "-h", str(px), "-a", "-f", "png"], input=svg,
                                      capture_output=True, timeout=RENDER_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise DataError(f"rsvg-convert took more than {RENDER_TIMEOUT_S} s") from None
            if done.returncode != 0 or not done.stdout:
                raise DataError(f"rsvg-convert failed ({done.stderr.decode('utf-8', 'replace').strip()[:200]})")
            return done.stdout
        return rsvg
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        return None

    def cairo(svg: bytes, px: int) -> bytes:
        try:
            return cairosvg.svg2png(bytestring=svg, output_width=px, output_height=px, unsafe=False)
        except Exception as exc:  # cairosvg raises many kinds
            raise DataError(f"cairosvg failed ({exc})") from None
    return cairo


def render_icon(data: bytes, kind: str, px: int = IMAGE_SIZE,
                svg: Callable[[bytes, int], bytes] | None = None) -> np.ndarray:
    """An icon (PNG or SVG bytes) as an RGB uint8 (px, px, 3) image on `BACKGROUND`, scaled to fit, centred."""
    from PIL import Image

    if kind == "svg":
        if svg is None:
            raise DataError("an SVG icon and no SVG renderer: install rsvg-convert (apt-get install librsvg2-bin) "
                            "or cairosvg (pip install cairosvg)")
        data = svg(data, px)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise DataError(f"not a PNG ({im.format})")
            if im.width * im.height > MAX_ICON_PIXELS or min(im.size) < 1:
                raise DataError(f"a {im.width}x{im.height} image (MAX_ICON_PIXELS)")
            rgba = im.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"undecodable image ({exc})") from None
    scale = px / max(rgba.size)
    if rgba.size != (px, px) and scale != 1:
        size = (max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale)))
        rgba = rgba.resize(size, Image.LANCZOS if scale < 1 else Image.BICUBIC)
    canvas = Image.new("RGBA", (px, px), BACKGROUND + (255,))
    layer = Image.new("RGBA", (px, px), BACKGROUND + (0,))
    layer.paste(rgba, ((px - rgba.width) // 2, (px - rgba.height) // 2))
    canvas.alpha_composite(layer)
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def signature(image: np.ndarray, side: int = SIGNATURE_SIDE) -> np.ndarray:
    """The content of an image on the background, cropped to its bounding box, squared and scaled to side x side:
    uint8 RGB, flattened to (side * side, 3). Equal for the same drawing at another size or with other padding."""
    from PIL import Image

    mask = (np.abs(image.astype(np.int16) - np.asarray(BACKGROUND, np.int16)) > 8).any(-1)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.tile(np.asarray(BACKGROUND, np.uint8), (side * side, 1))
    crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape[:2]
    s = max(h, w)
    square = np.empty((s, s, 3), np.uint8)
    square[:] = BACKGROUND
    square[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = crop
    return np.asarray(Image.fromarray(square).resize((side, side), Image.BILINEAR), np.uint8).reshape(-1, 3)


def differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m): the fraction of signature pixels in which each of a (n, P, 3) differs from each of b (m, P, 3)."""
    a16, b16 = a.astype(np.int16), b.astype(np.int16)
    out = np.empty((len(a), len(b)), np.float32)
    for i in range(0, len(a), 16):
        out[i:i + 16] = (np.abs(a16[i:i + 16, None] - b16[None]).max(-1) > PIXEL_TOLERANCE).mean(-1)
    return out


def blank(image: np.ndarray) -> bool:
    """True when an icon barely shows on the background (a white-on-transparent panel icon, an empty file)."""
    changed = (np.abs(image.astype(np.int16) - np.asarray(BACKGROUND, np.int16)) > 24).any(-1)
    return changed.mean() < BLANK_FRACTION


# === Selection ===
@dataclass
class Candidate:
    theme: str
    category: str
    name: str
    size: int
    source: str  # the archive path of the file drawn
    image: np.ndarray
    sig: np.ndarray
    primary: bool = False
    group: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.png" if self.primary else f"{self.name}@{self.size}.png"


def _name_order(name: str) -> str:
    """A fixed, alphabet-independent order of names (so a cap keeps a spread of names, not the a-names)."""
    return hashlib.sha256(name.encode()).hexdigest()


def render_theme(contents: ThemeContents, svg: Callable[[bytes, int], bytes] | None, workers: int = 4
                 ) -> tuple[list[Candidate], Counter]:
    """Render the icons of a theme, one per (name, size) and file, colour variants reduced to one name."""
    dropped: Counter = Counter()
    by_plain: dict[tuple[str, str], set[str]] = defaultdict(set)
    for icon in contents.icons:
        by_plain[(icon.category, plain_name(icon.name))].add(icon.name)
    keep_name = {key: (key[1] if key[1] in names else min(names)) for key, names in by_plain.items()}
    chosen: dict[tuple[str, int], IconFile] = {}
    for icon in sorted(contents.icons, key=lambda i: (i.name, i.size, i.path)):
        if keep_name[(icon.category, plain_name(icon.name))] != icon.name:
            dropped["colour variant of another name"] += 1
            continue
        key = (icon.name, icon.size)
        if key in chosen:  # the same name and size in two directories (e.g. apps/ and places/): one
            dropped["same name and size twice"] += 1
            continue
        chosen[key] = icon

    def work(icon: IconFile) -> Candidate | str:
        try:
            image = render_icon(icon.data, icon.target.rpartition(".")[2], IMAGE_SIZE, svg)
        except DataError as exc:
            log.debug("%s: %s", icon.path, exc)
            return "unrenderable"
        if blank(image):
            return "blank on white"
        return Candidate(contents.theme.key, icon.category, icon.name, icon.size, icon.target, image,
                         signature(image))

    candidates: list[Candidate] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for result in pool.map(work, list(chosen.values())):
            if isinstance(result, str):
                dropped[result] += 1
            else:
                candidates.append(result)
    return candidates, dropped


def deduplicate(candidates: list[Candidate]) -> tuple[list[Candidate], int]:
    """Keep one image of each near-identical set within a theme's category (under DUPLICATE_FRACTION of different
    signature pixels), larger sizes first; a file already kept for an earlier category of the table is not used
    again. Returns (kept, number removed)."""
    order = {c: i for i, c in enumerate(CATEGORY_NAMES)}
    ranked = sorted(candidates, key=lambda c: (order.get(c.category, 99), -c.size, c.name))
    kept: list[Candidate] = []
    first_category: dict[str, str] = {}
    by_cat: dict[str, list[Candidate]] = defaultdict(list)
    for c in ranked:
        if first_category.setdefault(c.source, c.category) == c.category:  # not a file of an earlier category
            by_cat[c.category].append(c)
    for items in by_cat.values():
        sigs = np.stack([c.sig for c in items])
        close = differences(sigs, sigs) < DUPLICATE_FRACTION
        keep = np.ones(len(items), bool)
        for i in range(len(items)):
            if keep[i]:
                later = np.flatnonzero(close[i])
                keep[later[later > i]] = False
        kept += [c for c, k in zip(items, keep) if k]
    return kept, len(candidates) - len(kept)


def select(candidates: list[Candidate], *, target: int = TARGET_PER_CLASS, cap: int = MAX_PER_CLASS
           ) -> dict[str, list[Candidate]]:
    """Per category: one image per name (its largest size), then, while under `target`, size variants
    (largest first, names in turn); at most `cap`."""
    by_cat: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for c in candidates:
        by_cat[c.category][c.name].append(c)
    out: dict[str, list[Candidate]] = {}
    for cat, names in by_cat.items():
        ordered = sorted(names, key=_name_order)
        sizes = {n: sorted(names[n], key=lambda c: -c.size) for n in ordered}
        picked = []
        for n in ordered[:cap]:
            sizes[n][0].primary = True
            picked.append(sizes[n][0])
        rank = 1
        while len(picked) < min(target, cap) and any(len(v) > rank for v in sizes.values()):
            for n in ordered:
                if len(sizes[n]) > rank and len(picked) < min(target, cap):
                    picked.append(sizes[n][rank])
            rank += 1
        out[cat] = picked
    return out


def assign_groups(images: list[Candidate]) -> None:
    """Set `group` of a theme's images: connected by the same name (colour words aside) or signatures that differ
    in under GROUP_FRACTION of their pixels."""
    parent = list(range(len(images)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, c in enumerate(images):
        j = first.setdefault(plain_name(c.name), i)
        parent[find(i)] = find(j)
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(images):
        by_cat[c.category].append(i)
    for idx in by_cat.values():
        sigs = np.stack([images[i].sig for i in idx])
        close = differences(sigs, sigs) < GROUP_FRACTION
        for x, y in zip(*np.nonzero(np.triu(close, 1))):
            parent[find(idx[x])] = find(idx[y])
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(images)):
        members[find(i)].append(i)
    for idx in members.values():
        label = min(plain_name(images[k].name) for k in idx)
        for k in idx:
            images[k].group = label


# === Fetching the packages ===
@dataclass
class FetchedDeb:
    package: str
    version: str
    path: Path
    sha256: str
    size: int
    verified: str  # how the file was checked


def _apt_sha256(package: str, version: str | None = None) -> tuple[str, str] | None:
    """(version, SHA256) that apt's indices give for `package` (its candidate, or `version`); None without apt."""
    exe = shutil.which("apt-cache")
    if not exe:
        return None
    query = f"{package}={version}" if version else package
    try:
        done = subprocess.run([exe, "show", "--no-all-versions", query], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("Version", "SHA256") and key not in fields:
            fields[key] = value.strip()
    if done.returncode != 0 or "SHA256" not in fields:
        return None
    return fields.get("Version", ""), fields["SHA256"].lower()


def fetch_deb(package: str, folder: Path, *, source: Path | None = None) -> FetchedDeb:
    """The .deb of `package`: from `source` (a folder of .deb files) or `apt-get download` into `folder`,
    checked against apt's SHA-256 and its own control file."""
    if source is not None:
        found = sorted(Path(source).glob(f"{package}_*.deb"))
        if not found:
            raise DataError(f"{source}: no {package}_*.deb")
        path = found[-1]
    else:
        exe = shutil.which("apt-get")
        if not exe:
            raise DataError(f"cannot download {package}: no apt-get here; download the .deb elsewhere and pass "
                            "--from DIR")
        try:
            done = subprocess.run([exe, "download", "-q", package], cwd=folder, capture_output=True, text=True,
                                  timeout=1800)
        except subprocess.TimeoutExpired:
            raise DataError(f"apt-get download {package} took more than 30 minutes") from None
        found = sorted(folder.glob(f"{package}_*.deb"))
        if done.returncode != 0 or not found:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            raise DataError(f"apt-get download {package} failed ({lines[-1] if lines else done.returncode}); "
                            "run `apt-get update` first, or pass --from DIR")
        path = found[-1]
    size = path.stat().st_size
    if size > MAX_DEB_BYTES:
        raise DataError(f"{path}: {size} bytes, more than MAX_DEB_BYTES")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    control = deb_control(data)
    if control.get("Package") != package:
        raise DataError(f"{path}: its control file names package {control.get('Package')!r}, not {package}")
    version = control.get("Version", "")
    listed = _apt_sha256(package, version)
    if listed is not None:
        if listed[1] != sha:
            raise DataError(f"{path}: SHA-256 {sha} does not match {listed[1]} from apt's index for {package} "
                            f"{version}; refusing it (tampered or corrupt download)")
        verified = "SHA-256 matches apt's signed package index"
    else:
        log.warning("%s: apt-cache does not list %s %s, so its SHA-256 is recorded but not checked", path, package,
                    version)
        verified = "not checked (apt-cache does not list this version)"
    return FetchedDeb(package, version, path, sha, size, verified)


# === Build ===
def default_icons_dir() -> Path:
    """Where `sensorium data icons` writes: CACHE/datasets/icons-1."""
    return cache_dir("datasets", f"icons-{ICONS_VERSION}")


def build_icons(out: Path | None = None, *, themes: Iterable[str] = DEFAULT_THEMES, source: Path | None = None,
                categories: Iterable[IconCategory] = CATEGORIES, min_per_class: int = MIN_PER_CLASS,
                target_per_class: int = TARGET_PER_CLASS, max_per_class: int = MAX_PER_CLASS,
                overwrite: bool = False, workers: int = 4) -> Path:
    """Build the icon benchmark into `out` (default `default_icons_dir()`); see the module doc.

    An existing build is returned as it is unless `overwrite`. The folder appears whole or not at all."""
    out = Path(out) if out is not None else default_icons_dir()
    keys = list(themes)
    unknown = [k for k in keys if k not in THEMES]
    if unknown:
        raise DataError(f"unknown icon theme {unknown[0]}; known: {', '.join(THEMES)}")
    if len(set(keys)) < 2:
        raise DataError("a cross-style benchmark needs at least two different themes")
    if (out / MANIFEST_FILE).is_file() and not overwrite:
        log.info("the icon benchmark is already built in %s: reusing it (--force rebuilds it)", out)
        return out
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not an icon benchmark; pick another folder or pass --force")
    categories = tuple(categories)
    svg = svg_renderer()
    per_theme: dict[str, dict[str, Any]] = {}
    selected: dict[str, dict[str, list[Candidate]]] = {}
    with tempfile.TemporaryDirectory(prefix="sensorium-icons-") as tmp:
        for key in keys:
            theme = THEMES[key]
            fetched = fetch_deb(theme.package, Path(tmp), source=source)
            log.info("%s: reading %s %s (%.1f MB)", key, fetched.package, fetched.version, fetched.size / 1e6)
            contents = read_theme_deb(fetched.path.read_bytes(), theme, categories)
            candidates, dropped = render_theme(contents, svg, workers)
            unique, duplicates = deduplicate(candidates)
            names = defaultdict(set)
            for c in unique:
                names[c.category].add(c.name)
            per_theme[key] = {
                "package": fetched.package, "version": fetched.version, "deb_sha256": fetched.sha256,
                "deb_bytes": fetched.size, "verified": fetched.verified, "license": contents.license,
                "directory": theme.root, "style": theme.style,
                "icon_files": len(contents.icons), "rendered": len(candidates), "near_duplicates_removed": duplicates,
                "not_used": dict(sorted((contents.skipped + dropped).items())),
                "available": {c.name: {"names": len(names[c.name]),
                                       "images": sum(1 for u in unique if u.category == c.name)} for c in categories}}
            selected[key] = select(unique, target=target_per_class, cap=max_per_class)
    kept = [c.name for c in categories
            if all(len(selected[k].get(c.name, [])) >= min_per_class for k in keys)]
    if len(kept) < 2:
        raise DataError(f"fewer than two categories reach {min_per_class} images in every theme "
                        f"({', '.join(keys)}); nothing to build")
    cross = _drop_cross_theme_duplicates(selected, keys, kept)
    meta: dict[str, Any] = {
        "name": "icons", "version": ICONS_VERSION, "image_size": IMAGE_SIZE, "background": list(BACKGROUND),
        "svg_renderer": _renderer_version(), "min_icon_size": MIN_ICON_SIZE, "min_per_class": min_per_class,
        "target_per_class": target_per_class, "max_per_class": max_per_class,
        "signature_side": SIGNATURE_SIDE, "pixel_tolerance": PIXEL_TOLERANCE,
        "duplicate_fraction": DUPLICATE_FRACTION, "group_fraction": GROUP_FRACTION,
        "categories": [{"name": c.name, "what": c.what, "context": c.context, "patterns": list(c.patterns),
                        "kept": c.name in kept} for c in categories],
        "classes": kept, "cross_theme_duplicates_removed": cross, "themes": per_theme, "counts": {}}
    with atomic_path(out) as tmp_out:
        tmp_out.mkdir(parents=True)
        for key in keys:
            images = [c for cat in kept for c in selected[key][cat]]
            assign_groups(images)
            rows = []
            for c in images:
                rel = f"{c.category}/{c.filename}"
                target = tmp_out / key / c.category / c.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_png(target, c.image)
                rows.append({"path": rel, "label": c.category, "name": c.name, "size": c.size, "group": c.group,
                             "source": c.source})
            with open(tmp_out / key / IMAGES_FILE, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=["path", "label", "name", "size", "group", "source"])
                writer.writeheader()
                writer.writerows(rows)
            meta["counts"][key] = {cat: {"images": len(selected[key][cat]),
                                         "names": sum(c.primary for c in selected[key][cat]),
                                         "size_variants": sum(not c.primary for c in selected[key][cat]),
                                         "groups": len({c.group for c in selected[key][cat]})} for cat in kept}
        (tmp_out / MANIFEST_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (tmp_out / CARD_NAME).write_text(icons_card(meta), encoding="utf-8")
    log.info("built the icon benchmark in %s: %d classes (%s), themes %s", out, len(kept), ", ".join(kept),
             ", ".join(keys))
    return out


def _drop_cross_theme_duplicates(selected: dict[str, dict[str, list[Candidate]]], keys: list[str],
                                 kept: list[str]) -> int:
    """Drop images near-identical to an image of another theme (from both); the number dropped."""
    flat = {k: [c for cat in kept for c in selected[k][cat]] for k in keys}
    bad: set[int] = set()
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if not flat[a] or not flat[b]:
                continue
            d = differences(np.stack([c.sig for c in flat[a]]), np.stack([c.sig for c in flat[b]]))
            for x, y in zip(*np.nonzero(d < DUPLICATE_FRACTION)):
                bad.update((id(flat[a][x]), id(flat[b][y])))
    for k in keys:
        for cat in kept:
            selected[k][cat] = [c for c in selected[k][cat] if id(c) not in bad]
    return len(bad)


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG", optimize=True)


def _renderer_version() -> str:
    exe = shutil.which("rsvg-convert")
    if exe:
        try:
            return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "rsvg-convert"
    try:
        import cairosvg  # type: ignore[import-not-found]

        return f"cairosvg {cairosvg.__version__}"
    except ImportError:
        return "none"


# === Card ===
def icons_card(meta: dict) -> str:
    """ICONS.md: what the benchmark holds and how it was made."""
    keys = list(meta["themes"])
    lines = [
        f"# icons benchmark card (version {meta['version']})", "",
        "Icons of the same freedesktop names drawn by different artists, grouped into visual categories: train on "
        "one theme, test on another. Built by `sensorium data icons` (`sensorium.pipelines.datasets.icons`).", "",
        "## Themes", "", "| theme | package | version | licence | SHA-256 of the .deb | style |",
        "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {t['package']} | {t['version']} | {t['license']} | `{t['deb_sha256']}` | {t['style']} |"
              for k, t in meta["themes"].items()]
    lines += ["", "## Classes (images / distinct names / size variants per theme)", "",
              "| class | what | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    what = {c["name"]: c["what"] for c in meta["categories"]}
    for cat in meta["classes"]:
        cells = [f"{meta['counts'][k][cat]['images']} / {meta['counts'][k][cat]['names']} / "
                 f"{meta['counts'][k][cat]['size_variants']}" for k in keys]
        lines.append(f"| {cat} | {what[cat]} | " + " | ".join(cells) + " |")
    left = [c["name"] for c in meta["categories"] if not c["kept"]]
    lines += [
        "", f"Categories of the table left out (fewer than {meta['min_per_class']} images in some theme): "
        + (", ".join(left) or "none") + ". icons.json has the name patterns of every category and what each theme "
        "has of it.", "",
        "## How the images were made", "",
        f"- {meta['image_size']} px squares, the icon scaled to fit and centred, transparency composited onto white "
        f"(RGB {tuple(meta['background'])}); SVGs rendered at that size ({meta['svg_renderer']}), PNGs scaled from "
        f"the theme's raster (icons of theme directories under {meta['min_icon_size']} px, symbolic and panel "
        "icons are not used).",
        f"- One image per distinct icon name (its largest size); size variants of the same names only while a class "
        f"has fewer than {meta['target_per_class']} images; at most {meta['max_per_class']} per class.",
        f"- Near-identical images (their {meta['signature_side']}x{meta['signature_side']} content signatures differ "
        f"in under {meta['duplicate_fraction']:.0%} of the pixels) are kept once per theme and category; colour "
        f"variants of one drawing count as one name; {meta['cross_theme_duplicates_removed']} images near-identical "
        "to one of another theme were dropped.",
        f"- `images.csv` in each theme folder lists every image with its `group` (the same name, or signatures that "
        f"differ in under {meta['group_fraction']:.0%} of the pixels): split by group to hold out part of a theme.",
        "", "## Licences", "",
        "Each theme's icons are under its package's licence (the table gives the first licence of its copyright "
        "file, /usr/share/doc/<package>/copyright). Check it before redistributing the images."]
    return "\n".join(lines) + "\n"


def build(request: Any) -> Path:
    """`sensorium data icons [--out DIR] [--from DIR_OF_DEBS] [--force]`."""
    return build_icons(request.out, themes=request.extra.get("themes", DEFAULT_THEMES), source=request.source,
                       overwrite=request.force)


__all__ = ["BACKGROUND", "CATEGORIES", "DEFAULT_THEMES", "ICONS_VERSION", "IMAGE_SIZE", "THEMES", "IconCategory",
           "IconTheme", "build_icons", "category_of", "deb_control", "default_icons_dir", "fetch_deb",
           "parse_index_theme", "plain_name", "read_theme_deb", "render_icon", "safe_member_path", "signature"]
