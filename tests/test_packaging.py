"""The declared dependency minimums are the ones CI tests (.ci/constraints-min.txt)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / ".ci" / "constraints-min.txt"

pytestmark = pytest.mark.skipif(not CONSTRAINTS.is_file(), reason="not run from a source tree")


def _release(v: str) -> tuple[int, ...]:
    parts = [int(p) for p in v.split(".")]
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def _declared() -> dict[str, str]:
    proj = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = list(proj["dependencies"])
    for extra in proj["optional-dependencies"].values():
        reqs += extra
    out: dict[str, str] = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[([^\]]+)\])?\s*>=\s*([0-9.]+)", r.strip())
        assert m, f"{r!r}: every dependency needs a tested lower bound (NAME>=VERSION)"
        name, extras, low = m.group(1).lower(), m.group(2), m.group(3)
        out[name] = low
        if name == "dask" and extras and "distributed" in extras:
            out["distributed"] = low  # dask[distributed] pins its own distributed release
    return out


def _pinned() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, ver = line.partition("==")
            assert ver, f"{line!r}: constraints pin exact versions (NAME==VERSION)"
            out[name.strip().lower()] = ver.strip()
    return out


def test_constraints_pin_exactly_the_declared_minimums() -> None:
    declared, pinned = _declared(), _pinned()
    assert set(declared) == set(pinned), (set(declared) ^ set(pinned))
    for name, low in declared.items():
        assert _release(pinned[name]) == _release(low), (name, low, pinned[name])
