"""Options of ``recipes/eval.py``: what is evaluated, how the model under evaluation generates, where it writes
(:class:`EvaluationScriptArguments`), and the judge model and how it is called (:class:`JudgeConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from reer_hf.core.endpoint import Endpoint
from reer_hf.core.options import check_choices
from reer_hf.evaluation.benchmarks import BENCHMARKS
from reer_hf.evaluation.judgement import JudgeSampling

STAGES = ("generate", "judge", "report")
PromptSource = Literal["builtin", "official"]
#: The judge calls that are no benchmark's: the reasoning profile.
REASONING = "reasoning"


@dataclass
class EvaluationScriptArguments:
    """What ``recipes/eval.py`` evaluates, how it generates, and where it writes. The model under evaluation is
    the ``generator_*`` model (transformers, vLLM or an OpenAI-compatible server); the judge is ``judge_*``."""

    benchmarks: list[str] = field(
        default_factory=lambda: ["longbench_write", "hellobench", "writingbench"],
        metadata={"help": "Benchmarks to run (the registered ones: longbench_write, hellobench, writingbench)."},
    )
    benchmark_data: str | None = field(
        default=None,
        metadata={
            "help": "Benchmark folder or Hub dataset id of the same layout; None: $REER_BENCHMARK_DATA, else "
            "data/benchmarks (layout: reer_hf/evaluation/benchmarks/data.py); builtin: the bundled LongBench-Write."
        },
    )
    longbench_subset: Literal["all", "en", "ruler"] = field(
        default="all", metadata={"help": "LongBench-Write file: all (120), en (60), ruler (48)."}
    )
    hellobench_tasks: list[str] = field(
        default_factory=lambda: ["open_ended_qa", "heuristic_text_generation"],
        metadata={"help": "HelloBench tasks (the paper's HB-A and HB-B by default; any of the five, or _2k.._16k)."},
    )
    writingbench_subset: Literal["style", "format", "length"] | None = field(
        default=None, metadata={"help": "WritingBench requirement subset: style, format or length; None: all 1000."}
    )
    max_items: int | None = field(default=None, metadata={"help": "First N items of each file (quick runs)."})
    stages: list[str] = field(
        default_factory=lambda: list(STAGES),
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
    judge_prompt_source: PromptSource = field(
        default="builtin",
        metadata={
            "help": "Judge prompts: builtin (reer_hf/prompts/judge_*_en.md) or official (each benchmark's own "
            "prompt and message layout, fetched from its pinned repository; docs/benchmarks.md)."
        },
    )
    judge_prompt_sources: dict | None = field(
        default=None,
        metadata={
            "help": "Benchmark -> builtin or official, over judge_prompt_source (e.g. {writingbench: official})."
        },
    )
    judge_templates: dict | None = field(
        default=None,
        metadata={"help": "Benchmark -> judge template file of one's own (default reer_hf/prompts/judge_*_en.md)."},
    )
    report_lb_column: Literal["S", "S_q", "S_l"] = field(
        default="S",
        metadata={
            "help": "What the table's LB column shows: S = (S_l + S_q) / 2 (the paper's), S_q (quality, judged) or "
            "S_l (length, no judge); the report says which."
        },
    )
    judge_retry_failed: bool = field(
        default=True, metadata={"help": "A resumed run asks the judge again for the calls that failed before."}
    )
    reasoning_profile: bool = field(
        default=True,
        metadata={
            "help": "Also judge the thinking on the five dimensions the paper compares models on (problem "
            "deconstruction, logical consistency, depth of analysis, presentation clarity, factual grounding)."
        },
    )
    reasoning_max_items: int | None = field(
        default=100,
        metadata={
            "help": "Judge the thinking of at most N items, picked by a hash of their ids (the same items in every "
            "run over the same benchmarks, spread over all of them); None: all."
        },
    )
    reasoning_template: str | None = field(
        default=None, metadata={"help": "Reasoning rubric template file; None: reer_hf/prompts/judge_reasoning_en.md."}
    )
    compare_to: list[str] | None = field(
        default=None, metadata={"help": "Other runs' output dirs (or report.json): comparison.md and joint plots."}
    )

    def __post_init__(self):
        check_choices(self)
        unknown = sorted(set(self.benchmarks) - set(BENCHMARKS))
        if unknown or not self.benchmarks:
            raise ValueError(f"benchmarks must be some of {list(BENCHMARKS)}, got {self.benchmarks}")
        bad = sorted(set(self.stages) - set(STAGES))
        if bad or not self.stages:
            raise ValueError(f"stages must be some of {', '.join(STAGES)}; got {self.stages}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError("max_items must be >= 1")
        if self.save_every < 1:
            raise ValueError("save_every must be >= 1")
        if self.reasoning_max_items is not None and self.reasoning_max_items < 0:
            raise ValueError("reasoning_max_items must be >= 0")
        unknown_templates = sorted(set(self.judge_templates or {}) - set(BENCHMARKS))
        if unknown_templates:
            raise ValueError(f"judge_templates keys must be benchmarks {list(BENCHMARKS)}, got {unknown_templates}")
        sources = self.judge_prompt_sources or {}
        if sorted(set(sources) - set(BENCHMARKS)) or set(sources.values()) - {"builtin", "official"}:
            raise ValueError(
                f"judge_prompt_sources maps benchmarks {list(BENCHMARKS)} to builtin or official, got {sources}"
            )
        clash = sorted(b for b in self.judge_templates or {} if self.prompt_source(b) == "official")
        if clash:
            raise ValueError(f"judge_templates names {clash}, judged with the official prompt: choose one")

    def prompt_source(self, benchmark: str) -> PromptSource:
        """Where benchmark ``benchmark``'s judge prompt comes from in this run."""
        return (self.judge_prompt_sources or {}).get(benchmark, self.judge_prompt_source)


@dataclass
class JudgeConfig:
    """The judge model behind any OpenAI-compatible endpoint and how it is called. The paper's judges were GPT-4o /
    Claude 3.7 class models; LongBench-Write's own code judges with gpt-4o-2024-05-13 at temperature 0.5.

    Each benchmark's judge samples as its official script does (its ``judge_sampling``); ``judge_temperature``,
    ``judge_top_p``, ``judge_max_tokens`` and ``judge_seed`` override every benchmark when set, and
    ``judge_sampling`` overrides one benchmark (or ``reasoning``) over both."""

    judge_model: str = field(
        default="gpt-4o-2024-05-13",
        metadata={"help": "Model name the endpoint knows (the original LongBench-Write judge: gpt-4o-2024-05-13)."},
    )
    judge_base_url: str = field(
        default="http://localhost:8000/v1", metadata={"help": "OpenAI-compatible endpoint (e.g. vllm serve)."}
    )
    judge_api_key_env: str | None = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key; None: no key."}
    )
    judge_temperature: float | None = field(
        default=None, metadata={"help": "None: each benchmark's official (LB 0.5, HB 0.8, WB 1.0; reasoning 0.5)."}
    )
    judge_top_p: float | None = field(
        default=None, metadata={"help": "None: each benchmark's official (WB 0.95, else 1)."}
    )
    judge_max_tokens: int | None = field(
        default=None, metadata={"help": "None: each benchmark's official (LB 1024, HB 4096, WB 2048; reasoning 4096)."}
    )
    judge_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the first try (each further try adds 1); None: each benchmark's (HB 42, else none)."
        },
    )
    judge_sampling: dict | None = field(
        default=None,
        metadata={
            "help": "Benchmark (or reasoning) -> {temperature, top_p, max_tokens, seed} over the options above, e.g. "
            "{hellobench: {seed: null}}."
        },
    )
    judge_max_concurrency: int = field(default=16, metadata={"help": "Judge calls in flight at once."})
    judge_max_retries: int = field(
        default=5, metadata={"help": "Retries of a call on network errors (exponential backoff)."}
    )
    judge_max_parse_retries: int = field(
        default=4, metadata={"help": "Further calls when a reply does not parse (4: five tries, as LongBench-Write)."}
    )
    judge_backoff: float = field(default=1.0, metadata={"help": "Seconds before the first network retry (doubles)."})
    judge_timeout: float = field(default=600.0, metadata={"help": "Seconds per call."})

    def __post_init__(self):
        if self.judge_max_concurrency < 1:
            raise ValueError(f"judge_max_concurrency must be >= 1, got {self.judge_max_concurrency}")
        if min(self.judge_max_retries, self.judge_max_parse_retries) < 0:
            raise ValueError("judge_max_retries and judge_max_parse_retries must be >= 0")
        if self.judge_backoff < 0 or self.judge_timeout <= 0:
            raise ValueError("judge_backoff must be >= 0 and judge_timeout > 0")
        keys = {f.name for f in fields(JudgeSampling)}
        for name, overrides in (self.judge_sampling or {}).items():
            if name not in (*BENCHMARKS, REASONING) or not isinstance(overrides, dict) or set(overrides) - keys:
                raise ValueError(
                    f"judge_sampling maps a benchmark {list(BENCHMARKS)} or {REASONING!r} to some of {sorted(keys)}, "
                    f"got {name!r}: {overrides!r}"
                )

    def sampling(self, name: str | None, default: JudgeSampling) -> JudgeSampling:
        """The judge sampling of benchmark ``name`` (or ``reasoning``; None: a request that names none): ``default``
        (the benchmark's official settings), then the ``judge_*`` options that are set, then ``judge_sampling``."""
        chosen: dict[str, Any] = {
            key: getattr(self, f"judge_{key}")
            for key in ("temperature", "top_p", "max_tokens", "seed")
            if getattr(self, f"judge_{key}") is not None
        }
        chosen.update((self.judge_sampling or {}).get(name, {}) if name else {})
        return replace(default, **chosen)

    def endpoint(self) -> Endpoint:
        """The endpoint the ``judge_*`` options name."""
        return Endpoint.from_options(self, "judge")
