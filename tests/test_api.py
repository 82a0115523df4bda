"""The public API: explicit ``__all__`` everywhere, lazy re-exports that agree with their
``TYPE_CHECKING`` blocks, and a light ``import fleetopt``."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from fleetopt.core.lazy import type_checking_imports

ROOT = Path(__file__).resolve().parents[1] / "fleetopt"
MODULES = sorted(
    ".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in ROOT.rglob("*.py"))
HEAVY = ("pandas", "scipy", "pyomo", "matplotlib")


def _source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).read_text(encoding="utf-8")


def _literal_all(name: str) -> list[str] | None:
    for node in ast.parse(_source(name)).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert isinstance(value, ast.List | ast.Tuple), f"{name}: __all__ is not a literal"
            return [ast.literal_eval(e) for e in value.elts]
    return None


@pytest.mark.parametrize("name", MODULES)
def test_every_module_lists_its_public_names(name: str) -> None:
    names = _literal_all(name)
    assert names is not None, f"{name} has no __all__"
    assert len(names) == len(set(names)), f"{name}: a name twice in __all__"
    mod = importlib.import_module(name)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


LAZY = [m for m in MODULES if "__getattr__, __dir__ = attach(__name__, globals())" in _source(m)
        and m != "fleetopt.core.lazy"]


def test_the_packages_re_export_lazily() -> None:
    assert {"fleetopt", "fleetopt.physics", "fleetopt.problem", "fleetopt.sizing",
            "fleetopt.planners", "fleetopt.planners.mip", "fleetopt.sim", "fleetopt.studies",
            "fleetopt.studies.sweep", "fleetopt.report"} <= set(LAZY)


@pytest.mark.parametrize("name", LAZY)
def test_lazy_exports_agree_with_the_type_checking_block(name: str) -> None:
    table = type_checking_imports(_source(name))
    own = {"__version__"} if name == "fleetopt" else set()
    assert set(_literal_all(name) or []) == set(table) | own
    mod = importlib.import_module(name)
    for n, where in table.items():
        module, _, attr = where.partition(":")
        assert getattr(mod, n) is getattr(importlib.import_module(module), attr), (name, n)
    assert set(table) <= set(dir(mod))
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018
    # a submodule of the same name would replace the re-exported object once it is imported
    pkg = Path(mod.__file__).parent
    clash = [n for n in table if (pkg / f"{n}.py").exists() or (pkg / n / "__init__.py").exists()]
    assert not clash, f"{name} re-exports names of its own submodules: {clash}"


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps("
                          f"[m for m in {HEAVY!r} if m in sys.modules]))"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_fleetopt_is_light() -> None:
    assert _loaded("import fleetopt") == []


def test_loading_a_config_is_light() -> None:
    assert _loaded("import fleetopt\nfleetopt.load_config('azure-h100')") == []


def test_the_cli_help_is_light() -> None:
    code = ("import contextlib, io\nfrom fleetopt.report.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['--help']) == 0")
    assert _loaded(code) == []


def test_the_checks_see_a_heavy_import() -> None:
    assert _loaded("import fleetopt, pandas") == ["pandas"]


def test_the_public_names() -> None:
    import fleetopt as fo

    for n in ("solve", "Solution", "compare", "simulate", "evaluate", "evaluate_plan", "Problem",
              "load_config", "Status", "FleetoptError", "__version__"):
        assert n in fo.__all__ and hasattr(fo, n)
    assert fo.solve is importlib.import_module("fleetopt.planners.mip.solve").solve
    importlib.import_module("fleetopt.evaluation")  # a submodule import keeps the functions
    assert callable(fo.evaluate) and callable(fo.compare) and callable(fo.solve)


def test_plan_pool_keys_are_the_pool_result_fields() -> None:
    from fleetopt.evaluation import PoolResult
    from fleetopt.problem.fleet import PLAN_POOL_KEYS, POOL_KEYS

    assert set(PLAN_POOL_KEYS) == {f.name for f in fields(PoolResult)}
    assert set(POOL_KEYS) <= set(PLAN_POOL_KEYS)


def test_status_is_an_enum_written_as_its_string() -> None:
    from fleetopt.core.status import Status
    from fleetopt.planners.solution import Solution

    s = Solution("infeasible", "mip")
    assert s.status is Status.INFEASIBLE and s.status == "infeasible"
    d = s.to_dict()
    assert type(d["status"]) is str and d["status"] == "infeasible"
    assert json.loads(s.to_json())["status"] == "infeasible"
    with pytest.raises(ValueError):
        Solution("finished", "mip")
