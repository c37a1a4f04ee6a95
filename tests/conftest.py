"""Offline test bed: fixtures for tiny Llama/Qwen3 models with a small byte-level BPE tokenizer built here, and the
demo model. The builders themselves are in ``testing_utils.py`` (import them from there, never from this file).

Also what every session needs: the Hub switched off, a project cache of its own (``REER_HF_HOME``, so no test writes
into the user's), torch threads shared out between xdist workers, and the opt-in switches of ``opt_in.py`` for the
tests that need a GPU or the Hub.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A fresh datasets cache per session: `load_dataset` of a local folder whose README declares its configs can return
# the Arrow cache of an earlier session's folder of the same layout (seen with the synthesis Hub folder).
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="reer-test-datasets-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from opt_in import pytest_addoption, pytest_collection_modifyitems  # noqa: E402, F401  (the hooks)
from testing_utils import (  # noqa: E402
    build_tiny_model,
    build_tiny_tokenizer,
    isolate_project_cache,
    share_threads_between_workers,
)

from reer_hf.core.data import demo_pairs  # noqa: E402

#: The demo model, built once per machine into a cache kept for tests only (see ``isolate_project_cache``).
DEMO_MODEL_HOME: Path | None = None


def pytest_configure(config):
    """Where tests run (each xdist worker, or the one process of ``-n 0``): a project cache of the session's own and
    torch threads for this worker. pytest-xdist's controller runs no test, so it skips both (and torch's import)."""
    global DEMO_MODEL_HOME
    if not hasattr(config, "workerinput") and (getattr(config.option, "numprocesses", None) or 0):
        return
    DEMO_MODEL_HOME = isolate_project_cache()
    share_threads_between_workers()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session", params=["llama", "qwen3"])
def tiny_model_dir(request, tmp_path_factory, tiny_tokenizer) -> Path:
    """A saved tiny model + tokenizer folder, loadable with ``from_pretrained`` (one per architecture)."""
    path = tmp_path_factory.mktemp(f"tiny-{request.param}")
    model = build_tiny_model(request.param, len(tiny_tokenizer))
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model("llama", len(tiny_tokenizer)).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The built-in demo model (SmolLM2-135M-Instruct dequantized from Q4_1), built once per machine for the tests and
    visible in the session's project cache, so ``builtin:demo`` resolves to it in-process and in subprocesses."""
    from reer_hf.core.models import ensure_demo_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REER_HF_HOME", str(DEMO_MODEL_HOME))  # set in pytest_configure
        return ensure_demo_model()


@pytest.fixture(scope="session")
def demo_model_fp32(demo_model_dir):
    from reer_hf.core.models import load_causal_lm

    return load_causal_lm(str(demo_model_dir), dtype="fp32", device="cpu")


@pytest.fixture(scope="session")
def pairs() -> list[dict[str, str]]:
    return demo_pairs()
