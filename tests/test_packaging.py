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


# ------------------------------------------------------------------------------------------
# the conventions of a package people depend on


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def test_the_version_is_written_once() -> None:
    """pyproject.toml holds the version; the package and the CLI read it from the metadata."""
    import subprocess
    import sys
    from importlib.metadata import version

    import fleetopt

    declared = _project()["version"]
    assert fleetopt.__version__ == version("fleetopt") == declared
    for p in (ROOT / "fleetopt").rglob("*.py"):
        assert f'"{declared}"' not in p.read_text(), f"{p} writes the version again"
    for argv in (["-m", "fleetopt", "--version"], ["-m", "fleetopt.report.cli", "--version"]):
        r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == f"fleetopt {declared}", r


def test_python_m_fleetopt_is_the_console_script() -> None:
    scripts = _project()["scripts"]
    assert scripts == {"fleetopt": "fleetopt.report.cli:main"}
    main_src = (ROOT / "fleetopt" / "__main__.py").read_text()
    assert "from fleetopt.report.cli import main" in main_src


def test_licence_classifiers_and_typing_marker() -> None:
    proj = _project()
    assert proj["license"] == "Apache-2.0"
    assert set(proj["license-files"]) == {"LICENSE", "NOTICE"}
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    notice = (ROOT / "NOTICE").read_text()
    assert "CC-BY-4.0" in notice and "Apache" in notice
    assert "Typing :: Typed" in proj["classifiers"]
    assert (ROOT / "fleetopt" / "py.typed").is_file()
    data = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["fleetopt"]
    assert "py.typed" in data


def test_mypy_is_configured_and_tested() -> None:
    cfg = tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]
    assert cfg["files"] == ["fleetopt"] and cfg["disallow_untyped_defs"] is True
    assert any(r.startswith("mypy>=") for r in _project()["optional-dependencies"]["test"])
    run = (ROOT / ".ci" / "run").read_text()
    assert run.count("python -m mypy\n") == 2  # both environments, the installed mypy
