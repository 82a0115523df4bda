"""Fleet specifications: pools with context ranges, deployments and instance counts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetopt.errors import FleetoptError
from fleetopt.profiles import Deployment


@dataclass(frozen=True)
class PoolSpec:
    """One serving pool.

    Requests whose TOTAL length (input + output) lies in ``(ctx_lo, ctx_hi]`` are routed here.
    The pool's KV window is ``window_tokens`` (default ``ctx_hi``); when it is smaller than
    ``ctx_hi`` the pool has a compress band: requests longer than the window have their prompt
    truncated to fit it (``docs/model.md``, compression model).
    """

    ctx_lo: int
    ctx_hi: int
    gpu: str
    tp: int
    instances: int
    dtype: str = "fp16"
    kv_dtype: str = "fp16"
    window_tokens: int | None = None

    @property
    def window(self) -> int:
        return int(self.window_tokens if self.window_tokens is not None else self.ctx_hi)

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.gpu, self.tp, self.dtype, self.kv_dtype)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["window_tokens"] is None:
            del d["window_tokens"]
        return d


_POOL_FIELDS = {"ctx_lo", "ctx_hi", "gpu", "tp", "instances", "dtype", "kv_dtype", "window_tokens"}
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

    @classmethod
    def from_list(cls, pools: list[dict[str, Any]], field_name: str = "fleet") -> Fleet:
        if isinstance(pools, dict) and "schema" in pools:
            pools = _document_pools(pools, field_name)
        if isinstance(pools, dict) and "pools" in pools:
            pools = pools["pools"]
        if not isinstance(pools, list):
            raise FleetoptError(field_name, "a FLEET.json is a list of pools (or an object with 'pools')")
        specs = []
        for i, d in enumerate(pools):
            f = f"{field_name}.pools[{i}]"
            if not isinstance(d, dict):
                raise FleetoptError(f, "each pool must be an object")
            missing = {"ctx_lo", "ctx_hi", "gpu", "tp", "instances"} - set(d)
            if missing:
                raise FleetoptError(f, f"missing keys {sorted(missing)}")
            kw = {k: d[k] for k in _POOL_FIELDS if k in d and d[k] is not None}
            for k in ("ctx_lo", "ctx_hi", "tp", "instances", "window_tokens"):
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
            specs.append(PoolSpec(**kw))
        return cls(tuple(specs))

    @classmethod
    def from_json_file(cls, path: str | Path, field_name: str = "--fleet") -> Fleet:
        from fleetopt.io import read_json

        return cls.from_list(read_json(path, field_name), field_name)
