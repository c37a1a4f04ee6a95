"""Options of the synthesis stage: the generator LLM, the REER search, the quality filters and the run itself.

Fields carry a stage prefix (``generator_``, ``search_``, ``filter_``) so the four dataclasses share one ``TrlParser``.
Options whose metadata says ``resume_safe`` change how a run is operated, not what it writes: a resumed run may change
them without voiding the pieces already searched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reer_hf.core.formats import ASSISTANT_FORMAT, PAPER_SYSTEM_PROMPT, check_assistant_format
from reer_hf.core.options import check_choices
from reer_hf.core.segment import MIN_SEGMENT_CHARS

PAPER_OPENERS_EN = ["Okay, I am given", "Alright, the user", "Alright"]
PAPER_OPENER_WEIGHTS_EN = [0.2, 0.48, 0.32]
PAPER_OPENERS_ZH = ["好的", "嗯"]
PAPER_OPENER_WEIGHTS_ZH = [0.5, 0.5]


@dataclass
class SearchConfig:
    """The REER iterative local search (the paper's search); defaults are the paper's."""

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
    search_opener_weights_en: list[float] = field(
        default_factory=lambda: list(PAPER_OPENER_WEIGHTS_EN),
        metadata={"help": "Draw weights of search_openers_en, one per opener (relative)."},
    )
    search_openers_zh: list[str] = field(
        default_factory=lambda: list(PAPER_OPENERS_ZH),
        metadata={"help": "Openers pre-filled after '<think>\\n' for Chinese rows, drawn by the weights below."},
    )
    search_opener_weights_zh: list[float] = field(
        default_factory=lambda: list(PAPER_OPENER_WEIGHTS_ZH),
        metadata={"help": "Draw weights of search_openers_zh, one per opener (relative)."},
    )
    search_initial_prompt: str = field(
        default="initial", metadata={"help": "Prompt of the initial thinking (name in reer_hf/prompts or a path)."}
    )
    search_edit_prompt: str = field(
        default="edit", metadata={"help": "Prompt of the segment edit (name in reer_hf/prompts or a path)."}
    )
    search_prompt_source: Literal["builtin", "official"] = field(
        default="builtin",
        metadata={
            "help": "builtin: our prompts (reer_hf/prompts, offline). official: the official REER code's templates, "
            "fetched from their pinned commit and sha256-checked (python -m reer_hf.official fetch reer), filled as "
            "the official code fills them, with its system turn and edit pre-fill unless set below."
        },
    )
    search_system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "System turn of the generator's requests. None: none with builtin prompts, the official one "
            "with official prompts; '' for none."
        },
    )
    search_edit_prefill: str | None = field(
        default=None,
        metadata={
            "help": "Text the edit reply is pre-filled with before its <analyze> tag. None: nothing with builtin "
            "prompts, the official sentence with official prompts."
        },
    )
    search_reflection: bool = field(
        default=True,
        metadata={"help": "Ask for human-like reflection phrases; false gives the 'no reflection tokens' ablation."},
    )
    search_edit_format: Literal["analyze", "refine"] = field(
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
    search_acceptance: Literal["same_pass", "official"] = field(
        default="same_pass",
        metadata={
            "help": "What a rewrite's score is compared with. same_pass: the current trajectory re-scored in the "
            "same pass as its candidates, so a gain compares numbers computed alike. official: the official code's "
            "rule, the score kept from the pass that scored the current trajectory, with no margin unless "
            "search_min_gain is a number, so the kept scores never rise."
        },
    )
    search_min_gain: str = field(
        default="auto",
        metadata={
            "help": "How much a rewrite must lower the score (against what search_acceptance says) to be accepted. "
            "auto: the scorer's measured numeric noise under same_pass (its run dtype against fp32 on "
            "search_noise_rows rows; 0 in fp32; a run whose floor cannot be measured, such as a vLLM scorer's, "
            "stops and asks for a number), none under official; 0: any improvement; or a number."
        },
    )
    search_noise_rows: int = field(
        default=8,
        metadata={
            "help": "Rows (the first of the data) the scorer's noise floor is measured on before the search, with "
            "an fp32 copy of the scorer model, once per run by the main process; only for search_min_gain auto "
            "under same_pass acceptance, which needs at least 1."
        },
    )
    search_num_rollouts: int = field(
        default=1,
        metadata={
            "help": "Initial trajectories per pair (the official code's n_sample), each searched and written as its "
            "own row with its rollout index; rollout r of pair i is row i * n + r, so seeds follow (pair, rollout)."
        },
    )

    def __post_init__(self):
        check_choices(self)
        if self.search_prompt_source == "official" and not self.search_reflection:
            raise ValueError(
                "search_reflection false (the 'no reflection tokens' ablation) removes an instruction from our "
                "prompts; the official templates cannot be edited: use search_prompt_source builtin for the ablation"
            )
        self.search_min_gain = str(self.search_min_gain).strip()  # a YAML number arrives as a float
        if self.search_min_gain != "auto":
            try:
                gain = float(self.search_min_gain)
            except ValueError:
                gain = -1.0
            if not gain >= 0:
                raise ValueError(f"search_min_gain must be auto or a number >= 0, got {self.search_min_gain!r}")
        if self.search_noise_rows < 0:
            raise ValueError("search_noise_rows must be >= 0")
        if self.measures_noise and not self.search_noise_rows:
            raise ValueError(
                "search_min_gain auto measures the scorer's noise floor on search_noise_rows rows, which is 0: set "
                "search_noise_rows >= 1, or search_min_gain to a number (0: any improvement)"
            )
        if self.search_num_rollouts < 1:
            raise ValueError(f"search_num_rollouts must be >= 1, got {self.search_num_rollouts}")
        if self.search_num_expansion < 1 or self.search_max_step < 0:
            raise ValueError("search_num_expansion must be >= 1 and search_max_step >= 0")
        for lang in ("en", "zh"):
            openers, weights = getattr(self, f"search_openers_{lang}"), getattr(self, f"search_opener_weights_{lang}")
            if not openers or len(openers) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"search_openers_{lang} needs one non-negative weight per opener (some positive)")
        if not 0 < self.search_top_p <= 1 or self.search_temperature < 0:
            raise ValueError("search_top_p must be in (0, 1] and search_temperature >= 0")

    @property
    def edit_max_new_tokens(self) -> int:
        return self.search_edit_max_new_tokens or self.search_max_new_tokens

    @property
    def measures_noise(self) -> bool:
        """Whether the margin is the measured noise floor (``auto`` with same-pass acceptance)."""
        return self.search_min_gain == "auto" and self.search_acceptance == "same_pass"


@dataclass
class FilterConfig:
    """Quality filters of the synthesized data (the paper's quality filters); each one switchable and counted."""

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
    filter_malformed: bool = field(
        default=True,
        metadata={
            "help": "Drop trajectories and reject rewrites that hold the format's own tags (<think>, <answer>, "
            "<refine>, ...): a model that wrote them lost the format. The official code keeps them."
        },
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
        metadata={
            "help": "builtin:demo-pairs, a local jsonl/json/parquet file, a save_to_disk folder, an hf:// path to a "
            "file, or a Hub dataset id. A query or answer cell holding a chat (a list, or its JSON string) gives "
            "its last user / assistant turn."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Config (subset) of a Hub dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
    dataset_data_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "Files of dataset_name (a Hub id or local folder) that make up dataset_split, as load_dataset's "
            "data_files: paths or globs inside it."
        },
    )
    dataset_revision: str | None = field(
        default=None,
        metadata={"help": "Revision (commit, tag or branch) of dataset_name on the Hub; for an hf:// path too."},
    )
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
        metadata={
            "resume_safe": True,
            "help": "Where the dataset (save_to_disk and parquet), summary, plot, card and pieces go.",
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"resume_safe": True, "help": "Start over even if output_dir holds pieces of an earlier run."},
    )
    messages_system_prompt: str | None = field(
        default=PAPER_SYSTEM_PROMPT, metadata={"help": "System turn of the SFT messages column; None: none."}
    )
    messages_assistant_format: str = field(
        default=ASSISTANT_FORMAT,
        metadata={
            "help": "Assistant turn of the messages column, with {thinking} once and {answer}; the default is "
            "the format the SFT recipe trains on (reer_assistant_format), the paper's "
            "<think>...</think><answer>...</answer>."
        },
    )
    dataset_pretty_name: str = field(
        default="REER deep-thinking trajectories", metadata={"resume_safe": True, "help": "Card title."}
    )
    source_license: str = field(
        default="other",
        metadata={
            "resume_safe": True,
            "help": "Hub licence id of the source pairs (e.g. mit), or 'other' when they vary: the card then "
            "links a LICENSE.md that says so.",
        },
    )
    source_description: str | None = field(
        default=None,
        metadata={"resume_safe": True, "help": "Where the source pairs come from (a sentence for the card)."},
    )
    project_url: str | None = field(
        default=None,
        metadata={"resume_safe": True, "help": "Homepage of the code that made the data, linked from the card."},
    )
    report_rows: int | None = field(
        default=200,
        metadata={
            "resume_safe": True,
            "help": "Rows shown one by one in report.html; a larger run shows a sample chosen by a stated rule "
            "(largest gains, largest losses, each drop reason, random). None: every row.",
        },
    )
    push_to_hub: bool = field(
        default=False, metadata={"resume_safe": True, "help": "Push the kept rows, the card and the plot."}
    )
    hub_dataset_id: str | None = field(
        default=None, metadata={"resume_safe": True, "help": "Hub repo id, e.g. me/deepwriting-mine."}
    )
    hub_config_name: str | None = field(
        default=None,
        metadata={"resume_safe": True, "help": "Hub config name; None: one built from the key hyperparameters."},
    )
    hub_private: bool = field(default=False, metadata={"resume_safe": True, "help": "Create the Hub repo as private."})
    hub_revision: str | None = field(
        default=None,
        metadata={"resume_safe": True, "help": "Hub branch to push to (created if missing); None: main."},
    )
    merge_timeout: float = field(
        default=7 * 24 * 3600.0,
        metadata={
            "resume_safe": True,
            "help": "Seconds the main process waits for the other processes' pieces before giving up.",
        },
    )

    def __post_init__(self):
        if isinstance(self.dataset_data_files, str):  # a YAML scalar
            self.dataset_data_files = [self.dataset_data_files]
        if self.map_batch_size < 1 or self.save_every < 1:
            raise ValueError("map_batch_size and save_every must be positive")
        if self.report_rows is not None and self.report_rows < 1:
            raise ValueError("report_rows must be positive (or None for every row)")
        check_assistant_format(self.messages_assistant_format, "messages_assistant_format")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("push_to_hub needs hub_dataset_id (e.g. --hub_dataset_id me/my-reer-data)")
