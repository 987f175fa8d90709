"""The fault record every part of the board keeps: sensors and cameras alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class FaultRecord:
    """A part's current failure streak, its total faults and the last error, for the status."""

    consecutive_failures: int = 0
    fault_count: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        """No failure since the last good use (a part not used yet is not failing)."""
        return self.consecutive_failures == 0

    def failed(self, error: str) -> None:
        self.consecutive_failures += 1
        self.fault_count += 1
        self.last_error = error

    def succeeded(self) -> bool:
        """Record a good use; True when it ends a failure streak (the part recovered)."""
        recovered = self.consecutive_failures > 0
        self.consecutive_failures = 0
        return recovered
