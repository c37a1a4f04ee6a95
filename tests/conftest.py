"""Offline test bed: tiny Llama/Qwen3 models with a small byte-level BPE tokenizer built here, and the demo model."""

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
import torch  # noqa: E402

from reer_hf.core.data import demo_pairs  # noqa: E402
from reer_hf.core.models import chat_template  # noqa: E402

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
EXTRA_CORPUS = [
    "秋天的风吹过田野，树叶一片片落下。我想写一首关于秋天的诗。",
    "好的，我来想一想这篇文章应该怎么写。嗯，也许可以从一个故事开始。",
    "Hmm, maybe I should start with the reader. Wait, no, the goal comes first. 🍂✨🙂",
    "You are a helpful assistant. Think step by step before you write the answer.",
]


def build_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained offline on the bundled pairs, with ChatML and think tokens as specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [p["query"] + "\n\n" + p["answer"] for p in demo_pairs()] + EXTRA_CORPUS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    tokenizer.chat_template = chat_template("chatml")
    return tokenizer


def build_tiny_model(arch: str, vocab_size: int, seed: int = 0):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
    )
    config = LlamaConfig(**common) if arch == "llama" else Qwen3Config(head_dim=16, **common)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


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
