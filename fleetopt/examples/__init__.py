"""Shipped example configs and sweeps (``fleetopt example`` lists them); no code."""

__all__: list[str] = []
