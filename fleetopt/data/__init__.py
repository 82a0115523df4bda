"""Package data: workload tables, traces and power fits (``docs/data.md``); no code."""

__all__: list[str] = []
