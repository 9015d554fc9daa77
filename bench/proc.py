"""CPU seconds per process from /proc, grouped by component.

Why /proc and not wall time: CPU microseconds per event carry across machines and across whatever
else runs on a shared box, where events/s do not. ``/proc/<pid>/stat`` fields 14 and 15 (utime,
stime) count every thread of the process in clock ticks (10 ms at the usual 100 Hz), so a window
of several seconds is exact to well under 1%.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU seconds ``pid`` has used so far; None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 onwards
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def sample(pids: Mapping[str, list[int]]) -> dict[str, float]:
    """CPU seconds per component (the sum over its processes; a vanished process counts 0)."""
    return {name: sum(cpu_seconds(pid) or 0.0 for pid in group) for name, group in pids.items()}


def per_event_us(before: Mapping[str, float], after: Mapping[str, float], events: int) -> dict[str, float]:
    """CPU microseconds per event of each component between two samples, plus their ``total``."""
    out = {name: round(1e6 * (after[name] - before.get(name, 0.0)) / events, 1) if events else 0.0
           for name in after}
    out["total"] = round(sum(out.values()), 1)
    return out
