"""The installed release: ``pyproject.toml``'s ``version``, read through ``importlib.metadata``
(the one place the version is written is pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("fleetopt")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
