"""Helpers the tests share: tiny models and a tokenizer built offline, and small data writers."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reer_hf.core.data import demo_pairs
from reer_hf.core.models import chat_template

#: The repository's root folder (tests run from any working directory).
REPO_ROOT = Path(__file__).resolve().parents[1]

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


#: Plain prose without reflection phrases or loops, English and Chinese: the baseline the text tests perturb.
PROSE = (
    "The harbour town wakes slowly in late autumn. Fishermen drag their nets across the wet stones while gulls argue "
    "over scraps near the market. A baker opens her shutters and the smell of bread drifts down to the water, where "
    "an old ferry waits for its first passengers. Children run past the chapel on their way to school, counting the "
    "boats that did not return last night. Nobody speaks of the storm, yet everyone glances at the grey horizon "
    "before going back to work. By noon the fog lifts, and the whole bay shines like hammered tin under a pale sun."
)
ZH_PROSE = (
    "秋天的早晨，小镇慢慢醒来。渔民把湿漉漉的渔网拖过石板路，海鸥在集市旁争抢残羹。面包店的老板娘推开窗，"
    "刚出炉的香气飘到码头，一艘旧渡船正等着第一批乘客。孩子们跑过教堂去上学，一边数着昨夜没有回来的船。"
    "没有人提起那场风暴，可每个人都会先望一眼灰色的海平线，再低头干活。到了中午，雾气散去，整片海湾亮得像一块锤过的锡。"
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a JSON-lines file at ``path`` (UTF-8, one object a line)."""
    path = Path(path)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
