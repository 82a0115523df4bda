"""Fleet specifications: pools with context ranges, deployments and instance counts."""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.profiles import CALIBRATED_KV_DTYPE, Deployment

__all__ = ["FLEET_SCHEMAS", "PLAN_POOL_KEYS", "POOL_KEYS", "Fleet", "PoolSpec", "with_ep"]


@dataclass(frozen=True)
class PoolSpec:
    """One serving pool.

    Requests whose TOTAL length (input + output) lies in ``(ctx_lo, ctx_hi]`` are routed here.
    The pool's KV window is ``window_tokens`` (default ``ctx_hi``); when it is smaller than
    ``ctx_hi`` the pool has a compress band: requests longer than the window have their prompt
    truncated to fit it (``docs/model.md``, compression model). ``ep`` is the deployment's
    expert parallelism (1, or ``tp`` for a mixture of experts:
    :func:`fleetopt.physics.profiles.check_ep`).
    """

    ctx_lo: int
    ctx_hi: int
    gpu: str
    tp: int
    instances: int
    dtype: str | None = "fp16"  # None: not given in a FLEET.json (see Fleet.with_precisions)
    kv_dtype: str | None = "fp16"
    window_tokens: int | None = None
    ep: int = 1

    @classmethod
    def on(cls, deployment: Deployment, ctx_lo: int, ctx_hi: int, instances: int,
           window_tokens: int | None = None) -> PoolSpec:
        """The pool ``(ctx_lo, ctx_hi]`` of ``instances`` instances of ``deployment`` (a window
        equal to ``ctx_hi`` is stored as None)."""
        d = deployment
        return cls(ctx_lo, ctx_hi, d.gpu, d.tp, instances, d.dtype, d.kv_dtype,
                   None if window_tokens == ctx_hi else window_tokens, d.ep)

    @property
    def window(self) -> int:
        return int(self.window_tokens if self.window_tokens is not None else self.ctx_hi)

    @property
    def deployment(self) -> Deployment:
        """The pool's deployment (a precision still ``None``, as a FLEET.json may leave it, is
        refused by :func:`fleetopt.physics.profiles.resolve` with the pool's field name)."""
        return Deployment(self.gpu, self.tp, cast(str, self.dtype), cast(str, self.kv_dtype),
                          self.ep)

    def to_dict(self) -> dict[str, Any]:
        """The pool as a FLEET.json entry (``window_tokens`` and ``ep`` only where they differ
        from their defaults, ``ctx_hi`` and 1)."""
        d = asdict(self)
        if d["window_tokens"] is None:
            del d["window_tokens"]
        if d["ep"] == 1:
            del d["ep"]
        return d


#: keys of a pool in a FLEET.json or ``[[fleet.pool]]`` (the first five are required)
POOL_KEYS = ("ctx_lo", "ctx_hi", "gpu", "tp", "instances", "dtype", "kv_dtype", "window_tokens",
             "ep")
_POOL_FIELDS = set(POOL_KEYS)
#: every key of a pool in a plan or evaluation document (the fields of
#: :class:`fleetopt.evaluation.PoolResult`: the spec and its evaluated figures, which a FLEET.json
#: may carry and which are ignored when it is read; ``tests/test_api.py`` checks they agree)
PLAN_POOL_KEYS = ("ctx_lo", "ctx_hi", "gpu", "tp", "dtype", "instances", "gpus", "arrival_rate",
                  "utilization", "mean_batch", "slots", "window_tokens", "p99_ttft_ms",
                  "slo_met", "power_w", "output_tok_per_s", "tok_per_w", "cost_per_hr",
                  "min_instances", "compressed_share", "kv_dtype", "p99_tpot_ms",
                  "mean_tpot_ms", "p99_ttlt_ms", "mean_ttlt_ms", "prefill_share", "kv_util",
                  "kv_overflow_bound", "decode_util", "token_util", "mean_step_ms",
                  "tpot_slo_ms", "ep", "peak_factor")


def with_ep(row: dict[str, Any], ep: int | None) -> dict[str, Any]:
    """A pool's result object ``row`` with ``"ep": ep`` right after ``"tp"``; ``row`` itself
    when ``ep`` is None (a dense model has no expert parallelism to report)."""
    if ep is None:
        return row
    out: dict[str, Any] = {}
    for k, v in row.items():
        out[k] = v
        if k == "tp":
            out["ep"] = ep
    return out


#: fleetopt JSON documents whose ``pools`` are a fleet (``docs/config.md``)
FLEET_SCHEMAS = ("fleetopt.plan/1", "fleetopt.evaluation/1")


def _document_pools(doc: dict[str, Any], field_name: str) -> list[Any]:
    """The pools of a versioned fleetopt document, reduced to their spec fields (a plan's
    pools also carry their evaluated figures)."""
    tag = doc.get("schema")
    if tag not in FLEET_SCHEMAS:
        raise FleetoptError(field_name, f"a {tag!r} document holds no fleet; give a FLEET.json, "
                            f"or a JSON document of schema {', '.join(FLEET_SCHEMAS)}")
    pools = doc.get("pools")
    if not isinstance(pools, list) or not pools:
        raise FleetoptError(field_name, f"this {tag} document has no pools (was the problem "
                            "infeasible?)")
    return [{k: v for k, v in p.items() if k in _POOL_FIELDS} if isinstance(p, dict) else p
            for p in pools]


@dataclass(frozen=True)
class Fleet:
    """Pools covering contiguous length ranges from 0 upward, in order."""

    pools: tuple[PoolSpec, ...]

    def __post_init__(self) -> None:
        if not self.pools:
            raise FleetoptError("fleet", "a fleet needs at least one pool")
        prev = 0
        for i, p in enumerate(self.pools):
            f = f"fleet.pools[{i}]"
            if p.ctx_lo != prev:
                raise FleetoptError(
                    f"{f}.ctx_lo", f"pools must be contiguous from 0: expected ctx_lo = {prev}, "
                    f"got {p.ctx_lo}"
                )
            if p.ctx_hi <= p.ctx_lo:
                raise FleetoptError(f"{f}.ctx_hi", f"must exceed ctx_lo ({p.ctx_lo}), got {p.ctx_hi}")
            if p.instances < 0:
                raise FleetoptError(f"{f}.instances", f"must be >= 0, got {p.instances}")
            if isinstance(p.ep, bool) or not isinstance(p.ep, int) or p.ep < 1:
                raise FleetoptError(f"{f}.ep", f"must be a whole number >= 1 (1, or the pool's "
                                    f"tp for a mixture of experts), got {p.ep!r}")
            if p.window_tokens is not None and not (p.ctx_lo < p.window_tokens <= p.ctx_hi):
                raise FleetoptError(
                    f"{f}.window_tokens", f"must lie in (ctx_lo, ctx_hi] = ({p.ctx_lo}, {p.ctx_hi}]"
                )
            prev = p.ctx_hi

    @property
    def max_ctx(self) -> int:
        return self.pools[-1].ctx_hi

    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.pools]

    def with_precisions(self, dtypes: tuple[str, ...], kv_dtype: str, catalog: Any = None,
                        field_name: str = "fleet") -> Fleet:
        """Pools without a ``dtype`` (``kv_dtype``) given take the only one allowed: a
        calibrated profile's own, else the problem's single ``[model] dtype`` (its
        ``kv_dtype``). Where several dtypes are allowed, a missing one is an error naming them."""
        pools = []
        for i, p in enumerate(self.pools):
            f = f"{field_name}.pools[{i}]"
            prof = None
            if catalog is not None and catalog.is_profile(p.gpu):
                prof = catalog.profiles.get_spec(p.gpu, f"{f}.gpu")
            dt, kvd = p.dtype, p.kv_dtype
            if dt is None:
                if prof is not None:
                    dt = prof.dtype
                elif len(dtypes) == 1:
                    dt = dtypes[0]
                else:
                    raise FleetoptError(f"{f}.dtype", f"missing, and [model] dtype allows "
                                        f"{', '.join(dtypes)}; give the pool's dtype")
            if kvd is None:
                kvd = kv_dtype if prof is None else CALIBRATED_KV_DTYPE
            pools.append(replace(p, dtype=dt, kv_dtype=kvd))
        return Fleet(tuple(pools))

    @classmethod
    def from_list(cls, pools: list[dict[str, Any]], field_name: str = "fleet") -> Fleet:
        """A fleet from a FLEET.json / ``[[fleet.pool]]`` list. A pool may leave out ``dtype``
        and ``kv_dtype`` (None here: :meth:`with_precisions` fills them); any other key than
        :data:`POOL_KEYS` (and the result columns of a plan's pools) is an error."""
        if isinstance(pools, dict) and "schema" in pools:
            pools = _document_pools(pools, field_name)
        if isinstance(pools, dict) and "pools" in pools:
            pools = pools["pools"]
        if not isinstance(pools, list):
            raise FleetoptError(field_name, "a FLEET.json is a list of pools (or an object with 'pools')")
        plan_keys = set(PLAN_POOL_KEYS)
        specs = []
        for i, d in enumerate(pools):
            f = f"{field_name}.pools[{i}]"
            if not isinstance(d, dict):
                raise FleetoptError(f, "each pool must be an object")
            unknown = [k for k in d if k not in _POOL_FIELDS and k not in plan_keys]
            if unknown:
                k = unknown[0]
                m = difflib.get_close_matches(str(k), POOL_KEYS, n=1, cutoff=0.6)
                hint = f" (did you mean {m[0]!r}?)" if m else ""
                raise FleetoptError(f"{f}.{k}", f"unknown pool key{hint}; known: "
                                    f"{', '.join(POOL_KEYS)}")
            missing = [k for k in POOL_KEYS[:5] if d.get(k) is None]
            if missing:
                raise FleetoptError(f, f"missing keys {missing}")
            kw = {k: d[k] for k in _POOL_FIELDS if k in d and d[k] is not None}
            for k in ("ctx_lo", "ctx_hi", "tp", "instances", "window_tokens", "ep"):
                if k in kw:
                    v = kw[k]
                    try:
                        ok = not isinstance(v, bool) and math.isfinite(float(v)) \
                            and float(v) == int(float(v))
                    except (TypeError, ValueError, OverflowError):
                        ok = False
                    if not ok:
                        raise FleetoptError(f"{f}.{k}", f"must be a whole number, got {v!r}")
                    kw[k] = int(float(v))
            for k in ("gpu", "dtype", "kv_dtype"):
                if k in kw and not isinstance(kw[k], str):
                    raise FleetoptError(f"{f}.{k}", f"must be a name (string), got {kw[k]!r}")
            kw.setdefault("dtype", None)
            kw.setdefault("kv_dtype", None)
            specs.append(PoolSpec(**kw))
        return cls(tuple(specs))

    @classmethod
    def from_json_file(cls, path: str | Path, field_name: str = "--fleet") -> Fleet:
        from fleetopt.core.jsonio import read_json

        return cls.from_list(read_json(path, field_name), field_name)
