"""Options of ``recipes/sft.py`` beyond TRL's ``SFTConfig`` and ``ModelConfig``: the REER data, its conversion, the
paper's ablations and the public-data mixture."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from reer_hf.core.formats import ASSISTANT_FORMAT, PAPER_SYSTEM_PROMPT, check_assistant_format
from reer_hf.core.options import check_choices

if TYPE_CHECKING:
    from trl import TrlParser

DEEPWRITING_20K = "m-a-p/DeepWriting-20K"


@dataclass
class SFTScriptArguments:
    """What ``recipes/sft.py`` trains on: the REER data, the paper's ablations (arXiv 2509.06160) and the public mix.

    ``dataset_*`` name the REER data; ``mix_*`` the public reasoning data; ``ablation_*`` the paper's ablations;
    ``reer_*`` the conversion. Not ``trl.ScriptArguments``: its ``dataset_test_split``, ``dataset_streaming`` and
    ``ignore_bias_buffers`` would be options this recipe never reads (it trains without an eval split, converts and
    caches the data whole, and leaves DDP buffers to accelerate), so they are unknown options here.
    """

    dataset_name: str | None = field(
        default=DEEPWRITING_20K,
        metadata={
            "help": "REER data: a Hub id (default: the published DeepWriting-20K) or a local data folder (pick its "
            "files with dataset_data_files, pin a Hub revision with dataset_revision), a local jsonl/json/parquet "
            "file, an hf:// path to one (e.g. hf://datasets/m-a-p/DeepWriting-20K/deepwriting20k.parquet) or a "
            "save_to_disk folder. Accepted shapes: prompt (chat list, its JSON string, or text) + solution "
            "('<think>...</think>' then the answer); question + solution; messages; the output of "
            "recipes/synthesize.py (query, answer, z0, z_star)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Config (subset) of a Hub dataset_name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split of dataset_name trained on."})
    dataset_data_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "Files of dataset_name (a Hub id or local folder) that make up dataset_train_split, as "
            "load_dataset's data_files: paths or globs inside it, e.g. deepwriting20k.parquet."
        },
    )
    dataset_revision: str | None = field(
        default=None,
        metadata={"help": "Revision (commit, tag or branch) of dataset_name on the Hub; for an hf:// path too."},
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
        default=ASSISTANT_FORMAT,
        metadata={
            "help": "Assistant turn, with {thinking} once and {answer}; the default is the paper's output format "
            "<think>...</think><answer>...</answer>. Public rows with a thinking are rewritten to it too."
        },
    )
    reer_over_max_length: Literal["drop", "keep"] = field(
        default="drop",
        metadata={
            "help": "Conversations that max_length would cut before their end-of-turn token (eos_token, e.g. "
            "<|im_end|>), measured as SFTTrainer tokenizes them: drop (every trained row then teaches the model to "
            "stop) or keep (SFTTrainer truncates them and they never train the end of turn). Counted in the data "
            "report either way (--dry_run)."
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
    reer_data_cache: bool = field(
        default=True,
        metadata={
            "help": "Save the built data (and its report) under reer_data_cache_dir, keyed by the data options, the "
            "sources' fingerprints, the tokenizer and the conversion code: the other ranks and a rerun with the same "
            "options load it instead of converting again. False builds it in every process."
        },
    )
    reer_data_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the data cache; None: sft-data/ under $REER_HF_HOME (default ~/.cache/reer_hf). "
            "Global rank 0 builds (or finds) the entry first and sends its path to the other ranks, which load it "
            "without loading the sources again when they can read it: on several nodes, a folder they share lets "
            "that one build serve them all. On a folder local to each node, each node's main process builds (or "
            "finds) its own entry, then that node's other ranks load it."
        },
    )
    reer_auto_resume: bool = field(
        default=True,
        metadata={
            "help": "Resume from the last checkpoint in output_dir when there is one (resume_from_checkpoint, when "
            "set, wins); false starts over."
        },
    )
    reer_model_license: str | None = field(
        default="auto",
        metadata={
            "help": "Hub licence id the model card states; auto: the base model's when known (Qwen3, SmolLM2: "
            "apache-2.0), else none; None: none."
        },
    )
    reer_project_url: str | None = field(
        default=None,
        metadata={
            "help": "Homepage of the code that trained the model, linked from the model card (omitted when unset)."
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
            "help": "Ablation 'no reflection tokens': remove the reflection phrases (English and Chinese) from "
            "each REER thinking by the rules of reer_hf.core.reflection.remove_reflections. The other way: point "
            "dataset_name at a synthesis run made with search_reflection=false."
        },
    )
    ablation_length: Literal["none", "fewer_long", "fewer_short"] = field(
        default="none",
        metadata={
            "help": "Ablation on trajectory length: none, fewer_long (down-sample REER rows whose thinking is longer "
            "than the cut-off) or fewer_short (down-sample those at most as long)."
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
            "help": "Public reasoning data mixed in (the paper: OpenThoughts): a Hub id, local folder or file, or "
            "hf:// path (as dataset_name) of messages, conversations (from/value, OpenThoughts) or prompt/question "
            "+ solution rows."
        },
    )
    mix_dataset_config: str | None = field(default=None, metadata={"help": "Config (subset) of the public data."})
    mix_dataset_split: str = field(default="train", metadata={"help": "Split of the public data."})
    mix_dataset_data_files: list[str] | None = field(
        default=None, metadata={"help": "Files of mix_dataset_name that make up mix_dataset_split (data_files)."}
    )
    mix_dataset_revision: str | None = field(
        default=None, metadata={"help": "Revision of mix_dataset_name on the Hub (or of its hf:// path)."}
    )
    mix_count: int | None = field(
        default=None,
        metadata={
            "help": "Public rows in the mixture: a seeded sample of exactly this many (fewer only when the data runs "
            "out of usable rows), of which only the sampled rows are converted; exclusive with mix_ratio."
        },
    )
    mix_ratio: float | None = field(
        default=None,
        metadata={"help": "Share of public rows in the final mixture, in (0, 1); exclusive with mix_count."},
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if str(self.reer_model_license).strip().lower() in ("", "none", "null"):
            self.reer_model_license = None  # the command line gives the string 'None'
        if self.reer_model_license == "other":
            raise ValueError(
                "reer_model_license 'other' needs a licence name and link the card cannot invent: use a Hub licence "
                "id (e.g. apache-2.0), auto or None"
            )
        for name in ("dataset_data_files", "mix_dataset_data_files"):
            if isinstance(getattr(self, name), str):  # a YAML scalar
                setattr(self, name, [getattr(self, name)])
        check_assistant_format(self.reer_assistant_format, "reer_assistant_format")
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


def sft_parser() -> TrlParser:
    """The parser of ``recipes/sft.py`` (and ``scripts/check_stops.py``, which rebuilds its training prompts): this
    module's options, TRL's ``SFTConfig`` and ``ModelConfig``, from a YAML recipe and the command line."""
    from trl import ModelConfig, SFTConfig, TrlParser

    return TrlParser((SFTScriptArguments, SFTConfig, ModelConfig))
