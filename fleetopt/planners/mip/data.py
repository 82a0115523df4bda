"""The fleet MIP as arrays: one data layer feeding both backends (Pyomo and direct highspy),
and the outcome of one solver run (:class:`SolverRun`, whatever the backend).

Symbols (``docs/formulation.md``): candidates ``j`` (``Candidate``), their segments ``s``;
columns ``z[j,s]`` (binary: pool ``j`` exists and runs on segment ``s``) and ``n[j,s]``
(integer: its instances when on segment ``s``); rows ``flow[t]``, ``link_lo[j,s]``,
``link_hi[j,s]``, ``pools``, ``budget``, ``inventory[g]``, ``max_gpus`` and, in the second
phase of the lexicographic objective, ``power_cap``.

A single-point segment (``N_lo = N_hi = n``, :func:`single_point`: most candidates are one
exact point) is folded: it has the column ``z[j,s]`` only, its pool has ``n z[j,s]``
instances, and its watts ``alpha + beta n``, dollars ``c n`` and GPUs ``g n`` are ``z``'s
coefficients; it has no ``n`` column and no ``link`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fleetopt.core.status import Status

if TYPE_CHECKING:
    from scipy import sparse

    from fleetopt.problem.problem import Problem
    from fleetopt.sizing.candidates import CandidateSet

__all__ = ["MipData", "SolverRun", "build_mip_data", "gap_of", "run_status",
           "single_point"]


def single_point(segment: tuple[int, int, float, float]) -> bool:
    """Whether a segment ``(N_lo, N_hi, alpha, beta)`` is one count (``N_lo = N_hi``): both
    backends then state it with ``z`` alone (instances ``N_lo z``)."""
    return segment[0] == segment[1]


@dataclass
class MipData:
    """Columns, rows and their meaning. Row ``r``: ``row_lo[r] <= A[r] @ x <= row_hi[r]``.

    ``pair[(j, s)] = (z column, n column)``; the n column is ``None`` for a folded single-point
    segment, whose instances are ``N_lo z``. ``col_inst``: instances per unit of a column
    (``N_lo`` on a folded ``z``, 1 on ``n``, 0 on the ``z`` of a real segment)."""

    cset: CandidateSet
    col_cand: np.ndarray  # candidate index per column
    col_seg: np.ndarray  # segment index per column
    col_kind: np.ndarray  # 0 = z (binary), 1 = n (integer)
    col_lo: np.ndarray
    col_hi: np.ndarray
    power_coef: np.ndarray  # watts = power_coef @ x (alpha on z, beta on n; folded: alpha + beta n)
    cost_coef: np.ndarray  # $/hr = cost_coef @ x
    gpu_coef: np.ndarray  # physical GPUs = gpu_coef @ x
    A: sparse.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    row_names: list[str]
    seg_bounds: list[tuple[int, int, float, float]] = field(default_factory=list)  # pair order
    pair: dict[tuple[int, int], tuple[int, int | None]] = field(default_factory=dict)
    col_inst: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def ncol(self) -> int:
        return len(self.col_lo)

    def objective(self, name: str) -> np.ndarray:
        return self.cost_coef if name == "cost_per_hr" else self.power_coef

    def row_index(self, name: str) -> int:
        return self.row_names.index(name)

    def pools(self, x: np.ndarray) -> list[tuple[int, int, int]]:
        """``(j, s, instances)`` of every pool a solution ``x`` puts in the fleet (``z = 1``)."""
        out = []
        for (j, s), (zc, nc) in self.pair.items():
            if x[zc] > 0.5:
                n = self.col_inst[zc] if nc is None else x[nc]
                out.append((j, s, int(round(n))))
        return out

    def point(self, pools: list[tuple[int, int, int]]) -> np.ndarray:
        """The solution ``x`` with the pools ``(j, s, instances)`` (e.g. a MIP start)."""
        x = np.zeros(self.ncol)
        for j, s, n in pools:
            zc, nc = self.pair[(j, s)]
            x[zc] = 1.0
            if nc is not None:
                x[nc] = float(n)
            elif n != self.col_inst[zc]:
                raise ValueError(f"candidate {j} segment {s} is the single count "
                                 f"{int(self.col_inst[zc])}, not {n}")
        return x


def build_mip_data(problem: Problem, cset: CandidateSet, *, relax: tuple[str, ...] = (),
                   fold: bool = True) -> MipData:
    """Assemble the MIP arrays. ``relax`` names limits to drop (used to explain infeasibility);
    ``fold=False`` keeps the two-column form for single-point segments too (the tests compare
    both forms)."""
    from scipy import sparse

    cands = cset.candidates
    col_cand: list[int] = []
    col_seg: list[int] = []
    col_kind: list[int] = []
    lo: list[float] = []
    hi: list[float] = []
    pcoef: list[float] = []
    ccoef: list[float] = []
    gcoef: list[float] = []
    inst: list[float] = []
    seg_bounds: list[tuple[int, int, float, float]] = []
    pair: dict[tuple[int, int], tuple[int, int | None]] = {}
    for j, c in enumerate(cands):
        cost, gpus = c.cost_per_instance_hr, float(c.gpus_per_instance)
        for s, seg in enumerate(c.segments()):
            nlo, nhi, alpha, beta = seg
            zc = len(col_cand)
            seg_bounds.append(seg)
            if fold and single_point(seg):  # z alone, with nlo z instances
                col_cand.append(j)
                col_seg.append(s)
                col_kind.append(0)
                lo.append(0.0)
                hi.append(1.0)
                pcoef.append(alpha + beta * nlo)
                ccoef.append(cost * nlo)
                gcoef.append(gpus * nlo)
                inst.append(float(nlo))
                pair[(j, s)] = (zc, None)
                continue
            col_cand += [j, j]
            col_seg += [s, s]
            col_kind += [0, 1]
            lo += [0.0, 0.0]
            hi += [1.0, float(nhi)]
            pcoef += [alpha, beta]
            ccoef += [0.0, cost]
            gcoef += [0.0, gpus]
            inst += [0.0, 1.0]
            pair[(j, s)] = (zc, zc + 1)
    ncol = len(col_cand)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    rlo: list[float] = []
    rhi: list[float] = []
    names: list[str] = []

    def add_row(name: str, entries: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(names)
        for col, v in entries:
            rows.append(r)
            cols.append(col)
            vals.append(v)
        names.append(name)
        rlo.append(low)
        rhi.append(high)

    K = cset.K
    flow: dict[int, list[tuple[int, float]]] = {t: [] for t in range(K + 1)}
    for (j, _s), (zc, _nc) in pair.items():
        c = cands[j]
        flow[c.i].append((zc, 1.0))
        flow[c.k].append((zc, -1.0))
    for t in range(K + 1):
        rhs = 1.0 if t == 0 else (-1.0 if t == K else 0.0)
        add_row(f"flow[{t}]", flow[t], rhs, rhs)
    for ((j, s), (zc, nc)), (nlo, nhi, _a, _b) in zip(pair.items(), seg_bounds, strict=True):
        if nc is None:
            continue
        add_row(f"link_lo[{j},{s}]", [(nc, 1.0), (zc, -float(nlo))], 0.0, np.inf)
        add_row(f"link_hi[{j},{s}]", [(nc, 1.0), (zc, -float(nhi))], -np.inf, 0.0)
    zcols = [zc for zc, _ in pair.values()]
    icols = [col for col in range(ncol) if inst[col] > 0]  # the columns that carry instances
    if "pools" not in relax:
        add_row("pools", [(zc, 1.0) for zc in zcols], -np.inf, float(problem.max_pools))
    if problem.budget_per_hr is not None and "budget" not in relax:
        add_row("budget", [(col, ccoef[col]) for col in icols], -np.inf, problem.budget_per_hr)
    if "inventory" not in relax:
        for g, cap in problem.inventory:
            ent = [(col, gcoef[col]) for col in icols if cands[col_cand[col]].inventory_key == g]
            add_row(f"inventory[{g}]", ent, -np.inf, float(cap))
    if problem.max_gpus is not None and "max_gpus" not in relax:
        add_row("max_gpus", [(col, gcoef[col]) for col in icols], -np.inf,
                float(problem.max_gpus))
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(len(names), ncol))
    return MipData(
        cset=cset, col_cand=np.asarray(col_cand), col_seg=np.asarray(col_seg),
        col_kind=np.asarray(col_kind), col_lo=np.asarray(lo), col_hi=np.asarray(hi),
        power_coef=np.asarray(pcoef), cost_coef=np.asarray(ccoef), gpu_coef=np.asarray(gcoef),
        A=A, row_lo=np.asarray(rlo), row_hi=np.asarray(rhi), row_names=names,
        seg_bounds=seg_bounds, pair=pair, col_inst=np.asarray(inst),
    )


@dataclass
class SolverRun:
    """One solver run, whatever the backend: status, solution (columns of :class:`MipData`),
    objective, bound and gap, times."""

    status: Status
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    translate_s: float
    solve_s: float
    message: str = ""
    model_s: float = 0.0  # building the Pyomo model (Pyomo backend only)


def run_status(outcome: str, has_solution: bool) -> Status:
    """THE status of a run from its backend's outcome, mapped by the backend to ``optimal``,
    ``infeasible``, ``time_limit`` or ``other`` (:mod:`.highs`, :mod:`.pyomo`): another outcome
    is ``feasible`` with a solution, else ``error``."""
    if outcome == "optimal":
        return Status.OPTIMAL
    if outcome == "infeasible":
        return Status.INFEASIBLE
    if outcome == "time_limit":
        return Status.TIME_LIMIT
    return Status.FEASIBLE if has_solution else Status.ERROR


def gap_of(objective: float | None, bound: float | None) -> float | None:
    """Relative gap ``|objective - bound| / |objective|`` (None unless both are known)."""
    if objective is None or bound is None:
        return None
    return abs(objective - bound) / max(abs(objective), 1e-10)
