"""Torch threads chosen for the machine: never more than the cores this process may use and others leave free."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from reer_hf.core import threads
from reer_hf.core.threads import busy_cores, choose_threads, set_torch_threads, usable_cores

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux CPU affinity")


def test_a_number_is_taken_as_is_and_nonsense_refused():
    assert choose_threads("3") == (3, "set by the option")
    with pytest.raises(ValueError, match="auto or >= 1"):
        choose_threads(0)


@needs_affinity
def test_usable_cores_follow_the_affinity():
    cpu = min(os.sched_getaffinity(0))
    code = (
        f"import os; os.sched_setaffinity(0, {{{cpu}}}); "
        "from reer_hf.core.threads import usable_cores; print(usable_cores())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))


@needs_affinity
def test_a_core_another_process_keeps_busy_is_not_used(monkeypatch):
    cpu = max(os.sched_getaffinity(0))
    spin = (
        f"import os, time; os.sched_setaffinity(0, {{{cpu}}}); end = time.time() + 20\nwhile time.time() < end: pass"
    )
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.5)  # the child is spinning on its core
        assert busy_cores(0.5) >= 1
        monkeypatch.setattr(threads, "busy_cores", lambda: 1)
        monkeypatch.setattr(threads, "usable_cores", lambda: 2)
        monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
        assert choose_threads("auto") == (1, "2 usable cores, 1 busy with other processes")
    finally:
        child.kill()
        child.wait()


def test_auto_never_goes_over_torch_or_under_one(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert choose_threads("auto")[0] == 4
    monkeypatch.setattr(threads, "busy_cores", lambda: 20)
    assert choose_threads("auto")[0] == 1


def test_the_choice_is_set_and_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(threads, "_applied", {})
    previous = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="reer_hf.core.threads"):
            assert set_torch_threads("1") == 1
            assert set_torch_threads("1") == 1
        assert torch.get_num_threads() == 1
        assert [r.getMessage() for r in caplog.records] == [
            "torch threads: 1 (set by the option; generator_torch_threads=1)"
        ]
    finally:
        torch.set_num_threads(previous)


@needs_affinity
def test_auto_gives_a_core_back_when_another_process_takes_it_and_takes_it_again_after(monkeypatch):
    """Under auto the governor looks again as the run goes: a process that starts spinning on one of two usable
    cores takes a thread away at the next look, and its end gives it back."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    cpu = max(os.sched_getaffinity(0))
    previous = torch.get_num_threads()
    governor = threads.ThreadGovernor(ceiling=2)
    torch.set_num_threads(2)
    spin = (
        f"import os, time; os.sched_setaffinity(0, {{{cpu}}}); end = time.time() + 20\nwhile time.time() < end: pass"
    )
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        governor.adjust()
        time.sleep(1.0)  # this process idle, the child spinning
        assert governor.adjust() == 1 == torch.get_num_threads()
    finally:
        child.kill()
        child.wait()
        torch.set_num_threads(previous)


def test_auto_gives_the_thread_back_once_the_other_process_leaves(monkeypatch):
    """The arithmetic on given /proc readings (a real quiet look would race other test processes): a second core
    busy only with this process's own work counts as free."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    ticks = os.sysconf("SC_CLK_TCK")
    clock = iter([0.0, 1.0, 2.0])  # the governor's three looks, a second apart
    cpus = iter(
        [
            {0: (0, 0), 1: (0, 0)},
            {0: (ticks, ticks), 1: (ticks, ticks)},  # both cores busy, none of it this process's
            {0: (2 * ticks, 2 * ticks), 1: (ticks + 5, 2 * ticks)},  # one core busy: this process's own work
        ]
    )
    own = iter([0, 0, ticks])
    monkeypatch.setattr(threads, "time", SimpleNamespace(monotonic=lambda: next(clock), sleep=time.sleep))
    monkeypatch.setattr(threads, "_own_cpu_jiffies", lambda: next(own))

    def look():
        return next(cpus)

    previous = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "_cpu_times", look)
        governor = threads.ThreadGovernor(ceiling=2)
        assert governor.adjust() == 1  # others kept two cores busy: one thread, never fewer
        assert governor.adjust() == 2 == torch.get_num_threads()  # the busy core was this process's own
    finally:
        torch.set_num_threads(previous)
