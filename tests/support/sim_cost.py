"""A StepCost for the iteration simulator (``fleetopt.sim.iteration``) from an instance's
physics (``fleetopt.sizing.servemodel.InstancePhysics``): the ONE step formula, per step.

The simulator's engine passes ``(decode_seqs, decode_ctx_tokens, prefill_tokens,
prefill_pairs)``; the KV the prefill chunks read (``K_p``, the sum of chunk starts) is
recovered from the pairs of one chunk (``pairs = P s + P (P + 1) / 2``), as the research
prototype did, until the engine passes it (``physics_interface.md``). Energy of a step =
gpus x per-GPU watts at that step's own activity x its time; idle = gpus x idle watts.
Nothing pool-level is used here.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class PhysicsStepCost:
    def __init__(self, physics: Any) -> None:
        self.ph = physics
        self.gpus = float(physics.gpus)
        self._idle = float(physics.idle_w)
        self.cache: dict[tuple[int, float, int, float], tuple[float, float]] = {}

    @property
    def idle_w(self) -> float:
        return self.gpus * self._idle

    def _t(self, D: int, K: float, P: int, A: float) -> tuple[float, float]:
        key = (D, K, P, A)
        got = self.cache.get(key)
        if got is None:
            kp = max(A - P * (P + 1) / 2.0, 0.0) / P if P else 0.0
            t = self.ph.terms(np.array([float(D)]), np.array([float(K)]), np.array([float(P)]),
                              np.array([float(A)]), np.array([kp]))
            s = float(t["t_step"][0])
            rates = {k: np.array([float(np.asarray(t[k])[0]) / s]) for k in self.ph.power_terms}
            w = float(np.asarray(self.ph.gpu_power_w(rates))[0])
            got = (s, w)
            if len(self.cache) > 300_000:
                self.cache.clear()
            self.cache[key] = got
        return got

    def step_s(self, D: int, K: float, P: int, A: float) -> float:
        return self._t(D, K, P, A)[0]

    def step_energy_j(self, D: int, K: float, P: int, A: float, step_s: float) -> float:
        return self._t(D, K, P, A)[1] * self.gpus * step_s
