"""Lazy re-exports for package ``__init__`` files (PEP 562), so that importing a package loads
none of its submodules (and none of pandas, scipy, pyomo or matplotlib) until a name is used.

A package lists its public names once, as imports inside ``if TYPE_CHECKING:`` (what type
checkers and IDEs read), and in ``__all__``::

    from typing import TYPE_CHECKING

    from fleetopt.core.lazy import attach

    if TYPE_CHECKING:
        from fleetopt.physics.kv import dtype_bytes

    __all__ = ["dtype_bytes"]
    __getattr__, __dir__ = attach(__name__, globals())

:func:`attach` reads those ``from MODULE import NAME`` lines from the package's own source and
imports ``MODULE`` the first time ``NAME`` is asked for (the value is then cached in the
package). ``tests/test_api.py`` checks that ``__all__`` and the ``TYPE_CHECKING`` block agree.
(The same idea as scientific Python's ``lazy_loader``, without a stub file.)
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["attach", "type_checking_imports"]


def type_checking_imports(source: str) -> dict[str, str]:
    """``{name: module}`` of the ``from MODULE import NAME [as ALIAS]`` statements inside the
    top-level ``if TYPE_CHECKING:`` blocks of a module's ``source``."""
    out: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                for alias in stmt.names:
                    out[alias.asname or alias.name] = f"{stmt.module}:{alias.name}"
    return out


def attach(package: str, namespace: dict[str, Any]) -> tuple[Callable[[str], Any],
                                                             Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names are its ``TYPE_CHECKING``
    imports (see the module docstring). ``namespace`` is the package's ``globals()``."""
    table: dict[str, str] | None = None

    def _table() -> dict[str, str]:
        nonlocal table
        if table is None:
            table = type_checking_imports(Path(namespace["__file__"]).read_text(encoding="utf-8"))
        return table

    def __getattr__(name: str) -> Any:
        where = _table().get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = where.partition(":")
        value = getattr(importlib.import_module(module), attr)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(_table()))

    return __getattr__, __dir__
