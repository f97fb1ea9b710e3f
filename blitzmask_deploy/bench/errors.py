"""Errors raised while talking to a benchmark device (adb phone, emulated device or the local host)."""

from __future__ import annotations

from blitzmask_deploy.core.errors import BlitzMaskError


class DeviceError(BlitzMaskError):
    """Base class: something went wrong on or with a device."""


class DeviceGone(DeviceError):
    """The device disappeared (unplugged, offline, adb connection closed); its cells stay pending."""


class DeviceTimeout(DeviceError):
    """A device command did not finish within its timeout."""


class InstrumentationFailed(DeviceError):
    """`am instrument` ended without a usable schema-1 result (app missing, crash, garbage output)."""


class RuntimeMissing(DeviceError):
    """The benchmark app ran but has no LiteRT runtime; `result` holds the app's protocol JSON."""

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.result = result


class AppOutdated(DeviceError):
    """The installed benchmark app is too old for the request (accuracy mode needs protocol.APP_VERSION_CODE)."""
