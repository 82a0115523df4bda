"""What every ``fleetopt`` command shares: warnings, the ``used: ...`` line, ``--verbose``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fleetopt.report import tables as report

__all__ = ["used", "verbose_flag", "warn"]


def warn(problem: Any) -> None:
    """Print a problem's warnings, one ``fleetopt: warning: ...`` line each, on stderr."""
    for w in getattr(problem, "warnings", ()):
        sys.stderr.write(f"fleetopt: warning: {w}\n")


def used(problem: Any, candidates: int | None = None) -> tuple[dict[str, Any], str]:
    """The values a run used: the JSON ``settings`` object and its ``used: ...`` line."""
    d = problem.settings_used(candidates)
    return d, report.settings_line(d)


def verbose_flag(p: argparse.ArgumentParser) -> None:
    """``--verbose``: let HiGHS (and Pyomo's solvers) log, to stderr. Without it they print
    nothing at all, so stdout holds only fleetopt's output (valid JSON with --format json)."""
    p.add_argument("--verbose", action="store_true",
                   help="show the MIP solver's log (on stderr; stdout is unchanged)")
