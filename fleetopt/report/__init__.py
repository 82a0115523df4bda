"""Output formats: text tables and markdown (:mod:`.tables`), figures (:mod:`.plots`) and the
``fleetopt`` command line (:mod:`.cli`, :mod:`.cli_study`). The JSON documents are written by
the results' own ``to_dict()`` through :mod:`fleetopt.core.jsonio`.

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.report.cli import build_parser, main
    from fleetopt.report.plots import (
        plot_comparison,
        plot_frontier,
        plot_topology,
        plot_validation,
        save_figure,
    )
    from fleetopt.report.tables import Col, markdown_table, render, settings_line

__all__ = ["Col", "build_parser", "main", "markdown_table", "plot_comparison", "plot_frontier",
           "plot_topology", "plot_validation", "render", "save_figure", "settings_line"]
__getattr__, __dir__ = attach(__name__, globals())
