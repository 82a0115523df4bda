"""A wall-clock deadline shared by every phase of a solve (and by its worker processes).

``Deadline(seconds)`` fixes an end time on the monotonic clock when it is created. Phases check
it cooperatively between units of work (candidate families, MIP solves) and hand what is left
to HiGHS as its own time limit. ``time.monotonic`` is the system-wide ``CLOCK_MONOTONIC`` on
Linux and macOS, so a pickled deadline means the same instant in a worker process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["Deadline"]


@dataclass(frozen=True)
class Deadline:
    """An end time (``time.monotonic()`` seconds), or none."""

    end: float | None = None
    limit_s: float | None = None

    @staticmethod
    def after(seconds: float | None) -> Deadline:
        if seconds is None:
            return Deadline()
        return Deadline(time.monotonic() + float(seconds), float(seconds))

    @property
    def bounded(self) -> bool:
        return self.end is not None

    def remaining(self) -> float:
        """Seconds left (``inf`` without a deadline; may be negative once passed)."""
        return math.inf if self.end is None else self.end - time.monotonic()

    def expired(self, reserve_s: float = 0.0) -> bool:
        """True once fewer than ``reserve_s`` seconds remain."""
        return self.end is not None and self.remaining() <= reserve_s

    def until(self, fraction: float) -> Deadline:
        """An earlier deadline: ``fraction`` of the time left from now (same limit label)."""
        if self.end is None:
            return self
        now = time.monotonic()
        return Deadline(now + max(0.0, self.end - now) * fraction, self.limit_s)
