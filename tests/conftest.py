import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def catalog():
    from fleetopt.physics.catalog import default_catalog

    return default_catalog()


#: GPUs and calibrated profiles whose power falls steeply with the batch, so that pool watts can
#: FALL as instances are added (tests of the instance ranges and the MIP's segments)
STEEP = """
[gpu.steep]
hbm_gb = 80.0
hbm_bw_tb_s = 3.35
fp16_tflops = 989.0
fp8_tflops = 1979.0
tdp_w = 700.0
price_per_gpu_hr = 2.0
power_idle_w = 20.0
power_plateau_w = 700.0
power_slope = 6.0
power_midpoint_log2 = 5.0

# a calibrated profile whose power falls steeply with the batch: pool watts can FALL as
# instances are added (the serving model's monotonicity check fails; the exact ranges apply)
[profile.steep-cal]
model = "llama-3.1-8b"
tp = 1
dtype = "fp16"
base_iter_s = 0.006
per_seq_s = 0.00005
ref_ctx_tokens = 8192
kv_blocks = 65536
block_tokens = 16
max_slot_tokens = 2097152
chunk_tokens = 1024
power_idle_w = 20.0
power_plateau_w = 700.0
power_slope = 6.0
power_midpoint_log2 = 6.8
price_per_gpu_hr = 2.0
"""


@pytest.fixture(scope="session")
def steep_catalog(tmp_path_factory):
    from fleetopt.physics.catalog import Catalog

    f = tmp_path_factory.mktemp("cat") / "steep.toml"
    f.write_text(STEEP)
    return Catalog.default().extend_from_file(f)
