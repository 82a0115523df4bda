"""Sweep results: one tidy row per scenario (:data:`RESULT_COLUMNS`), saved and read back as
parquet, CSV or the ``fleetopt.sweep/1`` JSON document."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from fleetopt.core.errors import FleetoptError
from fleetopt.core.files import write_output
from fleetopt.core.jsonio import read_json, schema, to_json, versioned

__all__ = ["RESULT_COLUMNS", "SIM_COLUMNS", "read_results", "save_results", "tidy"]

#: columns every result row has (swept keys beyond these are added after ``scenario``)
RESULT_COLUMNS: tuple[str, ...] = (
    "scenario_id", "scenario", "workload", "rate_rps", "model", "ttft_p99_ms", "gpus_allowed",
    "budget_per_hr", "status", "power_w", "cost_per_hr", "gpus", "instances", "n_pools", "mix",
    "tok_per_w", "output_tok_per_s", "worst_p99_ttft_ms", "objective", "bound", "gap",
    "gpus_by_type", "plan", "solve_s", "message", "settings",
)
SIM_COLUMNS: tuple[str, ...] = (
    "sim_p99_ttft_ms", "sim_worst_pool_p99_ttft_ms", "sim_power_w", "sim_output_tok_per_s",
    "sim_tok_per_w", "sim_slo_met", "sim_s",
)


def tidy(rows: list[dict[str, Any]], swept: list[str], simulate: bool) -> pd.DataFrame:
    extra = [k for k in swept if k not in RESULT_COLUMNS]
    cols = list(RESULT_COLUMNS[:2]) + extra + list(RESULT_COLUMNS[2:])
    if simulate:
        cols += list(SIM_COLUMNS)
    cols.append("resumed")
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    df = df[cols]
    for c in ("rate_rps", "ttft_p99_ms", "budget_per_hr", "power_w", "cost_per_hr", "tok_per_w",
              "output_tok_per_s", "worst_p99_ttft_ms", "objective", "bound", "gap", "solve_s",
              *(c for c in SIM_COLUMNS if c in df.columns and c not in ("sim_slo_met",))):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in ("gpus", "instances", "n_pools"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    for c in ("scenario_id", "scenario", "workload", "model", "gpus_allowed", "status", "mix",
              "gpus_by_type", "plan", "message", "settings"):
        df[c] = df[c].astype("string")
    for c in extra:
        vals = [v for v in df[c] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        elif vals and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        else:
            df[c] = df[c].map(lambda v: None if v is None else str(v)).astype("string")
    if "sim_slo_met" in df.columns:
        df["sim_slo_met"] = df["sim_slo_met"].astype("boolean")
    df["resumed"] = df["resumed"].fillna(False).astype(bool)
    return df


def save_results(frame: pd.DataFrame, out: str | Path) -> None:
    """Write results by suffix: ``.parquet`` (pyarrow), ``.csv`` or ``.json`` (all or nothing;
    JSON is the ``fleetopt.sweep/1`` document, ``docs/config.md``)."""
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise FleetoptError("--out", "writing parquet needs pyarrow (pip install pyarrow); "
                                "or write .csv") from None
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        write_output(p, buf.getvalue(), "--out", allow_stdout=False)
    elif suffix == ".csv":
        write_output(p, frame.to_csv(index=False), "--out", allow_stdout=False)
    elif suffix == ".json":
        doc = versioned("sweep", {"columns": list(frame.columns),
                                  "rows": frame.to_dict("records")})
        write_output(p, to_json(doc, indent=1) + "\n", "--out", allow_stdout=False)
    else:
        raise FleetoptError("--out", f"unknown output type {suffix or '(none)'!r}: use .parquet, "
                            ".csv or .json")


def read_results(path: str | Path) -> pd.DataFrame:
    """Read results written by :func:`save_results`."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        return pd.read_parquet(p)
    if p.suffix.lower() == ".json":
        doc = read_json(p, "results")
        if isinstance(doc, dict) and doc.get("schema") == schema("sweep"):
            return pd.DataFrame(doc["rows"], columns=doc.get("columns"))
        if isinstance(doc, list):  # written before the schema was versioned
            return pd.DataFrame(doc)
        raise FleetoptError("results", f"{p} is not a {schema('sweep')} document")
    return pd.read_csv(p)
