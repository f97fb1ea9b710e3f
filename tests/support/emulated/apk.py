"""Package name and version of an APK, read from its AndroidManifest.xml (binary AXML, or plain XML in test APKs).

Used by the emulated device's `pm install`; only the `<manifest>` element's attributes are decoded.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

ANDROID_NS = "http://schemas.android.com/apk/res/android"
_STRING_POOL, _RESOURCE_MAP, _START_ELEMENT = 0x0001, 0x0180, 0x0102
_RES_IDS = {0x0101021B: "versionCode", 0x0101021C: "versionName"}
_TYPE_STRING, _NO_INDEX = 0x03, 0xFFFFFFFF


class ApkError(ValueError):
    """The file is not an APK with a readable manifest."""


@dataclass(frozen=True)
class ApkInfo:
    package: str
    version_code: int
    version_name: str | None


def read_apk_info(apk: Path) -> ApkInfo:
    """Package, versionCode and versionName of `apk`; ApkError when it is not an APK."""
    try:
        with zipfile.ZipFile(apk) as zf:
            data = zf.read("AndroidManifest.xml")
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise ApkError(f"{apk.name}: not an APK ({err})") from None
    attrs = _text_manifest(data) if data.lstrip().startswith(b"<") else _binary_manifest(data)
    package = attrs.get("package")
    if not package:
        raise ApkError(f"{apk.name}: manifest has no package name")
    try:
        code = int(attrs.get("versionCode", 0))
    except ValueError:
        raise ApkError(f"{apk.name}: bad versionCode {attrs.get('versionCode')!r}") from None
    name = attrs.get("versionName")
    return ApkInfo(str(package), code, None if name is None else str(name))


def _text_manifest(data: bytes) -> dict:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as err:
        raise ApkError(f"bad manifest XML: {err}") from None
    return {key.removeprefix(f"{{{ANDROID_NS}}}"): value for key, value in root.attrib.items()}


def _binary_manifest(data: bytes) -> dict:
    """Attributes of the first element of a binary XML file (the <manifest> element)."""
    strings: list[str] = []
    res_ids: list[int] = []
    try:
        pos = struct.unpack_from("<H", data, 2)[0]
        while pos + 8 <= len(data):
            kind, header, size = struct.unpack_from("<HHI", data, pos)
            if size < 8:
                break
            if kind == _STRING_POOL:
                strings = _string_pool(data, pos, header)
            elif kind == _RESOURCE_MAP:
                res_ids = list(struct.unpack_from(f"<{(size - header) // 4}I", data, pos + header))
            elif kind == _START_ELEMENT:
                return _attributes(data, pos + header, strings, res_ids)
            pos += size
    except (struct.error, IndexError, UnicodeDecodeError) as err:
        raise ApkError(f"bad binary manifest: {err}") from None
    raise ApkError("binary manifest has no element")


def _attributes(data: bytes, pos: int, strings: list[str], res_ids: list[int]) -> dict:
    _ns, _name, start, size, count = struct.unpack_from("<IIHHH", data, pos)
    attrs = {}
    for i in range(count):
        _ans, name, raw, _vsize, _res0, dtype, value = struct.unpack_from("<IIIHBBI", data, pos + start + i * size)
        key = _RES_IDS.get(res_ids[name], strings[name]) if name < len(res_ids) else strings[name]
        if raw != _NO_INDEX:
            attrs[key] = strings[raw]
        else:
            attrs[key] = strings[value] if dtype == _TYPE_STRING else value
    return attrs


def _string_pool(data: bytes, pos: int, header: int) -> list[str]:
    count, _styles, flags, start = struct.unpack_from("<IIII", data, pos + 8)
    offsets = struct.unpack_from(f"<{count}I", data, pos + header)
    utf8 = bool(flags & 0x100)
    return [_pool_string(data, pos + start + off, utf8) for off in offsets]


def _pool_string(data: bytes, at: int, utf8: bool) -> str:
    if utf8:
        at += 2 if data[at] & 0x80 else 1  # length in UTF-16 units
        length = data[at]
        if length & 0x80:
            length = ((length & 0x7F) << 8) | data[at + 1]
            at += 1
        return data[at + 1 : at + 1 + length].decode("utf-8")
    length = struct.unpack_from("<H", data, at)[0]
    if length & 0x8000:
        length = ((length & 0x7FFF) << 16) | struct.unpack_from("<H", data, at + 2)[0]
        at += 2
    return data[at + 2 : at + 2 + 2 * length].decode("utf-16-le")
