"""Hand-made Debian archives for tests (imported by the test modules beside it)."""
from __future__ import annotations


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    """An ar archive (the container of a `.deb`) holding `members` (name, body), in order."""
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode("ascii") + body
        out += b"\n" if len(body) % 2 else b""
    return out
