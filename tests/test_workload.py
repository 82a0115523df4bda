"""Workloads: built-ins, CDF discretisation, user traces and CDFs, validation."""

import json

import numpy as np
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.problem.workload import (
    builtin,
    builtin_names,
    builtin_trace,
    cdf_points,
    from_cdf_file,
    from_trace_file,
)


def test_builtin_names_complete():
    assert set(builtin_names()) == {"azure-conv-2023", "azure-code-2023", "mooncake-conversation",
                                    "azure", "lmsys", "agent-heavy"}


@pytest.mark.parametrize("name", ["azure-conv-2023", "azure-code-2023", "mooncake-conversation"])
def test_trace_histograms_match_published_stats(name):
    w = builtin(name, 10)
    stats = w.meta["stats"]
    assert w.weights.sum() == pytest.approx(1.0)
    assert float(w.weights @ w.input_tokens) == pytest.approx(stats["input_mean"], rel=0.01)
    assert float(w.weights @ w.output_tokens) == pytest.approx(stats["output_mean"], rel=0.01)


def test_azure_conv_percentiles_from_data_readme():
    # data README: input p50/p99 = 1020/4142, output p50/p99 = 129/601
    s = builtin("azure-conv-2023").meta["stats"]
    assert (s["input_p50"], s["input_p99"], s["output_p50"], s["output_p99"]) == (1020, 4142, 129, 601)


def test_cdf_discretisation_preserves_cdf():
    knots = [[100, 0.5], [1000, 0.9], [4000, 1.0]]
    pts = cdf_points(knots, 0.8)
    tot = pts[:, 0] + pts[:, 1]
    for x, f in knots:
        assert pts[tot <= x, 2].sum() == pytest.approx(f, abs=1e-9)
    assert pts[:, 2].sum() == pytest.approx(1.0)
    # the 80/20 split
    big = tot >= 50  # integer rounding dominates tiny requests
    assert np.allclose(pts[big, 0] / tot[big], 0.8, atol=0.02)


def test_published_cdf_split_is_80_20():
    w = builtin("azure", 1000)
    assert float(w.weights @ w.input_tokens) / float(w.weights @ w.total_tokens) == pytest.approx(0.8, abs=0.01)
    assert w.share_at_most(4096) == pytest.approx(0.8982, abs=1e-3)


@pytest.mark.parametrize("knots, msg", [
    ([[100, 0.6], [200, 0.5], [300, 1.0]], "not monotone"),
    ([[100, 0.5], [200, 0.9]], "must end at 1"),
    ([[200, 0.5], [100, 1.0]], "strictly increasing"),
    ([[1, 2]], "must end at 1"),
    ("nonsense", "pairs"),
])
def test_bad_cdf(knots, msg):
    with pytest.raises(FleetoptError, match=msg) as e:
        cdf_points(knots)
    assert e.value.field == "workload.cdf"


def test_user_cdf_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps([[512, 0.5], [2048, 1.0]]))
    w = from_cdf_file(p, 5.0)
    assert w.rate_rps == 5.0 and w.max_total_tokens <= 2048
    p.write_text("{oops")
    with pytest.raises(FleetoptError, match="not valid JSON"):
        from_cdf_file(p, 5.0)


def test_user_trace_csv_and_jsonl(tmp_path):
    c = tmp_path / "t.csv"
    c.write_text("timestamp,input_tokens,output_tokens\n0,100,10\n1,200,20\n2,100,10\n")
    w = from_trace_file(c)
    assert w.rate_rps == pytest.approx(3 / 2)
    assert sorted(zip(w.input_tokens, w.weights, strict=True)) == [(100, pytest.approx(2 / 3)),
                                                                    (200, pytest.approx(1 / 3))]
    j = tmp_path / "t.jsonl"
    j.write_text('{"input_length": 5, "output_length": 7}\n{"input_length": 9, "output_length": 1}\n')
    w = from_trace_file(j, rate_rps=2.0)
    assert set(w.total_tokens) == {12, 10}
    with pytest.raises(FleetoptError, match="rate"):
        from_trace_file(j)  # no timestamps, no rate
    bad = tmp_path / "b.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(FleetoptError, match="needs a column"):
        from_trace_file(bad, 1.0)


def test_non_positive_rate_rejected():
    with pytest.raises(FleetoptError, match="rate") as e:
        builtin("azure", 0)
    assert e.value.field == "workload.rate"


def test_unknown_workload_suggests():
    with pytest.raises(FleetoptError, match="Did you mean 'azure'"):
        builtin("azur")


def test_shipped_trace_has_timestamps():
    t = builtin_trace("azure-conv-2023")
    assert len(t["input"]) == 19366
    assert np.all(np.diff(t["arrival_s"]) >= 0) and t["arrival_s"][-1] > 3000


# ------------------------------------------------------------------------------ block hashes


def test_mooncake_trace_carries_its_block_hashes():
    """The shipped hash ids line up with the shipped trace: one id per 512-token block of each
    prompt, the first requests as in Mooncake's file, prefix sharing intact."""
    import math

    from fleetopt.problem.workload import trace_hash_lists

    tr = builtin_trace("mooncake-conversation")
    n = len(tr["input"])
    assert tr["hash_block_tokens"] == 512 and len(tr["hash_offsets"]) == n + 1
    lens = np.diff(tr["hash_offsets"])
    assert np.array_equal(lens, np.ceil(tr["input"] / 512).astype(np.int64))
    lists = trace_hash_lists(tr)
    assert lists[0] == list(range(14)) and lists[1] == [0, *range(14, 28)]
    assert len(tr["hash_ids"]) == 288_500 and int(tr["hash_ids"].max()) == 182_789
    shared = sum(1 for h in lists if h and h[0] == 0)
    assert shared > n / 2  # most prompts share the first block (a common system prompt)
    assert math.isclose(len(set(tr["hash_ids"].tolist())) / len(tr["hash_ids"]), 182_790 / 288_500)
    assert "hash_ids" not in builtin_trace("azure-conv-2023")


def test_user_jsonl_trace_hash_ids(tmp_path):
    from fleetopt.problem.workload import read_trace

    p = tmp_path / "t.jsonl"
    p.write_text('{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}\n'
                 '{"timestamp": 10, "input_length": 100, "output_length": 5, "hash_ids": [0]}\n')
    tr = read_trace(p)
    assert tr["hash_ids"].tolist() == [0, 1, 0] and tr["hash_offsets"].tolist() == [0, 2, 3]
    p.write_text('{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}\n'
                 '{"timestamp": 10, "input_length": 100, "output_length": 5, "hash_ids": "x"}\n')
    with pytest.raises(FleetoptError, match="line 2: 'hash_ids'"):
        read_trace(p)


def test_read_hashes_runs(tmp_path):
    import gzip

    from fleetopt.problem.workload import read_hashes

    p = tmp_path / "h.txt.gz"
    p.write_bytes(gzip.compress(b"# hash_ids block_tokens=512 requests=3\n0-3\n0 7 9-10\n\n"))
    h = read_hashes(p)
    assert h["hash_ids"].tolist() == [0, 1, 2, 3, 0, 7, 9, 10]
    assert h["hash_offsets"].tolist() == [0, 4, 8, 8] and h["hash_block_tokens"] == 512
    p.write_bytes(gzip.compress(b"# hash_ids block_tokens=512 requests=4\n0-3\n"))
    with pytest.raises(ValueError, match="header says 4"):
        read_hashes(p)
