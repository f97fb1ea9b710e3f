"""Error hierarchy shared by the library and the CLI.

`BadInput` is anything the user handed us that we cannot use (CLI exit 2, one line, no traceback);
`CheckFailed` is a check the user asked for that did not pass (CLI exit 1).
"""

from __future__ import annotations


class BlitzMaskError(Exception):
    """Base class of every error this package raises on purpose."""


class BadInput(BlitzMaskError):
    """Input we cannot use: a missing or malformed file, an unknown name, an impossible option."""


class CheckFailed(BlitzMaskError):
    """A requested check (AP budget, latency budget, parity) did not pass."""
