"""Expert routing of a mixture of experts: the share of its routed experts a step touches.

With top-``k`` routing of each of ``T`` tokens over ``E`` experts, independent and uniform, an
expert is touched with probability ``p = 1 - (1 - k/E)^T``. Under expert parallelism (``ep``
GPUs, ``n = E/ep`` experts each) the step waits for the GPU that touched the most of its own:
about ``s = min(1, p + z_ep sqrt(p (1 - p) / n))`` of them, ``z_ep`` the expected maximum of
``ep`` standard normals (0 without EP, where ``s = p``). This module holds that formula once;
the step formula (``iteration``), the power floor (``power``) and the roofline (``step``) read
it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["routed_share", "z_ep"]

#: E[max of g iid standard normals] (Tippett / Harter tables); beyond: sqrt(2 ln g)
_EMAX_NORMAL = {1: 0.0, 2: 0.5642, 4: 1.0294, 8: 1.4236, 16: 1.7660}

_NP = SimpleNamespace(maximum=np.maximum, minimum=np.minimum, sqrt=np.sqrt)


def z_ep(ep: int) -> float:
    """E[max of ``ep`` standard normals]: the EP straggler factor of :func:`routed_share`."""
    if ep <= 1:
        return 0.0
    return _EMAX_NORMAL.get(int(ep), math.sqrt(2.0 * math.log(ep)))


def routed_share(keep_prob: Any, z: Any, inv_experts_per_gpu: Any, tokens: Any,
                 xp: Any = None, least: float = 1.0) -> tuple[Any, Any]:
    """``(p, s)`` of the module docstring for a step of ``T = max(tokens, least)`` tokens:
    ``p = 1 - keep_prob^T`` (``keep_prob = 1 - k/E``) and ``s = min(1, p + z sqrt(p (1 - p)
    inv_experts_per_gpu))`` (``z = z_ep(ep)``, ``inv_experts_per_gpu = ep/E``). Floats or
    arrays; ``xp``: a namespace with ``maximum``, ``minimum`` and ``sqrt`` (default numpy's)."""
    m = _NP if xp is None else xp
    p = 1.0 - keep_prob ** m.maximum(tokens, least)
    return p, m.minimum(1.0, p + z * m.sqrt(p * (1.0 - p) * inv_experts_per_gpu))
