"""How many torch threads a CPU run should use: never more than the cores it may run on and that no other process
keeps busy, looked at again as the run goes (:class:`ThreadGovernor`), since other processes come and go.

Over-subscription is the costly mistake on a shared machine: a decode step of the demo model took 178 ms with one
thread and 2.4 s with two while another process held the second core, because torch's threads wait on each other at
every operation and one of them keeps losing its core. torch's own default counts the machine's cores, not the ones
this process may use (its CPU affinity, a container's CPU quota) nor the ones others are using.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

#: A core counts as busy when other processes kept it this share of a short look at /proc/stat.
BUSY_SHARE = 0.5


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = Path("/sys/fs/cgroup/cpu.max")
    try:
        limit, period = quota.read_text().split()[:2]
        if limit != "max":
            cores = min(cores, max(1, math.ceil(int(limit) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _cpu_times() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            times[int(name[3:])] = (sum(values) - idle, sum(values))
    return times


def busy_cores(seconds: float = 0.3) -> int:
    """Cores of this process's affinity that other processes keep busy, from a short look at /proc/stat (0 where it
    cannot be read). Call it while this process is idle: its own work would count."""
    try:
        first = _cpu_times()
        time.sleep(seconds)
        second = _cpu_times()
    except (OSError, ValueError):
        return 0
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(second)
    busy = 0
    for cpu in allowed:
        if cpu in first and cpu in second:
            used, total = (b - a for a, b in zip(first[cpu], second[cpu], strict=True))
            busy += total > 0 and used / total >= BUSY_SHARE
    return busy


def choose_threads(option: str | int) -> tuple[int, str]:
    """The thread count an option asks for and why: a number is taken as is; ``auto`` is the usable cores less those
    other processes keep busy (at least 1), never more than torch's current setting (by default, the machine's
    cores)."""
    if str(option) != "auto":
        threads = int(option)
        if threads < 1:
            raise ValueError(f"torch threads must be auto or >= 1, got {option!r}")
        return threads, "set by the option"
    usable, busy = usable_cores(), busy_cores()
    threads = max(1, min(usable - busy, torch.get_num_threads()))
    return threads, f"{usable} usable cores, {busy} busy with other processes"


def _own_cpu_jiffies() -> int:
    """CPU time this process has used (all its threads), in clock ticks."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class ThreadGovernor:
    """For ``auto``: at each :meth:`adjust`, how many cores other processes kept busy since the last one (the busy
    time of the cores this process may use, less its own CPU time), and torch's threads set to the usable cores left,
    at least 1. It reads two /proc files; a change is logged."""

    def __init__(self, ceiling: int):
        self.ceiling = ceiling
        self.usable = usable_cores()
        self._last: tuple[float, dict[int, tuple[int, int]], int] | None = None
        self._mark()

    def _mark(self) -> None:
        try:
            self._last = (time.monotonic(), _cpu_times(), _own_cpu_jiffies())
        except (OSError, ValueError, IndexError):
            self._last = None

    def adjust(self) -> int:
        """Set and return the thread count for the cores left free since the last call."""
        previous = self._last
        self._mark()
        if previous is None or self._last is None:
            return torch.get_num_threads()
        (t0, cpus0, own0), (t1, cpus1, own1) = previous, self._last
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(cpus1)
        busy = sum(cpus1[c][0] - cpus0[c][0] for c in allowed if c in cpus0 and c in cpus1)
        ticks = (t1 - t0) * os.sysconf("SC_CLK_TCK")
        if ticks < 1:  # too short a look to tell
            return torch.get_num_threads()
        others = max(0.0, (busy - (own1 - own0)) / ticks)
        threads = max(1, min(self.usable - round(others), self.ceiling))
        if threads != torch.get_num_threads():
            logger.info(
                "torch threads: %d (other processes kept %.1f of %d usable cores busy)", threads, others, self.usable
            )
            torch.set_num_threads(threads)
        return threads


_applied: dict[str, int] = {}
_governor: ThreadGovernor | None = None


def adjust_torch_threads() -> int:
    """Under ``auto``, fit torch's threads to the cores other processes left free since the last call (the generator
    asks before each batch); otherwise the set count."""
    return _governor.adjust() if _governor is not None else torch.get_num_threads()


def set_torch_threads(option: str | int) -> int:
    """Set torch's intra-op threads from the option (see :func:`choose_threads`) and log the choice, once per option
    and process: the scorer and the generator of one run ask alike."""
    if str(option) in _applied and torch.get_num_threads() == _applied[str(option)]:
        return _applied[str(option)]
    global _governor
    ceiling = torch.get_num_threads()
    threads, why = choose_threads(option)
    torch.set_num_threads(threads)
    _applied[str(option)] = threads
    _governor = ThreadGovernor(max(threads, min(ceiling, usable_cores()))) if str(option) == "auto" else None
    logger.info("torch threads: %d (%s; generator_torch_threads=%s)", threads, why, option)
    return threads
