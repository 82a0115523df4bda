"""Package data: workload tables, traces (with the Mooncake trace's block hashes), power fits,
the step and power calibration, the ML.ENERGY measurement table and AIConfigurator's estimates
(``docs/data.md``); no code."""

__all__: list[str] = []
