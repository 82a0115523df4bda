"""The catalog corrections of issue 11 and the validation of the new model fields."""

from __future__ import annotations

import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.catalog import Catalog
from fleetopt.physics.catalog.specs import FP8_SCHEMES, FP8_SCOPES, GIB


def test_qwen3_2507_releases_are_their_own_entries(catalog):
    for base, inst in (("qwen3-235b-a22b", "qwen3-235b-a22b-instruct-2507"),
                       ("qwen3-30b-a3b", "qwen3-30b-a3b-instruct-2507")):
        b, i = catalog.model(base), catalog.model(inst)
        assert b.max_context == 40960 and i.max_context == 262144
        for f in ("layers", "hidden_size", "params_total_b", "experts", "expert_params_b"):
            assert getattr(b, f) == getattr(i, f)
    assert catalog.model("Qwen/Qwen3-235B-A22B-Instruct-2507").name == \
        "qwen3-235b-a22b-instruct-2507"
    assert catalog.model("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8").name == \
        "qwen3-235b-a22b-instruct-2507"
    assert catalog.model("Qwen/Qwen3-235B-A22B").name == "qwen3-235b-a22b"
    assert catalog.model("qwen3-30b-a3b-instruct").max_context == 262144


def test_deepseek_v3_and_qwen3_8b(catalog):
    ds = catalog.model("deepseek-v3")
    assert ds.params_active_b == 37.0
    assert (ds.q_lora_rank, ds.nope_head_dim, ds.value_head_dim) == (1536, 128, 128)
    assert ds.fp8_scheme == "block"
    q = catalog.model("Qwen/Qwen3-8B")
    assert (q.layers, q.hidden_size, q.kv_heads, q.params_total_b, q.max_context) == \
        (36, 4096, 8, 8.19, 40960)


def test_fp8_schemes_per_checkpoint(catalog):
    want = {"llama-3.1-8b": ("tensor", "linear"), "llama-3.1-70b": ("tensor", "linear"),
            "llama-3.1-405b": ("tensor", "ffn"), "mixtral-8x7b": ("tensor", "linear"),
            "qwen3-235b-a22b": ("block", "linear"), "qwen3-8b": ("block", "linear"),
            "deepseek-v3": ("block", "linear")}
    for name, (scheme, scope) in want.items():
        m = catalog.model(name)
        assert (m.fp8_scheme, m.fp8_scope) == (scheme, scope) and m.fp8_source
    for m in catalog.models.values():
        assert m.fp8_scheme in FP8_SCHEMES and m.fp8_scope in FP8_SCOPES


def test_memory_is_gib(catalog):
    assert catalog.gpu("GB200").hbm_gb == 186.0
    assert catalog.gpu("H100-SXM").hbm_bytes == 80 * GIB
    for g in catalog.gpus.values():
        assert g.hbm_bytes == g.hbm_gb * 2 ** 30


@pytest.mark.parametrize("field, value, msg", [
    ("fp8_scheme", "row", "one of 'tensor', 'block'"),
    ("fp8_scope", "attention", "one of 'linear', 'ffn'"),
    ("q_lora_rank", -1, ">= 0"),
    ("v_head_dim", 1.5, "whole number"),
    ("fp8_source", 3, "a string"),
])
def test_new_model_fields_are_checked(tmp_path, field, value, msg):
    f = tmp_path / "cat.toml"
    v = f'"{value}"' if isinstance(value, str) else value
    f.write_text(f'[model.deepseek-v3]\n{field} = {v}\n')
    with pytest.raises(FleetoptError) as e:
        Catalog.default().extend_from_file(f)
    assert e.value.field == f"catalog.model.deepseek-v3.{field}" and msg in str(e.value)


@pytest.mark.parametrize("body, field", [
    ("experts_per_token = 0", "experts_per_token"),
    ("expert_params_b = 0.0", "expert_params_b"),
    ("moe_layers = 0", "moe_layers"),
])
def test_moe_fields_must_agree(tmp_path, body, field):
    f = tmp_path / "cat.toml"
    f.write_text(f"[model.mixtral-8x7b]\n{body}\n")
    with pytest.raises(FleetoptError) as e:
        Catalog.default().extend_from_file(f)
    assert e.value.field == f"catalog.model.mixtral-8x7b.{field}"


def test_a_user_model_overrides_the_fp8_scheme(tmp_path):
    f = tmp_path / "cat.toml"
    f.write_text('[model.qwen3-8b]\nfp8_scheme = "tensor"\nfp8_source = "my per-channel FP8"\n')
    cat = Catalog.default().extend_from_file(f)
    assert cat.model("qwen3-8b").fp8_scheme == "tensor"
