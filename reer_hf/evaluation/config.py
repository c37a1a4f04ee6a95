"""Options of ``recipes/evaluate.py``: what is evaluated, how the model under evaluation generates, where it writes."""

from __future__ import annotations

from dataclasses import dataclass, field


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
