"""Hide the `abb_exec` and `abb` features of Debian's adbd: it advertises them but cannot serve them, and an
adb client that sees `abb_exec` streams `adb install` through it and fails. The feature list is built from
inline 8-byte / 4-byte immediates, so the names are renamed in place (same length) to unknown features."""

import sys
from pathlib import Path

PATCHES = (
    (b"\x48\xb8abb_exec", b"\x48\xb8xbb_exec"),  # movabs $"abb_exec", %rax
    (b"\x00\x00\x00abb\x00", b"\x00\x00\x00xbb\x00"),  # movl $"abb", N(%rsp) (the immediate after a disp32)
)


def patch(path: Path) -> None:
    data = path.read_bytes()
    for old, new in PATCHES:
        if data.count(new) and not data.count(old):
            continue
        if data.count(old) != 1:
            sys.exit(f"patch_adbd: expected one {old!r} in {path}, found {data.count(old)}")
        data = data.replace(old, new)
    path.write_bytes(data)


if __name__ == "__main__":
    patch(Path(sys.argv[1]))
