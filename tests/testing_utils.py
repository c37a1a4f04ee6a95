"""Helpers the tests share: tiny models and a tokenizer built offline, and small data writers."""

from __future__ import annotations

import ast
import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from reer_hf.core.data import demo_pairs

# torch and transformers are imported where they are used: pytest-xdist's controller loads this module too, and it
# starts the workers sooner without them.

#: The repository's root folder (tests run from any working directory).
REPO_ROOT = Path(__file__).resolve().parents[1]

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
EXTRA_CORPUS = [
    "秋天的风吹过田野，树叶一片片落下。我想写一首关于秋天的诗。",
    "好的，我来想一想这篇文章应该怎么写。嗯，也许可以从一个故事开始。",
    "Hmm, maybe I should start with the reader. Wait, no, the goal comes first. 🍂✨🙂",
    "You are a helpful assistant. Think step by step before you write the answer.",
]


@functools.cache
def parsed_source(path: Path) -> ast.Module:
    """The syntax tree of a Python file, parsed once per test process: several tests walk every module of the
    package (imports, options read, HTTP calls, tag literals), and parsing is most of their time."""
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def isolate_project_cache() -> Path:
    """Give the session a project cache of its own (``REER_HF_HOME``, removed at exit) and return the folder where the
    demo model is built once per machine for the tests (``$REER_HF_TEST_HOME``, else ``reer_hf-tests`` beside the
    user's cache folder). The session's cache links to that build, so tests never write into the user's cache and the
    135M model is dequantized once, not once per session or worker."""
    from reer_hf.core.models import demo_model_dir

    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    models_home = Path(os.environ.get("REER_HF_TEST_HOME", base / "reer_hf-tests"))
    models_home.mkdir(parents=True, exist_ok=True)
    session_home = Path(tempfile.mkdtemp(prefix="reer-test-home-"))
    atexit.register(shutil.rmtree, session_home, ignore_errors=True)
    os.environ["REER_HF_HOME"] = str(session_home)
    demo = demo_model_dir()
    demo.symlink_to(models_home / demo.name, target_is_directory=True)
    return models_home


def share_threads_between_workers() -> int:
    """Under pytest-xdist, give each worker its share of the cores (torch threads, and ``OMP_NUM_THREADS`` for the
    processes tests start): two workers with two threads each on two cores run several times slower than one each.
    An ``OMP_NUM_THREADS`` set by the user wins. Returns the thread count in force."""
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def build_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained offline on the bundled pairs, with ChatML and think tokens as specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from reer_hf.core.models import chat_template

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


#: ChatML without ``{% generation %}`` markers, as the Qwen3 tokenizers ship it (their own template marks no assistant
#: span, so the SFT recipes set chat_template_path).
PLAIN_CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
#: The special-token layouts of the models the SFT recipes train, on the tiny vocabulary: the paper's Qwen3-8B-Base
#: (``<|endoftext|>`` is its eos and pad token, its template marks no assistant span) and the demo model,
#: SmolLM2-135M-Instruct as ``reer_hf.core.models`` builds it (``<|im_end|>`` both eos and pad, ``<|im_start|>`` bos).
TOKENIZER_LAYOUTS = {
    "qwen3": {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "chat_template": PLAIN_CHATML},
    "smollm2": {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "bos_token": "<|im_start|>"},
}


def build_layout_tokenizer(layout: str):
    """The tiny tokenizer with the special tokens and chat template of ``layout`` (:data:`TOKENIZER_LAYOUTS`)."""
    tokenizer = build_tiny_tokenizer()
    for name, value in TOKENIZER_LAYOUTS[layout].items():
        setattr(tokenizer, name, value)
    return tokenizer


def build_tiny_model(arch: str, vocab_size: int, seed: int = 0):
    import torch
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
