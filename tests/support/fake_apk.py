"""Dummy APKs for device tests: a zip whose AndroidManifest.xml is binary AXML (as aapt writes it) or plain XML."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

ANDROID_NS = "http://schemas.android.com/apk/res/android"
_NONE = 0xFFFFFFFF


def axml_manifest(package: str, version_code: int, version_name: str, *, utf8: bool = False) -> bytes:
    """A binary XML <manifest package=… android:versionCode=… android:versionName=…> element."""
    strings = ["versionCode", "versionName", "android", ANDROID_NS, "manifest", "package", package, version_name]
    idx = {s: i for i, s in enumerate(strings)}
    pool_body = b""
    offsets = []
    for s in strings:
        offsets.append(len(pool_body))
        if utf8:
            raw = s.encode()
            pool_body += bytes([len(s), len(raw)]) + raw + b"\0"
        else:
            pool_body += struct.pack("<H", len(s)) + s.encode("utf-16-le") + b"\0\0"
    pool_body += b"\0" * (-len(pool_body) % 4)
    header = 28
    start = header + 4 * len(strings)
    flags = 0x100 if utf8 else 0
    pool = struct.pack("<HHIIIIII", 0x0001, header, start + len(pool_body), len(strings), 0, flags, start, 0)
    pool += struct.pack(f"<{len(strings)}I", *offsets) + pool_body
    res_map = struct.pack("<HHI", 0x0180, 8, 16) + struct.pack("<II", 0x0101021B, 0x0101021C)
    attrs = [
        (idx[ANDROID_NS], idx["versionCode"], _NONE, 0x10, version_code),
        (idx[ANDROID_NS], idx["versionName"], idx[version_name], 0x03, idx[version_name]),
        (_NONE, idx["package"], idx[package], 0x03, idx[package]),
    ]
    body = struct.pack("<IIIIHHHHHH", 1, _NONE, _NONE, idx["manifest"], 20, 20, len(attrs), 0, 0, 0)
    for ns, name, raw, dtype, data in attrs:
        body += struct.pack("<IIIHBBI", ns, name, raw, 8, 0, dtype, data)
    element = struct.pack("<HHI", 0x0102, 16, 8 + len(body)) + body
    chunks = pool + res_map + element
    return struct.pack("<HHI", 0x0003, 8, 8 + len(chunks)) + chunks


def write_apk(
    path: Path, package: str, version_code: int, version_name: str, *, binary: bool = True, utf8: bool = False
) -> Path:
    """A zip with the manifest (binary AXML, UTF-16 or UTF-8 string pool; or plain XML) and a dummy classes.dex."""
    if binary:
        manifest = axml_manifest(package, version_code, version_name, utf8=utf8)
    else:
        manifest = (
            f'<manifest xmlns:android="{ANDROID_NS}" package="{package}" '
            f'android:versionCode="{version_code}" android:versionName="{version_name}"/>'
        ).encode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("AndroidManifest.xml", manifest)
        zf.writestr("classes.dex", b"dex\n035\0" + bytes(64))
    return path
