"""Options of the generator LLM, shared by every stage that generates: the synthesis run (initial trajectories and
segment rewrites) and the evaluation (the model under evaluation). Fields carry the ``generator_`` prefix so they share
one ``TrlParser`` with the stage's own dataclasses; ``resume_safe`` options change how a run is operated, not what it
writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reer_hf.core.models import DEMO_MODEL
from reer_hf.core.options import check_choices


@dataclass
class GeneratorConfig:
    """The generator LLM: in a synthesis run it writes initial trajectories and segment rewrites (the paper's search);
    in an evaluation it is the model under evaluation."""

    generator_model: str = field(
        default=DEMO_MODEL,
        metadata={
            "help": f"Generator model: a Hub id, a local path or {DEMO_MODEL!r} (transformers, vllm), or the model "
            "name the server knows (openai). recipes/synthesize.py: the LLM that writes the trajectories; "
            "recipes/eval.py: the model under evaluation."
        },
    )
    generator_backend: Literal["transformers", "vllm", "openai"] = field(
        default="transformers",
        metadata={"help": "transformers (local generate), vllm (offline engine; GPU, optional) or openai (a server)."},
    )
    generator_dtype: str = field(default="auto", metadata={"help": "auto, bf16, fp16 or fp32 (local backends)."})
    generator_device: str = field(
        default="auto", metadata={"resume_safe": True, "help": "auto, cpu, cuda, cuda:1, ... (transformers)."}
    )
    generator_attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel of the transformers backend; None: the default."}
    )
    generator_torch_threads: str = field(
        default="auto",
        metadata={
            "resume_safe": True,
            "help": "torch threads of the process (the transformers generator and an in-process scorer): auto (the "
            "cores this process may use less those other processes keep busy at the start, logged; never more) or a "
            "number.",
        },
    )
    generator_batch_size: int = field(
        default=16, metadata={"help": "Prompts per transformers generate() call (each with its n samples)."}
    )
    generator_carry_prompts: int = field(
        default=64,
        metadata={
            "resume_safe": True,
            "help": "transformers: keep the prefill of this many prompts between calls (least recently used dropped "
            "first; 0: off), so a prompt that starts like an earlier one computes only what it adds (a row's next "
            "search step repeats the instructions, query, answer and thinking before its segment). Keep it at least "
            "map_batch_size. Memory: prompts x prompt tokens x key/value bytes per token (about 23 KB per token for "
            "the demo model in bf16, 144 KB for Qwen3-8B).",
        },
    )
    generator_base_url: str = field(
        default="http://localhost:8000/v1",
        metadata={"resume_safe": True, "help": "OpenAI-compatible endpoint (openai backend)."},
    )
    generator_api_key_env: str | None = field(
        default="OPENAI_API_KEY",
        metadata={"resume_safe": True, "help": "Environment variable holding the API key (openai); None: no key."},
    )
    generator_prefill_mode: Literal["continue", "completions", "none"] = field(
        default="continue",
        metadata={
            "help": "How the openai backend pre-fills the assistant turn: continue (chat API with "
            "continue_final_message, as vllm serve and SGLang accept), completions (the prompt rendered with the "
            "generator's chat template, sent to /completions) or none (APIs without pre-fill: the pre-fill is "
            "prepended to the reply)."
        },
    )
    generator_max_concurrency: int = field(
        default=32, metadata={"resume_safe": True, "help": "Requests in flight at once (openai)."}
    )
    generator_max_retries: int = field(
        default=5,
        metadata={
            "resume_safe": True,
            "help": "Retries of a request on network errors (openai); other errors are recorded.",
        },
    )
    generator_timeout: float = field(
        default=900.0, metadata={"resume_safe": True, "help": "Seconds per request (openai)."}
    )
    generator_vllm_kwargs: dict | None = field(
        default=None,
        metadata={
            "resume_safe": True,
            "help": "Extra vllm.LLM(...) arguments (tensor_parallel_size, gpu_memory_utilization).",
        },
    )
    generator_health_check: bool = field(
        default=True,
        metadata={
            "resume_safe": True,
            "help": "openai: before the first request (of the search, or of the evaluation's generate stage), GET "
            "{generator_base_url}/models and check that generator_model is served, failing at once otherwise; false "
            "for servers without /models.",
        },
    )
    generator_outage_consecutive: int = field(
        default=3,
        metadata={
            "resume_safe": True,
            "help": "Stop the run as a generator outage once this many pieces (in an evaluation: generation calls of "
            "save_every items) in a row failed on requests that got no usable reply after their retries (what is "
            "written is kept); 0: never.",
        },
    )
    generator_outage_share: float = field(
        default=0.5,
        metadata={
            "resume_safe": True,
            "help": "Stop the run as a generator outage once more than this share of the last "
            "generator_outage_window pieces (generation calls) failed; 1.0: never.",
        },
    )
    generator_outage_window: int = field(
        default=10,
        metadata={
            "resume_safe": True,
            "help": "Pieces (generation calls) over which generator_outage_share is measured.",
        },
    )

    def __post_init__(self):
        check_choices(self)
        self.generator_torch_threads = str(self.generator_torch_threads).strip()  # a YAML number arrives as an int
        if self.generator_torch_threads != "auto" and not (
            self.generator_torch_threads.isdigit() and int(self.generator_torch_threads) >= 1
        ):
            raise ValueError(
                f"generator_torch_threads must be auto or a number >= 1, got {self.generator_torch_threads!r}"
            )
        if self.generator_carry_prompts < 0:
            raise ValueError(f"generator_carry_prompts must be >= 0, got {self.generator_carry_prompts}")
        if min(self.generator_batch_size, self.generator_max_concurrency) < 1 or self.generator_max_retries < 0:
            raise ValueError("generator_batch_size and generator_max_concurrency must be >= 1, max_retries >= 0")
        if self.generator_outage_consecutive < 0 or self.generator_outage_window < 1:
            raise ValueError("generator_outage_consecutive must be >= 0 and generator_outage_window >= 1")
        if not 0 < self.generator_outage_share <= 1:
            raise ValueError(f"generator_outage_share must be in (0, 1], got {self.generator_outage_share}")
