"""Configuration dataclasses of the recipes: help texts, the paper's defaults and validation, nothing else.

Fields carry a prefix (``scorer_*``) so they never clash with ``transformers.TrainingArguments`` when several
dataclasses share one ``TrlParser``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reer_hf.models import DEMO_MODEL
from reer_hf.segment import MIN_SEGMENT_CHARS

PAPER_SYSTEM_PROMPT = "You are a helpful assistant."
PAPER_THINKING_FORMAT = "<think>\n{thinking}\n</think>\n<answer>\n"
PAPER_ANSWER_SUFFIX = "\n</answer>"


@dataclass
class ScorerConfig:
    """The REER perplexity scorer (REER.md section 2); defaults are the paper's, except the demo model."""

    scorer_model: str = field(
        default=DEMO_MODEL,
        metadata={"help": f"Scorer model: a Hub id, a local path or {DEMO_MODEL!r}. The paper uses Qwen3-8B-Base."},
    )
    scorer_backend: str = field(
        default="transformers", metadata={"help": "transformers (default) or vllm (prompt log-probs; GPU, optional)."}
    )
    scorer_dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on GPUs and bf16-capable CPUs, else fp32), bf16, fp16, fp32."}
    )
    scorer_device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, ..."})
    scorer_attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel (sdpa, flash_attention_2, eager); None: the default."}
    )
    scorer_max_length: int | None = field(
        default=32768,
        metadata={"help": "Context length; longer sequences get scorer_too_long_score. None: the model's own."},
    )
    scorer_too_long_score: float = field(default=1000.0, metadata={"help": "Score of a sequence over max length."})
    scorer_token_budget: int = field(
        default=16384,
        metadata={"help": "Padded tokens per forward pass; rows are sorted by length and packed under it."},
    )
    scorer_fast_attention: bool = field(
        default=True,
        metadata={
            "help": "Mask-free causal attention for right-padded and cached passes (reer_hf/attention.py), where the "
            "architecture allows; else the model's own attention with masks."
        },
    )
    scorer_compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the model's RMSNorms, MLPs and rotary embedding (reer_hf/fusion.py): 10-17% "
            "faster on CPUs after a compile of a few seconds; falls back to eager, with a warning, where compiling "
            "fails."
        },
    )
    scorer_pad_batches: bool | None = field(
        default=None,
        metadata={
            "help": "Batch rows of different lengths with right padding. None: on GPUs only (on CPUs a batch is no "
            "faster than its rows one by one, so padding there is pure waste; a step's candidates are packed into one "
            "pass after their shared prefix instead)."
        },
    )
    scorer_logits_chunk: int | None = field(
        default=None,
        metadata={
            "help": "Scored positions per LM-head chunk; None: 64 on CPU (the chunk's fp32 logits stay in cache, 3x "
            "faster than large chunks), 1024 on GPU."
        },
    )
    scorer_clip: bool = field(default=True, metadata={"help": "Clip token log-probs to [clip_min, clip_max]."})
    scorer_clip_min: float = field(default=-2.0, metadata={"help": "Lower clip bound of a token log-prob."})
    scorer_clip_max: float = field(default=0.0, metadata={"help": "Upper clip bound of a token log-prob."})
    scorer_first_segment_context: bool = field(
        default=True, metadata={"help": "The answer's first segment is context, not scored (paper)."}
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
    scorer_reflection: bool = field(
        default=True,
        metadata={
            "help": "The inference template asks for reflection phrases; false matches a synthesis run made "
            "with search_reflection false (the 'no reflection tokens' ablation)."
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
            "help": "Keep the prefix KV cache of this many (query, answer) groups between calls, so the next search "
            "step computes only what its prefix adds (least recently used dropped first; 0: off). Memory: groups x "
            "prefix tokens x KV bytes per token (about 150 KB per token for Qwen3-8B in bf16)."
        },
    )
    scorer_vllm_kwargs: dict | None = field(
        default=None, metadata={"help": "Extra vllm.LLM(...) arguments for the vllm backend (gpu_memory_utilization)."}
    )

    def __post_init__(self):
        if self.scorer_backend not in ("transformers", "vllm"):
            raise ValueError(f"scorer_backend must be 'transformers' or 'vllm', got {self.scorer_backend!r}")
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


@dataclass
class GeneratorConfig:
    """The generator LLM that writes initial trajectories and segment rewrites (REER.md section 3)."""

    generator_model: str = field(
        default=DEMO_MODEL,
        metadata={
            "help": f"Generator model: a Hub id, a local path or {DEMO_MODEL!r} (transformers, vllm), or the model "
            "name the server knows (openai). The paper uses Qwen2.5-32B-Instruct."
        },
    )
    generator_backend: str = field(
        default="transformers",
        metadata={"help": "transformers (local generate), vllm (offline engine; GPU, optional) or openai (a server)."},
    )
    generator_dtype: str = field(default="auto", metadata={"help": "auto, bf16, fp16 or fp32 (local backends)."})
    generator_device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, ... (transformers)."})
    generator_attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel of the transformers backend; None: the default."}
    )
    generator_batch_size: int = field(
        default=16, metadata={"help": "Prompts per transformers generate() call (each with its n samples)."}
    )
    generator_base_url: str = field(
        default="http://localhost:8000/v1", metadata={"help": "OpenAI-compatible endpoint (openai backend)."}
    )
    generator_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key (openai backend)."}
    )
    generator_prefill_mode: str = field(
        default="continue",
        metadata={
            "help": "How the openai backend pre-fills the assistant turn: continue (chat API with "
            "continue_final_message, as vllm serve and SGLang accept), completions (the prompt rendered with the "
            "generator's chat template, sent to /completions) or none (APIs without pre-fill: the pre-fill is "
            "prepended to the reply)."
        },
    )
    generator_max_concurrency: int = field(default=32, metadata={"help": "Requests in flight at once (openai)."})
    generator_max_retries: int = field(
        default=5, metadata={"help": "Retries of a request on network errors (openai); other errors are recorded."}
    )
    generator_timeout: float = field(default=900.0, metadata={"help": "Seconds per request (openai)."})
    generator_vllm_kwargs: dict | None = field(
        default=None,
        metadata={"help": "Extra vllm.LLM(...) arguments (tensor_parallel_size, gpu_memory_utilization)."},
    )

    def __post_init__(self):
        if self.generator_backend not in ("transformers", "vllm", "openai"):
            raise ValueError(f"generator_backend must be transformers, vllm or openai, got {self.generator_backend!r}")
        if self.generator_prefill_mode not in ("continue", "completions", "none"):
            raise ValueError(
                f"generator_prefill_mode must be continue, completions or none, got {self.generator_prefill_mode!r}"
            )
        if min(self.generator_batch_size, self.generator_max_concurrency) < 1 or self.generator_max_retries < 0:
            raise ValueError("generator_batch_size and generator_max_concurrency must be >= 1, max_retries >= 0")


PAPER_OPENERS_EN = ["Okay, I am given", "Alright, the user", "Alright"]
PAPER_OPENER_WEIGHTS_EN = [0.2, 0.48, 0.32]
PAPER_OPENERS_ZH = ["好的", "嗯"]
PAPER_OPENER_WEIGHTS_ZH = [0.5, 0.5]


@dataclass
class SearchConfig:
    """The REER iterative local search (REER.md sections 3-5); defaults are the paper's."""

    search_num_expansion: int = field(default=2, metadata={"help": "K: rewrites proposed per segment."})
    search_max_step: int = field(default=10, metadata={"help": "Segments refined, left to right, at most."})
    search_stop_thresh: float = field(default=0.25, metadata={"help": "Stop once the best score is below this."})
    search_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the generator."})
    search_top_p: float = field(default=0.85, metadata={"help": "Nucleus sampling of the generator."})
    search_max_new_tokens: int = field(default=8000, metadata={"help": "New tokens of the initial rollout."})
    search_edit_max_new_tokens: int | None = field(
        default=None, metadata={"help": "New tokens of a segment edit; None: search_max_new_tokens."}
    )
    search_repetition_penalty: float = field(
        default=1.0, metadata={"help": "Generator repetition penalty; 1.0 (the paper) is off. Small models loop."}
    )
    search_refine_lead_words: int = field(
        default=3,
        metadata={
            "help": "refine edit format: the pre-fill also holds the target's first words (its connective), "
            "which the rewrite keeps, so a small model continues the paragraph instead of the instructions."
        },
    )
    search_min_rollout_tokens: int = field(
        default=100, metadata={"help": "Drop an item whose initial rollout has fewer generated tokens."}
    )
    search_openers_en: list[str] = field(
        default_factory=lambda: list(PAPER_OPENERS_EN),
        metadata={"help": "Openers pre-filled after '<think>\\n' for English rows, drawn by the weights below."},
    )
    search_opener_weights_en: list[float] = field(default_factory=lambda: list(PAPER_OPENER_WEIGHTS_EN))
    search_openers_zh: list[str] = field(default_factory=lambda: list(PAPER_OPENERS_ZH))
    search_opener_weights_zh: list[float] = field(default_factory=lambda: list(PAPER_OPENER_WEIGHTS_ZH))
    search_initial_prompt: str = field(
        default="initial", metadata={"help": "Prompt of the initial thinking (name in reer_hf/prompts or a path)."}
    )
    search_edit_prompt: str = field(
        default="edit", metadata={"help": "Prompt of the segment edit (name in reer_hf/prompts or a path)."}
    )
    search_reflection: bool = field(
        default=True,
        metadata={"help": "Ask for human-like reflection phrases; false gives the 'no reflection tokens' ablation."},
    )
    search_edit_format: str = field(
        default="analyze",
        metadata={
            "help": "analyze (paper: the reply is pre-filled with '<analyze>' and the rewrite is the last "
            "<refine>...</refine>) or refine (pre-filled straight into '<refine>', for small models that cannot "
            "follow the two-block format)."
        },
    )
    search_segment_min_chars: int = field(
        default=MIN_SEGMENT_CHARS, metadata={"help": "Thinking segments shorter than this merge into the next one."}
    )
    search_seed: int = field(default=42, metadata={"help": "Seed of openers and sampling (per map batch and step)."})

    def __post_init__(self):
        if self.search_num_expansion < 1 or self.search_max_step < 0:
            raise ValueError("search_num_expansion must be >= 1 and search_max_step >= 0")
        if self.search_edit_format not in ("analyze", "refine"):
            raise ValueError(f"search_edit_format must be analyze or refine, got {self.search_edit_format!r}")
        for lang in ("en", "zh"):
            openers, weights = getattr(self, f"search_openers_{lang}"), getattr(self, f"search_opener_weights_{lang}")
            if not openers or len(openers) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"search_openers_{lang} needs one non-negative weight per opener (some positive)")
        if not 0 < self.search_top_p <= 1 or self.search_temperature < 0:
            raise ValueError("search_top_p must be in (0, 1] and search_temperature >= 0")

    @property
    def edit_max_new_tokens(self) -> int:
        return self.search_edit_max_new_tokens or self.search_max_new_tokens


@dataclass
class FilterConfig:
    """Quality filters of the synthesized data (REER.md section 6); each one switchable and counted."""

    filter_end_of_thinking: bool = field(
        default=True,
        metadata={
            "help": "Drop trajectories that never conclude: cut by the token limit, or reflection still in "
            "their last filter_end_fraction."
        },
    )
    filter_end_fraction: float = field(default=0.1, metadata={"help": "Tail (share of characters) checked."})
    filter_repetition: bool = field(default=True, metadata={"help": "Drop trajectories stuck in n-gram loops."})
    filter_repetition_ngram: int = field(default=3, metadata={"help": "n of the repetition check (words; zh: chars)."})
    filter_repetition_max: float = field(
        default=0.3, metadata={"help": "Drop when the top-3 n-grams cover more than this share of all n-grams."}
    )
    filter_loop_ngram: int = field(
        default=10, metadata={"help": "n of the loop check: long n-grams that recur (words; zh: chars)."}
    )
    filter_loop_max: float = field(
        default=0.3,
        metadata={
            "help": "Drop when more than this share of the long n-grams repeat an earlier one (sentence loops "
            "longer than the top-3 check sees)."
        },
    )
    filter_min_thinking_tokens: int | None = field(
        default=100, metadata={"help": "Drop z* shorter than this (scorer tokens); None: no bound."}
    )
    filter_max_thinking_tokens: int | None = field(
        default=None, metadata={"help": "Drop z* longer than this (scorer tokens); None: no bound."}
    )
    filter_dedup: bool = field(
        default=True, metadata={"help": "Search each (query, answer) pair once; later duplicates are recorded."}
    )
    filter_leak_guard: bool = field(
        default=True,
        metadata={"help": "Reject rewrites and trajectories that copy long spans of the reference answer."},
    )
    filter_leak_ngram: int = field(
        default=12,
        metadata={
            "help": "Longest allowed span copied from the answer, in words (Chinese: twice this in characters)."
        },
    )

    def __post_init__(self):
        if not 0 < self.filter_end_fraction <= 1 or not 0 < self.filter_repetition_max <= 1:
            raise ValueError("filter_end_fraction and filter_repetition_max must be in (0, 1]")
        if self.filter_repetition_ngram < 1 or self.filter_leak_ngram < 2:
            raise ValueError("filter_repetition_ngram must be >= 1 and filter_leak_ngram >= 2")


@dataclass
class SynthesisScriptArguments:
    """What ``recipes/synthesize.py`` reads, where it writes, and how the run is cut into resumable pieces."""

    dataset_name: str = field(
        default="builtin:demo-pairs",
        metadata={"help": "builtin:demo-pairs, a local jsonl/json/parquet file or a Hub dataset id."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Config (subset) of a Hub dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
    dataset_query_column: str | None = field(default=None, metadata={"help": "Query column (auto-detected)."})
    dataset_answer_column: str | None = field(default=None, metadata={"help": "Answer column (auto-detected)."})
    max_rows: int | None = field(default=None, metadata={"help": "Search only the first N rows."})
    map_batch_size: int = field(
        default=64,
        metadata={
            "help": "Rows searched in lock-step (one datasets.map batch): one generator and one scorer call "
            "per step for all of them."
        },
    )
    save_every: int = field(
        default=1, metadata={"help": "Map batches per checkpoint piece; a resumed run redoes at most one piece."}
    )
    output_dir: str = field(
        default="outputs/synthesis-demo",
        metadata={"help": "Where the dataset (save_to_disk and parquet), summary, plot, card and pieces go."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start over even if output_dir holds pieces of an earlier run."}
    )
    messages_system_prompt: str | None = field(
        default=PAPER_SYSTEM_PROMPT, metadata={"help": "System turn of the SFT messages column; None: none."}
    )
    messages_assistant_format: str = field(
        default="<think>\n{thinking}\n</think>\n\n{answer}",
        metadata={"help": "Assistant turn of the messages column (e.g. the paper's <answer>{answer}</answer> tags)."},
    )
    dataset_pretty_name: str = field(default="REER deep-thinking trajectories", metadata={"help": "Card title."})
    source_license: str = field(
        default="other", metadata={"help": "Licence of the source pairs (SPDX id or 'other'); goes into the card."}
    )
    source_description: str | None = field(
        default=None, metadata={"help": "Where the source pairs come from (a sentence for the card)."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Push the kept rows, the card and the plot."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub repo id, e.g. me/deepwriting-mine."})
    hub_config_name: str | None = field(
        default=None, metadata={"help": "Hub config name; None: one built from the key hyperparameters."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    merge_timeout: float = field(
        default=7 * 24 * 3600.0,
        metadata={"help": "Seconds the main process waits for the other processes' pieces before giving up."},
    )

    def __post_init__(self):
        if self.map_batch_size < 1 or self.save_every < 1:
            raise ValueError("map_batch_size and save_every must be positive")
        if self.messages_assistant_format.count("{thinking}") != 1 or "{answer}" not in self.messages_assistant_format:
            raise ValueError("messages_assistant_format needs {thinking} once and {answer}")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("push_to_hub needs hub_dataset_id (e.g. --hub_dataset_id me/my-reer-data)")


from trl import ScriptArguments  # noqa: E402  (here, not at the top: appended with the SFT recipe)

DEEPWRITING_20K = "m-a-p/DeepWriting-20K"
PAPER_SFT_ASSISTANT_FORMAT = "<think>\n{thinking}\n</think>\n<answer>\n{answer}\n</answer>"
LENGTH_ABLATIONS = ("none", "fewer_long", "fewer_short")


@dataclass
class SFTScriptArguments(ScriptArguments):
    """What ``recipes/sft.py`` trains on: the REER data, its ablations (REER.md section 9) and the public mix.

    ``dataset_name`` / ``dataset_config`` / ``dataset_train_split`` (from ``trl.ScriptArguments``) name the REER data;
    ``mix_*`` the public reasoning data; ``ablation_*`` the paper's ablations; ``reer_*`` the conversion.
    """

    dataset_name: str | None = field(
        default=DEEPWRITING_20K,
        metadata={
            "help": "REER data: a Hub id (default: the published DeepWriting-20K), a local jsonl/json/parquet file or "
            "a save_to_disk folder. Accepted shapes: prompt (chat list or text) + solution ('<think>...</think>' "
            "then the answer); question + solution; the output of recipes/synthesize.py (query, answer, z0, z_star)."
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Build the data, print the counts before/after each transform, a length histogram and one "
            "sample, and exit without loading the model or training."
        },
    )
    reer_max_rows: int | None = field(
        default=None, metadata={"help": "Use only the first N rows of the REER data (demos, smoke tests)."}
    )
    reer_keep_status: str | None = field(
        default="ok",
        metadata={"help": "Synthesis output only: keep rows with this status (None: keep every row with a thinking)."},
    )
    reer_system_prompt: str | None = field(
        default=PAPER_SYSTEM_PROMPT, metadata={"help": "System turn of every conversation; None or '' for none."}
    )
    reer_user_template: str | None = field(
        default=None,
        metadata={
            "help": "User turn: None for the bare query (as DeepWriting-20K's prompt holds it), or a prompt name in "
            "reer_hf/prompts (e.g. 'inference', the scorer's context) or a Jinja file rendered with {{ query }}."
        },
    )
    reer_assistant_format: str = field(
        default=PAPER_SFT_ASSISTANT_FORMAT,
        metadata={
            "help": "Assistant turn, with {thinking} once and {answer}; the default is the paper's output format "
            "<think>...</think><answer>...</answer>. Public rows with a thinking are rewritten to it too."
        },
    )
    reer_category_column: str = field(
        default="category", metadata={"help": "Column holding each row's category (for ablation_exclude_categories)."}
    )
    reer_seed: int = field(
        default=42, metadata={"help": "Seed of the length down-sampling and of the public-data sample."}
    )
    reer_recipe_path: str | None = field(
        default=None,
        metadata={"help": "Recipe YAML quoted verbatim in the model card; recipes/sft.py fills it from --config."},
    )
    reer_auto_resume: bool = field(
        default=True,
        metadata={
            "help": "Resume from the last checkpoint in output_dir when there is one (resume_from_checkpoint, when "
            "set, wins); false starts over."
        },
    )
    ablation_no_synthetic: bool = field(
        default=False, metadata={"help": "Ablation 'no synthetic data': train on the public reasoning data only."}
    )
    ablation_no_search: bool = field(
        default=False,
        metadata={
            "help": "Ablation 'no iterative search': train on z0, the trajectory before the search. Needs the output "
            "of recipes/synthesize.py (DeepWriting-20K holds only the refined trajectory)."
        },
    )
    ablation_no_reflection: bool = field(
        default=False,
        metadata={
            "help": "Ablation 'no reflection tokens': remove the reflection phrases (reer_hf.filters."
            "REFLECTION_PHRASES, English and Chinese) from each REER thinking by the rules of "
            "reer_hf.sft_data.remove_reflections. The other way: point dataset_name at a synthesis run made with "
            "search_reflection=false."
        },
    )
    ablation_length: str = field(
        default="none",
        metadata={
            "help": "Ablation on trajectory length: none, fewer_long (down-sample REER rows whose thinking is longer "
            "than the cut-off) or fewer_short (down-sample those at most as long).",
            "choices": list(LENGTH_ABLATIONS),
        },
    )
    ablation_length_cutoff: int | None = field(
        default=None,
        metadata={"help": "Length cut-off in thinking tokens (the model's tokenizer); None: the data's median."},
    )
    ablation_length_keep_fraction: float = field(
        default=0.5, metadata={"help": "Share of the down-sampled side that is kept (seeded by reer_seed)."}
    )
    ablation_exclude_categories: list[str] | None = field(
        default=None,
        metadata={
            "help": "Drop REER rows whose reer_category_column value is one of these (case-insensitive), e.g. the "
            "creative domain. Fails when the data has no such column."
        },
    )
    mix_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Public reasoning data mixed in (the paper: OpenThoughts): a Hub id or a local file of "
            "messages, conversations (from/value, OpenThoughts) or prompt/question + solution rows."
        },
    )
    mix_dataset_config: str | None = field(default=None, metadata={"help": "Config (subset) of the public data."})
    mix_dataset_split: str = field(default="train", metadata={"help": "Split of the public data."})
    mix_count: int | None = field(
        default=None, metadata={"help": "Public rows in the mixture (a seeded sample); exclusive with mix_ratio."}
    )
    mix_ratio: float | None = field(
        default=None,
        metadata={"help": "Share of public rows in the final mixture, in (0, 1); exclusive with mix_count."},
    )

    def __post_init__(self):
        if self.reer_assistant_format.count("{thinking}") != 1 or "{answer}" not in self.reer_assistant_format:
            raise ValueError("reer_assistant_format needs {thinking} exactly once and {answer}")
        if self.ablation_length not in LENGTH_ABLATIONS:
            raise ValueError(
                f"ablation_length must be one of {', '.join(LENGTH_ABLATIONS)}, got {self.ablation_length!r}"
            )
        if not 0.0 <= self.ablation_length_keep_fraction <= 1.0:
            raise ValueError("ablation_length_keep_fraction must be in [0, 1]")
        if self.ablation_length_cutoff is not None and self.ablation_length_cutoff < 1:
            raise ValueError("ablation_length_cutoff must be a positive number of tokens, or None for the median")
        if self.mix_count is not None and self.mix_ratio is not None:
            raise ValueError("Set mix_count or mix_ratio, not both")
        if self.mix_count is not None and self.mix_count < 1:
            raise ValueError("mix_count must be >= 1")
        if self.mix_ratio is not None and not 0.0 < self.mix_ratio < 1.0:
            raise ValueError("mix_ratio must be in (0, 1): the share of public rows in the mixture")
        if self.reer_max_rows is not None and self.reer_max_rows < 1:
            raise ValueError("reer_max_rows must be >= 1")
        if self.ablation_no_synthetic:
            if not self.mix_dataset_name:
                raise ValueError("ablation_no_synthetic trains on the public data only: set mix_dataset_name")
            if self.mix_ratio is not None:
                raise ValueError("ablation_no_synthetic has no REER rows to take a ratio of: use mix_count or neither")
            reer_only = [
                name
                for name, on in (
                    ("ablation_no_search", self.ablation_no_search),
                    ("ablation_no_reflection", self.ablation_no_reflection),
                    ("ablation_length", self.ablation_length != "none"),
                    ("ablation_exclude_categories", bool(self.ablation_exclude_categories)),
                )
                if on
            ]
            if reer_only:
                raise ValueError(
                    f"ablation_no_synthetic uses no REER data, so {reer_only} would do nothing: unset them"
                )
        elif not self.dataset_name:
            raise ValueError("dataset_name (the REER data) is required unless ablation_no_synthetic is set")


@dataclass
class EvaluationScriptArguments:
    """What ``recipes/evaluate.py`` evaluates, how it generates, and where it writes. The model under evaluation is
    the ``generator_*`` model (transformers, vLLM or an OpenAI-compatible server); the judge is ``judge_*``."""

    benchmarks: list[str] = field(
        default_factory=lambda: ["longbench_write", "hellobench", "writingbench"],
        metadata={"help": "Benchmarks to run: longbench_write, hellobench, writingbench."},
    )
    benchmark_data: str | None = field(
        default=None,
        metadata={
            "help": "Benchmark folder or Hub dataset id of the same layout; None: $REER_BENCHMARK_DATA, else "
            "data/benchmarks (layout: reer_hf/evaluation/benchmarks.py)."
        },
    )
    longbench_subset: str = field(default="all", metadata={"help": "LongBench-Write file: all (120), en (60), ruler."})
    hellobench_tasks: list[str] = field(
        default_factory=lambda: ["open_ended_qa", "heuristic_text_generation"],
        metadata={"help": "HelloBench tasks (the paper's HB-A and HB-B by default; any of the five, or _2k.._16k)."},
    )
    writingbench_subset: str | None = field(
        default=None, metadata={"help": "WritingBench requirement subset: style, format or length; None: all 1000."}
    )
    max_items: int | None = field(default=None, metadata={"help": "First N items of each file (quick runs)."})
    stages: list[str] = field(
        default_factory=lambda: ["generate", "judge", "report"],
        metadata={"help": "generate, judge, report; without judge the report holds the deterministic metrics."},
    )
    run_name: str | None = field(default=None, metadata={"help": "Name of the run in reports; None: the model."})
    output_dir: str = field(default="outputs/eval", metadata={"help": "Generations, judgements, results, report."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Discard earlier generations and judgements in output_dir."}
    )
    overwrite_judgements: bool = field(
        default=False, metadata={"help": "Discard earlier judgements only (to judge the same answers anew)."}
    )
    eval_temperature: float | None = field(
        default=None, metadata={"help": "None: each benchmark's own (LB 0.5, HB 0.8, WB 0.7)."}
    )
    eval_top_p: float | None = field(default=None, metadata={"help": "None: each benchmark's own (WB 0.8, else 1)."})
    eval_top_k: int | None = field(
        default=None,
        metadata={
            "help": "None: each benchmark's own (WB 20, else off); 0: off (hosted APIs that refuse top_k need it)."
        },
    )
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "None: each benchmark's own (LB 32768, HB and WB 16384)."}
    )
    eval_seed: int | None = field(default=42, metadata={"help": "Sampling seed; None: unseeded."})
    eval_repetition_penalty: float = field(default=1.0, metadata={"help": "1.0: off (the benchmarks' setting)."})
    eval_system_prompt: str | None = field(default=None, metadata={"help": "System turn before each prompt."})
    eval_prefill: str = field(
        default="", metadata={"help": "Start of the assistant turn, e.g. '<think>\\n' to make a model think first."}
    )
    save_every: int = field(default=32, metadata={"help": "Items per generation call; each call is saved at once."})
    judge_templates: dict | None = field(
        default=None,
        metadata={"help": "Benchmark -> judge template file of one's own (default reer_hf/prompts/judge_*_en.md)."},
    )
    judge_retry_failed: bool = field(
        default=True, metadata={"help": "A resumed run asks the judge again for the calls that failed before."}
    )
    reasoning_profile: bool = field(
        default=True, metadata={"help": "Also judge the thinking on five dimensions (REER.md section 10)."}
    )
    reasoning_max_items: int | None = field(
        default=100, metadata={"help": "Judge the thinking of at most N items (in benchmark order); None: all."}
    )
    reasoning_template: str | None = field(
        default=None, metadata={"help": "Reasoning rubric template file; None: reer_hf/prompts/judge_reasoning_en.md."}
    )
    compare_to: list[str] | None = field(
        default=None, metadata={"help": "Other runs' output dirs (or report.json): comparison.md and joint plots."}
    )

    def __post_init__(self):
        from reer_hf.evaluation.tasks import BENCHMARKS

        unknown = sorted(set(self.benchmarks) - set(BENCHMARKS))
        if unknown or not self.benchmarks:
            raise ValueError(f"benchmarks must be some of {BENCHMARKS}, got {self.benchmarks}")
        bad = sorted(set(self.stages) - {"generate", "judge", "report"})
        if bad or not self.stages:
            raise ValueError(f"stages must be some of generate, judge, report; got {self.stages}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError("max_items must be >= 1")
        if self.save_every < 1:
            raise ValueError("save_every must be >= 1")
        if self.reasoning_max_items is not None and self.reasoning_max_items < 0:
            raise ValueError("reasoning_max_items must be >= 0")
        unknown_templates = sorted(set(self.judge_templates or {}) - set(BENCHMARKS))
        if unknown_templates:
            raise ValueError(f"judge_templates keys must be benchmarks {BENCHMARKS}, got {unknown_templates}")
