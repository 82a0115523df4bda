"""Golden results: every shipped example recomputed and compared with ``tests/data/golden``.

The files were written by ``scripts/make_golden.py`` (solve, the Pyomo backend, explained
infeasibility, compare, procurement, the default sized fleet, simulation with a fixed seed,
enumeration). Analytical and simulated figures must agree to a relative 1e-9 (the simulator
is deterministic per seed), integers, strings and booleans exactly, and every key must be
there: a refactoring that changes a number fails here. Regenerate the files only on purpose
(``python scripts/make_golden.py``), never to make a change pass.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
SCRIPT = ROOT / "scripts" / "make_golden.py"
REL = 1e-9
ABS = 1e-9  # for figures that are 0 in the golden (gaps, shares)

pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason="not run from a source tree")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("make_golden", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def diff(want: Any, got: Any, path: str = "") -> list[str]:
    """Every place where ``got`` differs from ``want`` (empty when they agree)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {type(got).__name__}"]
        out = []
        for k in want.keys() | got.keys():
            if k not in got:
                out.append(f"{path}.{k}: missing")
            elif k not in want:
                out.append(f"{path}.{k}: unexpected key")
            else:
                out += diff(want[k], got[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: expected a list of {len(want)}, got {got!r:.200}"]
        return [d for i, (a, b) in enumerate(zip(want, got, strict=True))
                for d in diff(a, b, f"{path}[{i}]")]
    if isinstance(want, float) and not isinstance(want, bool):
        if isinstance(got, bool) or not isinstance(got, int | float):
            return [f"{path}: expected {want!r}, got {got!r}"]
        if not math.isclose(want, float(got), rel_tol=REL, abs_tol=ABS):
            return [f"{path}: expected {want!r}, got {got!r} (rel "
                    f"{abs(got - want) / max(abs(want), 1e-300):.2e})"]
        return []
    if type(want) is not type(got) or want != got:
        return [f"{path}: expected {want!r:.200}, got {got!r:.200}"]
    return []


EXAMPLES = sorted(p.stem for p in GOLDEN.glob("*.json"))


def test_every_shipped_example_has_a_golden_file() -> None:
    from fleetopt.problem.config import example_names

    assert EXAMPLES == sorted(example_names())


@pytest.mark.parametrize("example", EXAMPLES)
def test_golden(example: str) -> None:
    doc = json.loads((GOLDEN / f"{example}.json").read_text())
    want = doc["results"]
    got = _script().compute(example, budgets=want["procurement_budgets"])
    problems = diff(want, got, example)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


def test_diff_finds_changes() -> None:
    """The comparison itself can fail: a changed number, key, type or list length."""
    base = {"a": 1.0, "b": [1, "x", True], "c": {"d": None}}
    assert diff(base, json.loads(json.dumps(base))) == []
    assert diff(base, {**base, "a": 1.0 + 1e-6})
    assert diff(base, {**base, "b": [1, "x", False]})
    assert diff(base, {**base, "b": [1, "x"]})
    assert diff(base, {**base, "c": {}})
    assert diff(base, {**base, "e": 0})
    assert diff({"n": 3}, {"n": 3.0})
