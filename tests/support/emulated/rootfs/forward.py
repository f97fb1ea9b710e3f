"""Relay connections from LISTEN to CONNECT (each `tcp:HOST:PORT` or `unix:PATH`), one thread pair per connection.

The emulated device's adbd runs in its own network namespace (Debian's adbd can only listen on all interfaces,
and it serves a root shell). Inside, `forward.py --inner unix:SOCK tcp:127.0.0.1:PORT` brings the namespace's
loopback up, waits for adbd and relays the Unix socket (reachable through the file system) to it; on the host,
`forward.py tcp:127.0.0.1:PORT unix:SOCK` gives the adb server its usual TCP address on loopback only.
Standalone on purpose: the inner relay runs in the namespace before the chroot, with no project imports.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import socket
import struct
import sys
import threading
import time

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def parse(spec: str) -> tuple[int, object]:
    kind, _, rest = spec.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, rest
    host, _, port = rest.rpartition(":")
    return socket.AF_INET, (host, int(port))


def open_socket(spec: str, *, listen: bool) -> socket.socket:
    family, address = parse(spec)
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        directory, name = os.path.split(str(address))
        os.chdir(directory or ".")  # a relative name dodges the 108-byte limit of socket paths
        address = name
    if listen:
        if family == socket.AF_UNIX:
            if os.path.exists(str(address)):
                os.unlink(str(address))
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(16)
    else:
        sock.connect(address)
    return sock


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def wait_for(spec: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            open_socket(spec, listen=False).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"forward.py: {spec} did not come up within {timeout:.0f} s")
            time.sleep(0.05)


def pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
    for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        with contextlib.suppress(OSError):
            sock.shutdown(how)


def relay(client: socket.socket, target: str) -> None:
    try:
        upstream = open_socket(target, listen=False)
    except OSError:
        client.close()  # the device is unplugged: the adb server sees the connection drop
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen")
    parser.add_argument("connect")
    parser.add_argument("--inner", action="store_true", help="bring lo up and wait for CONNECT before listening")
    args = parser.parse_args()
    if args.inner:
        loopback_up()
        wait_for(args.connect, timeout=60)
    server = open_socket(args.listen, listen=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=relay, args=(client, args.connect), daemon=True).start()


if __name__ == "__main__":
    main()
