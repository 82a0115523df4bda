"""``python -m fleetopt``: the ``fleetopt`` command line."""

import sys

from fleetopt.report.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
