"""JSON: THE cleaner every document goes through, versioned documents, and JSON input.

:func:`jsonable` is the one place where values become plain JSON data (numpy to Python,
non-finite floats and pandas' missing values to ``None``); :func:`is_missing` is the same test
for tables and figures. Every ``to_dict()`` and :func:`to_json` use them; :func:`versioned` puts
``"schema": "fleetopt.<kind>/1"`` first.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from fleetopt.core.errors import FleetoptError

__all__ = ["SCHEMA_KINDS", "SCHEMA_VERSION", "is_missing", "jsonable", "read_json", "schema",
           "to_json", "versioned"]

#: the version of every JSON document fleetopt writes (``"schema": "fleetopt.<kind>/1"``)
SCHEMA_VERSION = 1
SCHEMA_KINDS = ("catalog", "evaluation", "plan", "comparison", "simulation", "procurement",
                "sweep", "sweep-checkpoint", "instance")


def schema(kind: str) -> str:
    """The schema tag of a JSON document of ``kind``: ``fleetopt.<kind>/1``."""
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"unknown schema kind {kind!r}")
    return f"fleetopt.{kind}/{SCHEMA_VERSION}"


def versioned(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` (cleaned by :func:`jsonable`) with ``"schema"`` as its first key."""
    out: dict[str, Any] = {"schema": schema(kind)}
    out.update(jsonable({k: v for k, v in body.items() if k != "schema"}))
    return out


def _pandas_missing(x: Any) -> bool:
    """``pd.NA`` or ``NaT`` (pandas is only consulted when it is already imported: a value
    cannot be a pandas object otherwise, and ``import fleetopt`` stays light)."""
    pd = sys.modules.get("pandas")
    return pd is not None and (x is pd.NA or x is pd.NaT)


def is_missing(x: Any) -> bool:
    """A value with no figure: ``None``, a non-finite float (NaN, +-inf), ``pd.NA``, ``NaT``.

    :func:`jsonable` writes these as ``null``; tables print them as ``-``."""
    if x is None:
        return True
    if isinstance(x, float):  # also numpy float64
        return not math.isfinite(x)
    if type(x).__module__ == "numpy" and type(x).__name__.startswith("float"):
        return not math.isfinite(float(x))
    return _pandas_missing(x)


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON data: numpy scalars and arrays to Python, tuples to lists, and
    missing values (:func:`is_missing`: non-finite floats, ``pd.NA``, ``NaT``) to ``None``, enums
    (a :class:`~fleetopt.core.status.Status`) to their values.
    The one cleaner every ``to_dict()`` and :func:`to_json` use."""
    import numpy as np

    if isinstance(x, Enum):  # e.g. a Status: its plain value
        return jsonable(x.value)
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, float):  # also numpy float64
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return jsonable(float(x))
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if _pandas_missing(x):
        return None
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(x, pd.Timestamp):
        return x.isoformat()
    if isinstance(x, Path):
        return str(x)
    return x


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text of ``obj`` after :func:`jsonable` (strict JSON: never NaN or Infinity)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def read_json(path: str | Path, field_name: str) -> Any:
    """Parse a JSON file; a missing file or bad JSON is a :class:`FleetoptError` on ``field_name``."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise FleetoptError(field_name, f"file not found: {p}") from None
    except IsADirectoryError:
        raise FleetoptError(field_name, f"{p} is a directory, not a JSON file") from None
    except UnicodeDecodeError:
        raise FleetoptError(field_name, f"{p} is not a text (JSON) file") from None
    except json.JSONDecodeError as e:
        raise FleetoptError(field_name, f"{p} is not valid JSON: {e}") from None
    except OSError as e:
        raise FleetoptError(field_name, f"cannot read {p}: {e.strerror or e}") from None
