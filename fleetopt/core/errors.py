"""Errors raised for bad input: each names the field at fault and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["FleetoptError", "unknown_name"]


class FleetoptError(ValueError):
    """Bad input. ``field`` names what is wrong; the message says how to fix it.

    The CLI turns this into a one-line message and exit code 2.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def unknown_name(field: str, name: str, known: Iterable[str], kind: str) -> FleetoptError:
    """Error for an unknown catalog name, suggesting close matches."""
    known = sorted(known)
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
    lookup = {k.lower(): k for k in known}
    hint = f" Did you mean {', '.join(repr(lookup[c]) for c in close)}?" if close else ""
    return FleetoptError(
        field, f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}."
    )
