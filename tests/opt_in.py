"""The opt-in switches for the tests that need a CUDA GPU or the Hugging Face Hub: ``--run-gpu`` / ``REER_RUN_GPU=1``
and ``--run-hub`` / ``REER_RUN_HUB=1``. Without them such a test is skipped with the way to opt in, whatever ``-m``
or ``-k`` selects, so no selection of one's own can pull in a test this machine cannot run. The hooks live here, not
in conftest.py, so a test can load them into a pytest run of its own."""

from __future__ import annotations

import os

import pytest

#: marker -> (command-line switch, environment variable) that opts in to it.
OPT_IN = {"gpu": ("--run-gpu", "REER_RUN_GPU"), "hub": ("--run-hub", "REER_RUN_HUB")}


def pytest_addoption(parser):
    for marker, (switch, variable) in OPT_IN.items():
        parser.addoption(switch, action="store_true", help=f"run the tests marked {marker} (or set {variable}=1)")


def pytest_collection_modifyitems(config, items):
    for marker, (switch, variable) in OPT_IN.items():
        if config.getoption(switch) or os.environ.get(variable, "") not in ("", "0"):
            continue
        skip = pytest.mark.skip(reason=f"{marker} test: opt in with {switch} or {variable}=1")
        for item in items:
            if item.get_closest_marker(marker) is not None:  # the mark itself, not a test id that holds the word
                item.add_marker(skip)
