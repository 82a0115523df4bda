"""Formulations and algorithms: the fleet MIP, baselines and exhaustive enumeration."""
