"""TEMPORARY (issue 11): the interim step model equals the research code it ports.

Delete with fleetopt/sizing/interim_physics.py when the physics branch merges (the physics
engineer's own tests cover physics/iteration.py). The reference is a verbatim copy of
/work/research/calib/stepmodel.py in tests/support/stepmodel_ref.py.
"""

import tomllib
from importlib import resources

import numpy as np
import pytest

from fleetopt.physics.catalog import default_catalog
from fleetopt.physics.profiles import Deployment, resolve
from fleetopt.sizing.interim_physics import CALIBRATION, InterimPhysics, interim_physics
from tests.support import stepmodel_ref as sm


def _toml(name):
    with resources.files("fleetopt.physics.catalog").joinpath(name).open("rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b",
                                   "qwen3-30b-a3b"])
@pytest.mark.parametrize("gpu, tp, dtype", [("H100-SXM", 8, "fp16"), ("B200", 2, "fp8"),
                                            ("A100-SXM", 4, "fp16"), ("L40S", 1, "fp8"),
                                            ("H200-SXM", 1, "fp16")])
def test_terms_and_power_equal_the_research_step_model(model, gpu, tp, dtype):
    prof = resolve(Deployment(gpu, tp, dtype), model, default_catalog())
    if prof.fit_error():
        pytest.skip("does not fit")
    rng = np.random.default_rng(0)
    n = 64
    D = rng.uniform(0, 600, n)
    K = D * rng.uniform(50, 8000, n)
    P = rng.uniform(0, 8000, n)
    A = P * P / 2 + P * rng.uniform(0, 3e4, n)
    Kp = rng.uniform(0, 3e4, n)
    mine = interim_physics(prof)
    models = _toml("models.toml")
    mt = sm.model_terms(models[model], tp=tp, dtype="bf16" if dtype == "fp16" else "fp8",
                        kv_dtype="bf16")
    hw = sm.hw_terms(_toml("gpus.toml")[gpu])
    ref = sm.step_terms(D, K, P, A, Kp, mt=mt, hw=hw, params=CALIBRATION[gpu]["params"])
    got = mine.terms(D, K, P, A, Kp)
    for key, v in got.items():
        np.testing.assert_allclose(v, ref[key], rtol=1e-10, err_msg=key)
    coef = {**CALIBRATION[gpu]["power"], "form": "busy_sat"}
    want = sm.gpu_power_sat(sm.utilisation(ref, hw), coef, hw["tdp"])
    np.testing.assert_allclose(mine.gpu_power_w(got), want, rtol=1e-10)
    # stacked with another deployment, each column is its own deployment
    other = interim_physics(resolve(Deployment("H100-SXM", 8, "fp16"), "llama-3.1-70b",
                                    default_catalog()))
    st = InterimPhysics.stack([mine, other]).take(np.zeros(n, dtype=int))
    for key, v in st.terms(D, K, P, A, Kp).items():
        np.testing.assert_allclose(v, got[key], rtol=1e-12, err_msg=key)
