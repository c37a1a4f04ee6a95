"""Offline test bed: fixtures for tiny Llama/Qwen3 models with a small byte-level BPE tokenizer built here, and the
demo model. The builders themselves are in ``testing_utils.py`` (import them from there, never from this file)."""

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
from testing_utils import build_tiny_model, build_tiny_tokenizer  # noqa: E402

from reer_hf.core.data import demo_pairs  # noqa: E402


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
    """The built-in demo model (SmolLM2-135M-Instruct dequantized from Q4_1), built once per machine and cached."""
    from reer_hf.core.models import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture(scope="session")
def demo_model_fp32(demo_model_dir):
    from reer_hf.core.models import load_causal_lm

    return load_causal_lm(str(demo_model_dir), dtype="fp32", device="cpu")


@pytest.fixture(scope="session")
def pairs() -> list[dict[str, str]]:
    return demo_pairs()
