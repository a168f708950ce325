"""A grading job's parameters as plain data: the per-submission limits, and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MIB = 2048


@dataclass(frozen=True)
class Limits:
    timeout: float = DEFAULT_TIMEOUT_S
    memory_mib: int = DEFAULT_MEMORY_MIB

    def as_job(self) -> dict[str, Any]:
        return {"timeout": float(self.timeout), "memory_mib": int(self.memory_mib)}
