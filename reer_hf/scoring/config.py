"""Options of the REER scorer and of ``recipes/score.py``: help texts, the paper's defaults and validation.

Fields carry the ``scorer_`` prefix so they never clash with ``transformers.TrainingArguments`` when several
dataclasses share one ``TrlParser``. Options whose metadata says ``resume_safe`` change speed, memory or device, not
what a run writes: a resumed synthesis run may change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reer_hf.core.formats import ASSISTANT_FORMAT, PAPER_SYSTEM_PROMPT
from reer_hf.core.models import DEMO_MODEL
from reer_hf.core.options import check_choices
from reer_hf.core.segment import MIN_SEGMENT_CHARS

# The scored sequence is the SFT assistant turn: what precedes ``{answer}`` is the thinking format, what follows it
# the answer suffix, so the scorer reads exactly the format the writer is trained to produce.
PAPER_THINKING_FORMAT, PAPER_ANSWER_SUFFIX = ASSISTANT_FORMAT.split("{answer}")


@dataclass
class ScorerConfig:
    """The REER perplexity scorer (the paper's search objective); defaults are the paper's, except the demo model."""

    scorer_model: str = field(
        default=DEMO_MODEL,
        metadata={
            "help": f"Scorer model: a Hub id, a local path or {DEMO_MODEL!r}. The paper uses Qwen3-8B-Base. openai: "
            "the served model's name, also loaded here for its tokenizer (the scored span is cut locally)."
        },
    )
    scorer_backend: Literal["transformers", "vllm", "openai"] = field(
        default="transformers",
        metadata={
            "help": "transformers (default), vllm (offline engine; GPU, optional) or openai (a vLLM server's "
            "/completions with prompt_logprobs, as the official code scores; token ids are sent)."
        },
    )
    scorer_dtype: Literal["auto", "bf16", "bfloat16", "fp16", "float16", "half", "fp32", "float32", "float"] = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on GPUs and bf16-capable CPUs, else fp32), bf16 (bfloat16), fp16 (float16, half) or "
            "fp32 (float32, float)."
        },
    )
    scorer_device: str = field(default="auto", metadata={"resume_safe": True, "help": "auto, cpu, cuda, cuda:1, ..."})
    scorer_attn_implementation: str | None = field(
        default=None,
        metadata={
            "resume_safe": True,
            "help": "Attention kernel (sdpa, flash_attention_2, eager); None: the default.",
        },
    )
    scorer_max_length: int | None = field(
        default=32768,
        metadata={
            "help": "Context length; longer sequences get scorer_too_long_score. None: the model's own (openai: set "
            "it below the server's max_model_len)."
        },
    )
    scorer_too_long_score: float = field(default=1000.0, metadata={"help": "Score of a sequence over max length."})
    scorer_token_budget: int = field(
        default=16384,
        metadata={
            "resume_safe": True,
            "help": "Padded tokens per forward pass; rows are sorted by length and packed under it.",
        },
    )
    scorer_fast_attention: bool = field(
        default=True,
        metadata={
            "resume_safe": True,
            "help": "Mask-free causal attention for right-padded and cached passes (reer_hf/scoring/attention.py), "
            "where the architecture allows; else the model's own attention with masks.",
        },
    )
    scorer_compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the model's RMSNorms, MLPs and rotary embedding (reer_hf/scoring/fusion.py): "
            "10-17% faster on CPUs after a compile of a few seconds; falls back to eager, with a warning, where "
            "compiling fails."
        },
    )
    scorer_pad_batches: bool | None = field(
        default=None,
        metadata={
            "resume_safe": True,
            "help": "Batch rows of different lengths with right padding. None: on GPUs only (on CPUs a batch is no "
            "faster than its rows one by one, so padding there is pure waste; a step's candidates are packed into one "
            "pass after their shared prefix instead).",
        },
    )
    scorer_logits_chunk: int | None = field(
        default=None,
        metadata={
            "resume_safe": True,
            "help": "Scored positions per LM-head chunk; None: 64 on CPU (the chunk's fp32 logits stay in cache, 3x "
            "faster than large chunks), 1024 on GPU.",
        },
    )
    scorer_clip: bool = field(default=True, metadata={"help": "Clip token log-probs to [clip_min, clip_max]."})
    scorer_clip_min: float = field(default=-2.0, metadata={"help": "Lower clip bound of a token log-prob."})
    scorer_clip_max: float = field(default=0.0, metadata={"help": "Upper clip bound of a token log-prob."})
    scorer_first_segment_context: bool = field(
        default=True, metadata={"help": "The answer's first segment is context, not scored (paper)."}
    )
    scorer_single_segment: Literal["whole", "official"] = field(
        default="whole",
        metadata={
            "help": "An answer of one segment has nothing after its first segment. whole: score the whole answer. "
            "official: what the official code does, score the one token at the answer's end (its score then says "
            "little, and usually stops the search at once)."
        },
    )
    scorer_segment_min_chars: int = field(
        default=MIN_SEGMENT_CHARS, metadata={"help": "Segments shorter than this merge into the next one."}
    )
    scorer_system_prompt: str | None = field(
        default=PAPER_SYSTEM_PROMPT, metadata={"help": "System turn of the scoring context; None or '' for none."}
    )
    scorer_inference_template: str = field(
        default="inference",
        metadata={"help": "Prompt name in reer_hf/prompts (language picked per row) or a path to a Jinja file."},
    )
    scorer_prompt_source: Literal["builtin", "official"] = field(
        default="builtin",
        metadata={
            "help": "The inference prompt: builtin (scorer_inference_template, offline) or official (the official "
            "REER code's template, fetched from its pinned commit and sha256-checked, filled as that code fills it)."
        },
    )
    scorer_reflection: bool | None = field(
        default=None,
        metadata={
            "help": "The inference template asks for reflection phrases. None: follows search_reflection in a "
            "synthesis run (the 'no reflection tokens' ablation is that one switch); true when scoring alone."
        },
    )
    scorer_thinking_format: str = field(
        default=PAPER_THINKING_FORMAT,
        metadata={"help": "Text between the context and the answer; must contain {thinking} once."},
    )
    scorer_answer_suffix: str = field(default=PAPER_ANSWER_SUFFIX, metadata={"help": "Text after the answer."})
    scorer_prefix_reuse: bool = field(
        default=True,
        metadata={"help": "Rows with the same query and answer share the KV cache of their common token prefix."},
    )
    scorer_min_prefix_tokens: int = field(
        default=16, metadata={"help": "Shortest shared prefix worth a KV-cache pass of its own."}
    )
    scorer_carry_prefixes: int = field(
        default=32,
        metadata={
            "resume_safe": True,
            "help": "Keep the prefix KV cache of this many (query, answer) groups between calls, so the next search "
            "step computes only what its prefix adds (least recently used dropped first; 0: off). Memory: groups x "
            "prefix tokens x KV bytes per token (about 150 KB per token for Qwen3-8B in bf16).",
        },
    )
    scorer_vllm_kwargs: dict | None = field(
        default=None,
        metadata={
            "resume_safe": True,
            "help": "Extra vllm.LLM(...) arguments for the vllm backend (gpu_memory_utilization).",
        },
    )
    scorer_base_url: str = field(
        default="http://localhost:8001/v1",
        metadata={"resume_safe": True, "help": "OpenAI-compatible endpoint of the openai backend (vllm serve)."},
    )
    scorer_api_key_env: str | None = field(
        default="OPENAI_API_KEY",
        metadata={"resume_safe": True, "help": "Environment variable holding the API key (openai); None: no key."},
    )
    scorer_timeout: float = field(
        default=900.0, metadata={"resume_safe": True, "help": "Seconds per scoring request (openai)."}
    )
    scorer_max_retries: int = field(
        default=5,
        metadata={
            "resume_safe": True,
            "help": "Retries of a scoring request without a usable reply (openai: network errors, HTTP "
            "408/429/502/503/504, a body that is not JSON); then it raises ScorerUnavailable, never a score.",
        },
    )
    scorer_max_concurrency: int = field(
        default=32, metadata={"resume_safe": True, "help": "Scoring requests in flight at once (openai)."}
    )

    def __post_init__(self):
        check_choices(self)
        if self.scorer_prompt_source == "official" and self.scorer_reflection is False:
            raise ValueError("scorer_reflection false edits our inference template; the official one cannot be edited")
        if self.scorer_thinking_format.count("{thinking}") != 1:
            raise ValueError("scorer_thinking_format must contain the placeholder {thinking} exactly once")
        if self.scorer_clip and self.scorer_clip_min > self.scorer_clip_max:
            raise ValueError(f"scorer_clip_min ({self.scorer_clip_min}) > scorer_clip_max ({self.scorer_clip_max})")
        if self.scorer_token_budget < 1 or (self.scorer_logits_chunk is not None and self.scorer_logits_chunk < 1):
            raise ValueError("scorer_token_budget and scorer_logits_chunk must be positive")
        if self.scorer_carry_prefixes < 0:
            raise ValueError("scorer_carry_prefixes must be >= 0")
        if self.scorer_max_length is not None and self.scorer_max_length < 1:
            raise ValueError("scorer_max_length must be positive or None")
        if self.scorer_timeout <= 0 or self.scorer_max_retries < 0 or self.scorer_max_concurrency < 1:
            raise ValueError("scorer_timeout must be > 0, scorer_max_retries >= 0 and scorer_max_concurrency >= 1")


@dataclass
class ScoreScriptArguments:
    """What ``recipes/score.py`` scores and where the result goes."""

    dataset_name: str = field(
        default="builtin:demo-pairs",
        metadata={"help": "builtin:demo-pairs, a local jsonl/json/parquet file or a Hub dataset id."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
    dataset_query_column: str | None = field(default=None, metadata={"help": "Query column (auto-detected)."})
    dataset_answer_column: str | None = field(default=None, metadata={"help": "Answer column (auto-detected)."})
    dataset_thinking_column: str | None = field(
        default=None, metadata={"help": "Thinking column; none: each answer is scored after an empty thinking."}
    )
    max_rows: int | None = field(default=None, metadata={"help": "Score only the first N rows."})
    map_batch_size: int = field(default=64, metadata={"help": "Rows per datasets.map batch (one scorer call)."})
    output_dir: str = field(default="outputs/score-demo", metadata={"help": "Where the scored dataset goes."})

    def __post_init__(self):
        if self.map_batch_size < 1:
            raise ValueError("map_batch_size must be positive")
