"""Small I/O helpers: atomic writes (nothing half-written) and table formatting."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from fleetopt.errors import FleetoptError


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON with numpy scalars converted and non-finite floats as null."""
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), indent=indent, default=_json_default)


def read_json(path: str | Path, field_name: str) -> Any:
    """Parse a JSON file; a missing file or bad JSON is a :class:`FleetoptError` on ``field_name``."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise FleetoptError(field_name, f"file not found: {p}") from None
    except json.JSONDecodeError as e:
        raise FleetoptError(field_name, f"{p} is not valid JSON: {e}") from None
    except UnicodeDecodeError:
        raise FleetoptError(field_name, f"{p} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FleetoptError(field_name, f"cannot read {p}: {e.strerror or e}") from None


def atomic_write(path: str | Path, data: str | bytes, field_name: str = "--out") -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: all or nothing."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FleetoptError(field_name, f"folder {parent} does not exist; create it first")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise FleetoptError(field_name, f"cannot write in {parent}: {e.strerror}") from None
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, p)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise FleetoptError(field_name, f"cannot write {p}: {e.strerror}") from None


def format_table(df: pd.DataFrame, floatfmt: str = "{:,.2f}") -> str:
    """A plain-text table with readable numbers."""
    if df.empty:
        return "(no rows)"
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else floatfmt.format(v))
    return out.to_string(index=False)
