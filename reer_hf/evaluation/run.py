"""The evaluation run behind ``recipes/eval.py``: the stages generate, judge and report in sequence, each
resumable, every benchmark looked up in the registry (:mod:`reer_hf.evaluation.benchmarks`).

Layout of ``output_dir``::

    generations/<benchmark>.jsonl      one record per item: response, thinking, answer, status (appended as they come)
    generations/<benchmark>.meta.json  the model and sampling that wrote them (a resumed run must match)
    judgements/<benchmark>.jsonl       one Judgement per judge call, keyed by id and the judged answer's hash
    judgements/reasoning.jsonl         the reasoning-profile judgements
    judgements/meta.json               the judge, each benchmark's protocol and sampling (a resumed run must match)
    results.json                       every score and count; report.json / report.md: the paper's table
    *.png                              reflection profile, WritingBench domains, reasoning-profile radar

A run that stops anywhere resumes where it stopped: generation skips items already written (a record cut by a crash
is dropped and redone; failed generations are redone), the judge skips calls already answered for the same answer
(failed calls are asked again unless ``judge_retry_failed`` is off). A generation or judge call that failed in
transport is never written, so the next run redoes it whatever the options say.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reer_hf.core import official
from reer_hf.core.prompts import template_source
from reer_hf.evaluation.benchmarks import BENCHMARKS, get_benchmark, judge_requests, load_items
from reer_hf.evaluation.config import REASONING, EvaluationScriptArguments, JudgeConfig
from reer_hf.evaluation.generate import generate_answers, sampling_for
from reer_hf.evaluation.judge import Judge, judge_all
from reer_hf.evaluation.judgement import DEFAULT_JUDGE_SAMPLING, Judgement, JudgeRequest
from reer_hf.evaluation.reasoning import aggregate_reasoning_profile, reasoning_requests
from reer_hf.evaluation.report import load_report, write_report
from reer_hf.evaluation.results import score_benchmark
from reer_hf.evaluation.store import JsonlLog, check_meta
from reer_hf.generation import Generator, build_generator
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.health import PieceFailures, check_generator

__all__ = ["evaluate"]


def _sha(text: str) -> str:
    """A short digest: ties a stored judgement to the answer it judged, and a run to its prompt templates."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def judge_protocol(judge_cfg: JudgeConfig, args: EvaluationScriptArguments) -> dict[str, dict[str, Any]]:
    """Each registered benchmark's judge protocol in this run (and the reasoning profile's): where its prompt comes
    from (the builtin template's digest, or the pinned official files) and how the judge samples."""
    templates = args.judge_templates or {}
    out: dict[str, dict[str, Any]] = {}
    for name, bench in BENCHMARKS.items():
        source = args.prompt_source(name)
        if source == "official":
            prompt = {
                "official": [official.source(s).pinned for s in bench.official_sources],
                **bench.protocol(source),
            }
            prompt["sha256"] = [official.source(s).sha256[:16] for s in bench.official_sources]
        else:
            prompt = {"builtin": _sha(template_source(templates.get(name) or bench.template))}
        sampling = judge_cfg.sampling(name, bench.judge_sampling)
        out[name] = {"prompt_source": source, "prompt": prompt, "sampling": asdict(sampling)}
    reasoning = template_source(args.reasoning_template or "judge_reasoning")
    out[REASONING] = {
        "prompt_source": "builtin",
        "prompt": {"builtin": _sha(reasoning)},
        "sampling": asdict(judge_cfg.sampling(REASONING, DEFAULT_JUDGE_SAMPLING)),
    }
    return out


def _judge_meta(judge_cfg: JudgeConfig, args: EvaluationScriptArguments) -> dict[str, Any]:
    """The judge settings a resumed run must share: the model and every registered benchmark's protocol (all of
    them, so that a later run over more benchmarks may resume this one)."""
    return {"judge_model": judge_cfg.judge_model, "protocol": judge_protocol(judge_cfg, args)}


def _judge_requests(
    rows: Sequence[dict], generations: dict[str, dict], args, judge_cfg: JudgeConfig
) -> list[JudgeRequest]:
    """The judge calls of one benchmark's answers with its protocol and sampling, each tied to its answer's hash;
    failed generations get none."""
    requests = []
    sources = {name: args.prompt_source(name) for name in BENCHMARKS}
    for it in rows:
        g = generations[it["id"]]
        if g["status"] == "error":
            continue
        sampling = judge_cfg.sampling(it["benchmark"], get_benchmark(it["benchmark"]).judge_sampling)
        answer_sha = _sha(g["answer"])  # once per item: WritingBench asks one request per criterion
        for r in judge_requests(it, g["answer"], args.judge_templates, sources):
            r.meta["answer_sha"] = answer_sha
            r.sampling = sampling
            requests.append(r)
    return requests


def _reasoning_requests(
    items: dict[str, list[dict]], generations: dict[str, dict], args, judge_cfg: JudgeConfig
) -> list[JudgeRequest]:
    """Reasoning-profile calls for up to ``reasoning_max_items`` items with thinking, picked by a hash of their ids:
    the same items for every run over the same benchmarks, spread over all of them."""

    def thinking(it: dict) -> str | None:
        record = generations[it["benchmark"]][it["id"]]
        return record["thinking"] if record["status"] != "error" else None

    pool = [it for rows in items.values() for it in rows if thinking(it)]
    pool.sort(key=lambda it: hashlib.sha256(it["id"].encode()).hexdigest())
    pool = pool[: args.reasoning_max_items]  # picked before any prompt is rendered (None: all)
    thinkings = {it["id"]: thinking(it) for it in pool}
    requests = reasoning_requests(pool, thinkings, args.reasoning_template)
    sampling = judge_cfg.sampling(REASONING, DEFAULT_JUDGE_SAMPLING)
    for r in requests:
        r.meta["answer_sha"] = _sha(thinkings[r.meta["item_id"]])
        r.sampling = sampling
    return requests


def _generate(
    items: dict[str, list[dict]],
    args: EvaluationScriptArguments,
    gen_cfg: GeneratorConfig,
    out: Path,
    generator_factory: Callable[[GeneratorConfig], Generator] | None,
) -> tuple[dict[str, dict[str, dict]], dict[str, Any] | None]:
    """Each benchmark's generation records: generated where the stage runs (the generator built only when some item
    still needs one, after the health check of an ``openai`` server), else read from the logs of an earlier run; and
    the generator's counters (None: none built). Calls that fail in transport count towards the outage thresholds
    of the ``generator_outage_*`` options, over all benchmarks."""
    generations: dict[str, dict[str, dict]] = {}
    generator, failures = None, None
    for b, rows in items.items():
        log = JsonlLog(out / "generations" / f"{b}.jsonl")
        if "generate" not in args.stages:
            found = {r["id"]: r for r in log.read()}
            missing = [it["id"] for it in rows if it["id"] not in found]
            if missing:
                raise FileNotFoundError(
                    f"{log.path} lacks {len(missing)} of {len(rows)} generations (e.g. {missing[0]}); run the "
                    f"generate stage first"
                )
            generations[b] = {it["id"]: found[it["id"]] for it in rows}
            continue
        sampling = sampling_for(b, args)
        meta = {
            "model": gen_cfg.generator_model,
            "sampling": asdict(sampling),
            "prefill": args.eval_prefill,
            "system_prompt": args.eval_system_prompt,
        }
        check_meta(out / "generations" / f"{b}.meta.json", meta, args.overwrite_output_dir, "generations")
        have = {r["id"] for r in log.read() if r.get("status") != "error"}
        if generator is None and any(it["id"] not in have for it in rows):
            check_generator(gen_cfg)  # an openai server that cannot serve the model fails the run before any call
            generator = (generator_factory or build_generator)(gen_cfg)
            resume = "run the same command again: it generates only the answers not written yet"
            where = getattr(generator, "where", gen_cfg.generator_model)
            failures = PieceFailures(gen_cfg, where, out / "generations", unit="generation calls", resume=resume)
        generations[b] = generate_answers(
            rows,
            generator,
            sampling,
            log,
            prefill=args.eval_prefill,
            system_prompt=args.eval_system_prompt,
            chunk_size=args.save_every,
            failures=failures,
        )
    stats = None if generator is None else dict(getattr(generator, "stats", {}))
    if generator is not None and hasattr(generator, "close"):
        generator.close()  # a vLLM engine keeps its GPU memory: with a judge on the same GPUs, run the stages apart
    return generations, stats


def _judge(
    items: dict[str, list[dict]],
    generations: dict[str, dict[str, dict]],
    args: EvaluationScriptArguments,
    judge_cfg: JudgeConfig,
    out: Path,
) -> tuple[dict[str, list[Judgement] | None], dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """Each benchmark's judgements, the reasoning profile, the judge's counters and its name. With the judge stage
    the judge is asked; without it an earlier run's judgements are read (missing ones counted), or none exist."""
    judgements: dict[str, list[Judgement] | None] = dict.fromkeys(items)
    reasoning, judge_stats, judge_name = None, None, None
    meta_path = out / "judgements" / "meta.json"
    judging = "judge" in args.stages
    if judging:
        check_meta(meta_path, _judge_meta(judge_cfg, args), args.overwrite_output_dir, "judgements")
        judge_name = judge_cfg.judge_model
    elif meta_path.exists():  # a report of an earlier run's judgements, asking nothing
        judge_name = json.loads(meta_path.read_text(encoding="utf-8"))["judge_model"]
    if judge_name is None:
        return judgements, reasoning, judge_stats, judge_name
    judge = Judge(judge_cfg) if judging else None
    try:
        for b, rows in items.items():
            log = JsonlLog(out / "judgements" / f"{b}.jsonl")
            if judging or log.path.exists():
                requests = _judge_requests(rows, generations[b], args, judge_cfg)
                judgements[b] = judge_all(
                    requests, judge, log, retry_failed=args.judge_retry_failed, desc=f"judge {b}"
                )
        log = JsonlLog(out / "judgements" / "reasoning.jsonl")
        if args.reasoning_profile and (judging or log.path.exists()):
            requests = _reasoning_requests(items, generations, args, judge_cfg)
            reasoning = aggregate_reasoning_profile(
                judge_all(requests, judge, log, retry_failed=args.judge_retry_failed, desc="judge reasoning")
            )
    finally:
        if judge is not None:
            judge_stats = dict(judge.stats)
            judge.close()
    return judgements, reasoning, judge_stats, judge_name


def evaluate(
    args: EvaluationScriptArguments,
    gen_cfg: GeneratorConfig,
    judge_cfg: JudgeConfig,
    *,
    generator_factory: Callable[[GeneratorConfig], Generator] | None = None,
) -> dict[str, Any]:
    """Run the stages ``args.stages`` asks for and return the report (also written to ``args.output_dir``), or the
    results without the report stage.

    ``generator_factory`` builds the generator (default :func:`reer_hf.generation.build_generator` of
    ``gen_cfg``); it is called only when some item still needs generating."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError(
            "recipes/eval.py runs as one process (its files are appended by one writer): spread a model over GPUs "
            "with generator_vllm_kwargs.tensor_parallel_size, or serve it with `vllm serve --data-parallel-size N` "
            "and use the openai backend"
        )
    for path in args.compare_to or []:  # fail now, not after hours of generating and judging
        load_report(path)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    clear = ["generations", "judgements"] if args.overwrite_output_dir else []
    clear += ["judgements"] if args.overwrite_judgements else []
    for sub in clear:
        for f in (out / sub).glob("*"):
            f.unlink()
    items = {
        b: load_items(
            b,
            args.benchmark_data,
            max_items=args.max_items,
            **{option: getattr(args, option) for option in get_benchmark(b).item_options},
        )
        for b in args.benchmarks
    }
    generations, generation_stats = _generate(items, args, gen_cfg, out, generator_factory)
    judgements, reasoning, judge_stats, judge_name = _judge(items, generations, args, judge_cfg, out)
    protocol = None
    if judge_name is not None:
        protocol = {k: v for k, v in judge_protocol(judge_cfg, args).items() if k in items or k == REASONING}
        if "judge" not in args.stages:  # a report of an earlier run: its protocol is what its meta recorded
            meta = json.loads((out / "judgements" / "meta.json").read_text(encoding="utf-8"))
            protocol = {k: v for k, v in (meta.get("protocol") or {}).items() if k in items or k == REASONING}
    results = {
        "run_name": args.run_name or gen_cfg.generator_model,
        "model": gen_cfg.generator_model,
        "judge": judge_name,
        "judge_protocol": protocol,
        "judge_stats": judge_stats,
        "generation_stats": generation_stats,
        "benchmarks": {
            b: score_benchmark(
                b,
                rows,
                generations[b],
                judgements[b],
                args.benchmark_data,
                {o: getattr(args, o) for o in get_benchmark(b).report_options},
            )
            for b, rows in items.items()
        },
        "reasoning_profile": reasoning,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    if "report" in args.stages:
        return write_report(results, out, compare_to=args.compare_to)
    return results
