"""The measured operating points of ML.ENERGY's leaderboard, and the model's predictions there.

``fleetopt/data/mlenergy_configs.json`` (``scripts/derive_calibration.py``; ``docs/data.md``)
holds every in-sample configuration of ML.ENERGY leaderboard v3, task lm-arena-chat (vLLM on
H100 and B200): deployment, ``max_num_seqs``, the measured mean running batch ``B``, median
inter-token latency, steady-state output throughput and per-GPU power, plus two facts of its
output-length histogram (mean generated length and the mean generated context of a running
sequence, ``E[L^2] / (2 E[L])``) and how often the 1,024-request list was repeated.

A steady-state benchmark maps to step inputs with no per-configuration freedom
(:func:`predict`; the calibration is fitted through it, and the fidelity benchmark and tests
score the shipped calibration with it):

* ``D = B``, ``K_d = B (Lp + a)``, capped at the instance's KV capacity (vLLM preempts past
  it), with ``a`` the mean generated context and ``Lp`` the mean uncached prompt of the
  workload (one parameter fitted with the calibration, shipped in the table's ``workload``:
  an operating-point parameter of this benchmark, not a hardware one);
* prefill per step: ``N ~ Poisson(B / E[L])`` admissions (one per completion), exponential
  prompts of mean ``Lp`` times the uncached share, so ``P = Lp G`` with ``G ~ Gamma(N, 1)``
  and ``A_p = P^2 / (N + 1)``; ``J`` quantile nodes per ``N`` (deterministic quadrature);
* prefix caching of repeated requests: uncached share ``1/r + (1 - 1/r)(1 - hit)``, ``hit =
  min(1, free KV / (1024 (Lp + E[L])))`` (LRU survival of the earlier copy's blocks);
* throughput ``B / E[t_step]``; median ITL of the mixture of steady-state steps (weight ``1 -
  phi``) and the ramp-down's decode-only steps at batch uniform in ``(0, B]`` (``phi = B / (1024
  r)``): ML.ENERGY's median ITL is over every token of the run, the drain included;
* per-GPU power: :class:`~fleetopt.physics.power.ActivityPower` of the time-averaged activity
  of the steady-state steps.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.physics.iteration import StepCoefficients, StepTerms
from fleetopt.physics.power import Activity, ActivityPower, activity

__all__ = ["MEASUREMENTS_FILE", "MeasuredConfig", "Prediction", "error_stats",
           "load_measurements", "measurements_meta", "predict", "step_nodes"]

MEASUREMENTS_FILE = "mlenergy_configs.json"
#: quadrature nodes per number of admissions, and of the ramp-down
NODES_PER_N = 40
RAMP_NODES = 32


@dataclass(frozen=True)
class MeasuredConfig:
    """One measured configuration (a row of the shipped table)."""

    gpu: str  # catalog GPU
    model: str  # catalog model
    label: str  # the measured checkpoint
    dtype: str  # deployment weight dtype: "bf16" or "fp8"
    tp: int
    ep: int
    num_gpus: int
    max_num_seqs: int
    batch: float  # mean running batch (vllm:num_requests_running over the steady state)
    out_mean: float  # mean generated tokens per request
    gen_ctx_mean: float  # E[L^2] / (2 E[L]) of the generated length
    repeats: int  # times the 1,024-request list was sent
    itl_ms: float  # median inter-token latency (all tokens of the run)
    p90_itl_ms: float
    tput_tok_s: float  # steady-state output throughput
    power_w_per_gpu: float  # steady-state average power / GPUs


@functools.cache
def _table() -> dict[str, Any]:
    path = resources.files("fleetopt.data").joinpath(MEASUREMENTS_FILE)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def measurements_meta() -> dict[str, Any]:
    """The table's provenance, benchmark settings and fitted workload (``Lp_tokens``)."""
    return {k: v for k, v in _table().items() if k != "configs"}


def load_measurements() -> list[MeasuredConfig]:
    """Every configuration of the shipped ML.ENERGY table."""
    names = [f.name for f in fields(MeasuredConfig)]
    return [MeasuredConfig(**{k: r[k] for k in names}) for r in _table()["configs"]]


def step_nodes(configs: Sequence[MeasuredConfig], j: int = NODES_PER_N) -> list[dict[str, Any]]:
    """Quadrature nodes of the per-step prefill load of each configuration: ``g`` (the Gamma
    variable of the prompt tokens), ``n`` (admissions), ``w`` (probabilities)."""
    from scipy.special import gammaincinv
    from scipy.stats import poisson

    u = (np.arange(j) + 0.5) / j
    out = []
    for c in configs:
        m = c.batch / c.out_mean
        nmax = int(poisson.ppf(1 - 1e-7, m)) + 1
        ns = np.arange(0, nmax + 1)
        pn = poisson.pmf(ns, m)
        pn = pn / pn.sum()
        g, n, w = [0.0], [0], [pn[0]]
        for k in ns[1:]:
            g.extend(gammaincinv(float(k), u).tolist())
            n.extend([int(k)] * j)
            w.extend([pn[k] / j] * j)
        out.append({"g": np.array(g), "n": np.array(n, float), "w": np.array(w)})
    return out


@dataclass(frozen=True)
class Prediction:
    """The model at every configuration (arrays in the configurations' order)."""

    itl_s: NDArray[np.float64]  # median ITL, ramp-down included
    itl_steady_s: NDArray[np.float64]  # median of the steady-state steps only
    mean_step_s: NDArray[np.float64]
    tput_tok_s: NDArray[np.float64]
    decode_only_s: NDArray[np.float64]  # the steady state's decode-only step
    kv_occupancy: NDArray[np.float64]  # B (Lp + a) / KV capacity
    uncached_share: NDArray[np.float64]
    activity: Activity  # time-averaged, per configuration

    def power_w(self, models: Sequence[ActivityPower]) -> NDArray[np.float64]:
        """Per-GPU watts with ``models[i]`` the power model of configuration ``i``."""
        return ActivityPower.stack(models).gpu_power_w(self.activity)


DeploymentOf = Callable[[MeasuredConfig], tuple[Any, StepCoefficients, float]]


def predict(configs: Sequence[MeasuredConfig], nodes: Sequence[dict[str, Any]],
            deployment_of: DeploymentOf, lp_tokens: float, *, ramp: bool = True,
            n_requests: int = 1024, n_between_repeats: int = 1024) -> Prediction:
    """The operating-point model (module docstring) of every configuration.

    ``deployment_of(config) -> (key, step coefficients, KV capacity in tokens)``: configurations
    with equal keys share one vectorised evaluation."""
    n = len(configs)
    itl, itl_ss, mean_t, tput, tdec, occ = (np.zeros(n) for _ in range(6))
    f_unc = np.ones(n)
    groups: dict[Any, list[int]] = defaultdict(list)
    deps: dict[Any, tuple[StepCoefficients, float]] = {}
    for i, c in enumerate(configs):
        key, coef, cap = deployment_of(c)
        groups[key].append(i)
        deps[key] = (coef, float(cap))
    acts: list[tuple[int, Activity]] = []
    for key, idx in groups.items():
        coef, cap = deps[key]
        Ds, Ks, Ps, As, owner = [], [], [], [], []
        for i in idx:
            c, nd = configs[i], nodes[i]
            ctx = lp_tokens + c.gen_ctx_mean
            occ[i] = c.batch * ctx / cap
            if c.repeats > 1:
                hit = min(1.0, max(cap - c.batch * ctx, 0.0)
                          / (n_between_repeats * (lp_tokens + c.out_mean)))
                f_unc[i] = 1.0 / c.repeats + (1.0 - 1.0 / c.repeats) * (1.0 - hit)
            p = f_unc[i] * lp_tokens * nd["g"]
            Ds.append(np.full(p.shape, c.batch))
            Ks.append(np.full(p.shape, min(c.batch * ctx, cap)))
            Ps.append(p)
            As.append(p * (lp_tokens * nd["g"]) / (nd["n"] + 1.0))
            owner.append(np.full(p.shape, i))
        D, K, P, A, own = map(np.concatenate, (Ds, Ks, Ps, As, owner))
        te = coef.terms(D, K, P, A, 0.0)
        t = np.asarray(te.t_step)
        jb = (np.arange(RAMP_NODES) + 0.5) / RAMP_NODES
        Db = np.concatenate([configs[i].batch * jb for i in idx])
        Kb = np.concatenate([np.minimum(configs[i].batch * jb
                                        * (lp_tokens + configs[i].gen_ctx_mean), cap)
                             for i in idx])
        tb_all = np.asarray(coef.terms(Db, Kb).t_step)
        for k, i in enumerate(idx):
            sel = own == i
            ti, wi = t[sel], nodes[i]["w"]
            c = configs[i]
            phi = min(1.0, c.batch / (n_requests * c.repeats)) if ramp else 0.0
            tb = tb_all[k * RAMP_NODES:(k + 1) * RAMP_NODES]
            tt = np.concatenate([ti, tb])
            ww = np.concatenate([(1.0 - phi) * wi, np.full(RAMP_NODES, phi / RAMP_NODES)])
            o = np.argsort(tt, kind="stable")
            cw = np.cumsum(ww[o])
            itl[i] = tt[o][np.searchsorted(cw, 0.5 * cw[-1])]
            o2 = np.argsort(ti, kind="stable")
            cw2 = np.cumsum(wi[o2])
            itl_ss[i] = ti[o2][np.searchsorted(cw2, 0.5 * cw2[-1])]
            mean_t[i] = float(np.sum(wi * ti))
            tput[i] = c.batch / mean_t[i]
            tdec[i] = ti[0]  # node 0: no admission, the decode-only step
            tot = StepTerms(**{f.name: np.asarray(getattr(te, f.name))[sel]
                               for f in fields(StepTerms)}).total(wi)
            acts.append((i, activity(tot, coef)))
    acts.sort(key=lambda x: x[0])
    act = Activity(**{f.name: np.array([float(getattr(a, f.name)) for _, a in acts])
                      for f in fields(Activity)})
    return Prediction(itl_s=itl, itl_steady_s=itl_ss, mean_step_s=mean_t, tput_tok_s=tput,
                      decode_only_s=tdec, kv_occupancy=occ, uncached_share=f_unc, activity=act)


def error_stats(pred: Any, meas: Any) -> dict[str, Any]:
    """``n``, median absolute, median (bias), 90th-percentile absolute and largest absolute
    relative error, in percent (rounded to 3 significant digits)."""
    e = np.asarray(pred, dtype=float) / np.asarray(meas, dtype=float) - 1.0
    if e.size == 0:
        return {"n": 0}

    def s(x: float) -> float:
        return float(f"{x:.3g}")

    return {"n": int(e.size), "median_abs_pct": s(100 * np.median(np.abs(e))),
            "median_bias_pct": s(100 * np.median(e)),
            "p90_abs_pct": s(100 * np.percentile(np.abs(e), 90)),
            "max_abs_pct": s(100 * np.max(np.abs(e)))}
