"""The shipped calibration of the step and power models (``fleetopt/data/calibration.json``).

Per GPU type the file holds (``scripts/derive_calibration.py`` derives it; ``docs/data.md``
gives its provenance and errors):

* ``step``: the end-to-end :class:`~fleetopt.physics.iteration.StepParams` a computed profile
  uses: ``fitted`` to ML.ENERGY's measured median ITL and throughput (H100-SXM, B200), or
  ``projected`` (AIConfigurator's kernel parameters of that GPU scaled by the end-to-end /
  kernel ratios of the same generation's measured GPU; MI300X: H100's set on its own peaks);
* ``kernel``: the kernel-only parameters fitted to AIConfigurator's estimates (no host or
  per-sequence cost), where AIC covers the GPU;
* ``power``: the :class:`~fleetopt.physics.power.ActivityPower` coefficients (``fitted``, or
  ``projected`` from the same generation's measured GPU with this GPU's idle power and TDP);
* ``idle_w``: the draw of a GPU of an instance that runs no iteration (``projected``: public
  nvidia-smi readings; ML.ENERGY has no idle points).

A GPU the file does not know (a user's catalog entry) gets the ``default_gpu``'s end-to-end
parameters and power coefficients on its own peaks, its catalog idle power and TDP, all
``projected``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fleetopt.physics.catalog.specs import GPUSpec
from fleetopt.physics.iteration import StepParams
from fleetopt.physics.power import ActivityPower

__all__ = ["CALIBRATION_FILE", "GPUCalibration", "calibration_data", "gpu_calibration"]

CALIBRATION_FILE = "calibration.json"


@functools.cache
def calibration_data() -> dict[str, Any]:
    """The shipped calibration file, parsed once."""
    path = resources.files("fleetopt.data").joinpath(CALIBRATION_FILE)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@dataclass(frozen=True)
class GPUCalibration:
    """What a computed profile takes from the calibration for one GPU type."""

    gpu: str
    params: StepParams  # end-to-end (what a profile uses)
    quality: str  # of ``params``: fitted | projected
    set_name: str  # mlenergy | projected | default (a GPU the file does not know)
    kernel_params: StepParams | None  # AIC kernel-only set, where AIC covers the GPU
    power: ActivityPower
    source: str

    def describe(self) -> str:
        return f"{self.quality} ({self.set_name}): {self.source}"


def _power(gpu: GPUSpec, p: dict[str, Any], idle: dict[str, Any], quality: str,
           source: str) -> ActivityPower:
    return ActivityPower(
        idle_w=float(idle["watts"]), tdp_w=gpu.tdp_w,
        **{k: float(p[k]) for k in ("b0", "b_c", "b_m", "b_x", "b_s")},
        quality=quality, idle_quality=str(idle.get("quality", "projected")), source=source)


@functools.lru_cache(maxsize=64)
def gpu_calibration(gpu: GPUSpec) -> GPUCalibration:
    """The calibration of ``gpu`` (by its catalog name; see the module docstring for GPUs the
    file does not know)."""
    data = calibration_data()
    entry = data["gpus"].get(gpu.name)
    if entry is None:
        ref = data["default_gpu"]
        e = data["gpus"][ref]
        src = (f"no calibration for {gpu.name}: {ref}'s end-to-end step parameters and power "
               f"coefficients on {gpu.name}'s catalog peaks, idle power "
               f"{gpu.power.idle_w:g} W (catalog) and TDP {gpu.tdp_w:g} W")
        return GPUCalibration(
            gpu=gpu.name, params=StepParams.from_dict(e["step"]["params"]), quality="projected",
            set_name="default", kernel_params=None,
            power=_power(gpu, e["power"], {"watts": min(gpu.power.idle_w, gpu.tdp_w),
                                          "quality": "projected"}, "projected", src),
            source=src)
    step = entry["step"]
    kern = entry.get("kernel")
    pw = entry["power"]
    return GPUCalibration(
        gpu=gpu.name, params=StepParams.from_dict(step["params"]), quality=step["quality"],
        set_name=step["set"],
        kernel_params=StepParams.from_dict(kern["params"]) if kern else None,
        power=_power(gpu, pw, entry["idle_w"], pw["quality"], pw.get("derivation", "")),
        source=step.get("derivation", ""))
