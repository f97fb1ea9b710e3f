"""Bench fixtures: `emulated_device`, a real adbd in a chroot behind a private adb server (docs/emulated-device.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def emulated_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The started EmulatedDevice (serial `device.serial`, adb server `device.adb_address`), shared by the session.

    Ports start at 5601 / 5137 and move up when another run holds them (start() also retries once on the next
    pair). Skipped only where the device cannot run here: the Debian packages cannot be fetched, or no root /
    namespaces for chroot and unshare.
    """
    from blitzmask_deploy.bench.emulated import EmulatedDevice, EmulatorUnavailable, free_port_pair, reap_stale

    reap_stale()  # leftovers of killed runs first, so that their ports are free again
    port, adb_port = free_port_pair()
    device = EmulatedDevice(tmp_path_factory.mktemp("emulated-device"), port=port, adb_port=adb_port)
    try:
        device.start()
    except EmulatorUnavailable as err:
        device.stop()
        pytest.skip(f"emulated device unavailable: {err}")
    except BaseException:
        device.stop()
        raise
    yield device
    device.stop()
