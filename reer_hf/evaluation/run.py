"""The evaluation run behind ``recipes/evaluate.py``: generate, judge, score, report, each stage resumable.

Layout of ``output_dir``::

    generations/<benchmark>.jsonl      one record per item: response, thinking, answer, status (appended as they come)
    generations/<benchmark>.meta.json  the model and sampling that wrote them (a resumed run must match)
    judgements/<benchmark>.jsonl       one Judgement per judge call, keyed by id and the judged answer's hash
    judgements/reasoning.jsonl         the reasoning-profile judgements
    judgements/meta.json               the judge and its templates (a resumed run must match)
    results.json                       every score and count; report.json / report.md: the paper's table
    *.png                              reflection profile, WritingBench domains, reasoning-profile radar

A run that stops anywhere resumes where it stopped: generation skips items already written (a record cut by a crash
is dropped and redone; failed generations are redone), the judge skips calls already answered for the same answer
(failed calls are asked again unless ``judge_retry_failed`` is off).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from reer_hf.core.text import split_thinking
from reer_hf.evaluation import benchmarks as bm
from reer_hf.evaluation import tasks
from reer_hf.evaluation.judge import Judge, JudgeConfig, Judgement, JudgeRequest

logger = logging.getLogger(__name__)

__all__ = [
    "JsonlLog",
    "evaluate",
    "generate_answers",
    "judge_all",
    "score_benchmark",
    "sampling_for",
]

GENERATION_STATUSES = ("ok", "truncated", "unfinished_thinking", "empty_answer", "error")


class JsonlLog:
    """An append-only JSON-lines file, flushed and synced after each append, so a crash loses at most the line being
    written; :meth:`read` drops such a torn last line (and rewrites the file without it)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = []
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                if n != len(lines) - 1:
                    raise ValueError(f"{self.path}: line {n + 1} is not JSON; the file is damaged") from None
                logger.warning("%s: dropping a torn last line (an interrupted write); it will be redone", self.path)
                self._rewrite(records)
        return records

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        tmp.replace(self.path)


def _check_meta(path: Path, meta: dict[str, Any], overwrite: bool, what: str) -> None:
    """Refuse to mix outputs made with other settings into one file."""
    if path.exists() and not overwrite:
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != meta:
            changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise ValueError(
                f"{path.parent} holds {what} made with other settings (changed: {changed}); use another output_dir "
                f"or pass --overwrite_output_dir to start over"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")


def sampling_for(benchmark: str, args) -> Any:
    """The benchmark's own generation settings (:data:`tasks.GENERATION_DEFAULTS`), each overridden by the run's
    ``eval_*`` option when that is set."""
    from reer_hf.synthesis.generation import Sampling

    defaults = tasks.GENERATION_DEFAULTS[benchmark]
    chosen = {
        key: getattr(args, f"eval_{key}") if getattr(args, f"eval_{key}") is not None else value
        for key, value in defaults.items()
    }
    chosen["top_k"] = chosen["top_k"] or None  # 0: off, and never sent to a server
    return Sampling(n=1, seed=args.eval_seed, repetition_penalty=args.eval_repetition_penalty, **chosen)


def _generation_record(item: dict, completion, prefill: str) -> dict[str, Any]:
    from reer_hf.synthesis.generation import FINISH_ERROR, FINISH_LENGTH

    record = {
        "id": item["id"],
        "benchmark": item["benchmark"],
        "task": item["task"],
        "finish_reason": completion.finish_reason,
        "n_tokens": completion.n_tokens,
        "error": completion.error,
    }
    if completion.finish_reason == FINISH_ERROR:
        return {**record, "response": "", "thinking": None, "answer": "", "status": "error"}
    response = prefill + completion.text
    thinking, answer, finished = split_thinking(response)
    if not finished:
        status = "unfinished_thinking"
    elif not answer:
        status = "empty_answer"
    elif completion.finish_reason == FINISH_LENGTH:
        status = "truncated"
    else:
        status = "ok"
    return {**record, "response": response, "thinking": thinking, "answer": answer, "status": status}


def generate_answers(
    items: Sequence[dict[str, Any]],
    generator,
    sampling,
    log: JsonlLog,
    *,
    prefill: str = "",
    system_prompt: str | None = None,
    chunk_size: int = 32,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Each item's generation record, generating only those ``log`` does not hold yet (or holds as failed), in
    chunks of ``chunk_size`` written as they finish. Longest prompts first, so batches pad little."""
    from reer_hf.synthesis.generation import Request

    done = {r["id"]: r for r in log.read() if r.get("status") != "error"}
    pending = sorted((it for it in items if it["id"] not in done), key=lambda it: -len(it["prompt"]))
    if pending and generator is None:
        raise ValueError(f"{len(pending)} items still need generating, and no generator was given")
    seeded = bool(pending) and generator.sees_prefill and bool(prefill)
    bar = tqdm(total=len(items), initial=len(items) - len(pending), desc="generate", disable=not progress)
    for lo in range(0, len(pending), chunk_size):
        chunk = pending[lo : lo + chunk_size]
        requests = []
        for item in chunk:
            messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
            requests.append(Request([*messages, {"role": "user", "content": item["prompt"]}], prefill=prefill))
        completions = generator.generate(requests, sampling)
        records = [
            _generation_record(it, c[0], prefill if seeded else "") for it, c in zip(chunk, completions, strict=True)
        ]
        log.append(records)
        done.update((r["id"], r) for r in records if r["status"] != "error")
        for r in records:
            if r["status"] == "error":
                done.setdefault(r["id"], r)  # reported as failed in this run; redone by the next one
        bar.update(len(chunk))
    bar.close()
    return {it["id"]: done[it["id"]] for it in items}


def _answer_hash(answer: str) -> str:
    return hashlib.sha256(answer.encode("utf-8")).hexdigest()[:16]


def judge_all(
    requests: Sequence[JudgeRequest],
    judge: Judge | None,
    log: JsonlLog,
    *,
    retry_failed: bool = True,
    chunk_size: int = 64,
    progress: bool = True,
    desc: str = "judge",
) -> list[Judgement]:
    """One judgement per request, in request order, asking the judge only for requests ``log`` has no judgement of
    (a request's ``meta["answer_sha"]`` ties it to the answer it judges; failed ones are asked again when
    ``retry_failed``). With ``judge`` None nothing is asked: requests without a stored judgement come back failed, of
    kind ``missing`` (a report rebuilt from an earlier run's judgements)."""
    stored: dict[tuple[str, str | None], Judgement] = {}
    for record in log.read():
        j = Judgement(**record)
        if j.ok or not retry_failed:
            stored[(j.id, j.meta.get("answer_sha"))] = j
    key = lambda r: (r.id, r.meta.get("answer_sha"))  # noqa: E731
    pending = [r for r in requests if key(r) not in stored]
    if judge is None:
        missing = "not judged: run the judge stage"
        return [
            stored.get(key(r)) or Judgement(r.id, False, None, "", missing, "missing", 0, dict(r.meta))
            for r in requests
        ]
    bar = tqdm(total=len(requests), initial=len(requests) - len(pending), desc=desc, disable=not progress)
    for lo in range(0, len(pending), chunk_size):
        chunk = pending[lo : lo + chunk_size]
        judged = judge.judge(chunk)
        log.append([j.to_dict() for j in judged])
        stored.update((key(r), j) for r, j in zip(chunk, judged, strict=True))
        bar.update(len(chunk))
    bar.close()
    return [stored[key(r)] for r in requests]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_benchmark(
    benchmark: str,
    items: Sequence[dict[str, Any]],
    generations: dict[str, dict[str, Any]],
    judgements: Sequence[Judgement] | None,
    hellobench_weights: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Every score of one benchmark: generation counts, deterministic metrics (LongBench-Write S_l, distinct-n,
    reflection profile of the thinking) and, with ``judgements``, the judged scores. Items whose generation failed are
    left out of every score and counted (``generation.failed_ids``)."""
    from reer_hf.evaluation import metrics

    usable = [it for it in items if generations[it["id"]]["status"] != "error"]
    statuses = Counter(generations[it["id"]]["status"] for it in items)
    answers = [generations[it["id"]]["answer"] for it in usable]
    thinkings = [(generations[it["id"]]["thinking"], it["lang"]) for it in usable]
    with_thinking = [(t, lang) for t, lang in thinkings if t]
    out: dict[str, Any] = {
        "generation": {
            "n": len(items),
            "statuses": {s: statuses[s] for s in GENERATION_STATUSES if statuses[s]},
            "failed_ids": [it["id"] for it in items if generations[it["id"]]["status"] == "error"],
            "mean_new_tokens": _mean([generations[it["id"]]["n_tokens"] for it in usable]),
            "share_with_thinking": len(with_thinking) / len(usable) if usable else None,
        }
    }
    if answers:
        out["distinct_n"] = metrics.load("distinct_n").compute(predictions=answers, max_n=2)
    if with_thinking:
        # each thinking in its own language (a model may think in English about a Chinese prompt)
        profile = metrics.load("reflection_profile").compute(predictions=[t for t, _ in with_thinking], langs="auto")
        out["reflection_profile"] = {k: profile[k] for k in ("per_1k", "en", "zh")}
    if benchmark == "longbench_write" and usable:
        length = metrics.load("longbench_write_length").compute(
            predictions=answers, references=[it["length"] for it in usable]
        )
        out["length_score"] = length["length_score"]
        out["items"] = {
            it["id"]: {"required": it["length"], "produced": y, "length_score": s}
            for it, y, s in zip(usable, length["produced_lengths"], length["scores"], strict=True)
        }
    if judgements is None:
        return out
    if benchmark == "longbench_write":
        out["judged"] = bm.aggregate_longbench_write(judgements, out.get("length_score"))
    elif benchmark == "hellobench":
        out["judged"] = bm.aggregate_hellobench(judgements, hellobench_weights or {})
    else:
        expected = {it["index"]: len(it["criteria"]) for it in usable}
        out["judged"] = bm.aggregate_writingbench(judgements, expected)
    return out


def _judge_meta(judge_cfg: JudgeConfig, args) -> dict[str, Any]:
    from reer_hf.core.prompts import template_source

    sources = {
        name: template_source((args.judge_templates or {}).get(name) or f"judge_{name}") for name in tasks.BENCHMARKS
    }
    sources["reasoning"] = template_source(args.reasoning_template or "judge_reasoning")
    return {
        "judge_model": judge_cfg.judge_model,
        "judge_temperature": judge_cfg.judge_temperature,
        "judge_top_p": judge_cfg.judge_top_p,
        "judge_seed": judge_cfg.judge_seed,
        "templates_sha": {k: hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in sources.items()},
    }


def _judge_requests(rows: Sequence[dict], generations: dict[str, dict], args) -> list[JudgeRequest]:
    """The judge calls of one benchmark's answers, each tied to its answer's hash; failed generations get none."""
    requests = []
    for it in rows:
        g = generations[it["id"]]
        if g["status"] == "error":
            continue
        for r in tasks.judge_requests(it, g["answer"], args.judge_templates):
            r.meta["answer_sha"] = _answer_hash(g["answer"])
            requests.append(r)
    return requests


def _reasoning_requests(items: dict[str, list[dict]], generations: dict[str, dict], args) -> list[JudgeRequest]:
    """Reasoning-profile calls for up to ``reasoning_max_items`` items with thinking, picked by a hash of their ids:
    the same items for every run over the same benchmarks, spread over all of them."""
    pool = [
        it for rows in items.values() for it in rows if generations[it["benchmark"]][it["id"]]["status"] != "error"
    ]
    pool.sort(key=lambda it: hashlib.sha256(it["id"].encode()).hexdigest())
    thinkings = {it["id"]: generations[it["benchmark"]][it["id"]]["thinking"] for it in pool}
    requests = tasks.reasoning_requests(pool, thinkings, args.reasoning_template)
    if args.reasoning_max_items is not None:
        requests = requests[: args.reasoning_max_items]
    for r in requests:
        r.meta["answer_sha"] = _answer_hash(thinkings[r.meta["item_id"]])
    return requests


def evaluate(args, gen_cfg, judge_cfg: JudgeConfig, *, generator_factory: Callable | None = None) -> dict[str, Any]:
    """Run the stages ``args.stages`` asks for and return the report (also written to ``args.output_dir``).

    ``generator_factory`` builds the generator (default :func:`reer_hf.generation.build_generator` of ``gen_cfg``);
    it is called only when some item still needs generating."""
    from reer_hf.evaluation import report as rp

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError(
            "recipes/evaluate.py runs as one process (its files are appended by one writer): spread a model over GPUs "
            "with generator_vllm_kwargs.tensor_parallel_size, or serve it with `vllm serve --data-parallel-size N` "
            "and use the openai backend"
        )
    for path in args.compare_to or []:  # fail now, not after hours of generating and judging
        rp.load_report(path)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    clear = ["generations", "judgements"] if args.overwrite_output_dir else []
    clear += ["judgements"] if args.overwrite_judgements else []
    for sub in clear:
        for f in (out / sub).glob("*"):
            f.unlink()
    items = {
        b: tasks.load_items(
            b,
            args.benchmark_data,
            longbench_subset=args.longbench_subset,
            hellobench_tasks=args.hellobench_tasks,
            writingbench_subset=args.writingbench_subset,
            max_items=args.max_items,
        )
        for b in args.benchmarks
    }
    generations: dict[str, dict[str, dict]] = {}
    generator = None
    for b, rows in items.items():
        log = JsonlLog(out / "generations" / f"{b}.jsonl")
        sampling = sampling_for(b, args)
        meta = {
            "model": gen_cfg.generator_model,
            "sampling": asdict(sampling),
            "prefill": args.eval_prefill,
            "system_prompt": args.eval_system_prompt,
        }
        if "generate" in args.stages:
            _check_meta(out / "generations" / f"{b}.meta.json", meta, args.overwrite_output_dir, "generations")
            have = {r["id"] for r in log.read() if r.get("status") != "error"}
            if generator is None and any(it["id"] not in have for it in rows):
                from reer_hf.synthesis.generation import build_generator

                generator = (generator_factory or build_generator)(gen_cfg)
            generations[b] = generate_answers(
                rows,
                generator,
                sampling,
                log,
                prefill=args.eval_prefill,
                system_prompt=args.eval_system_prompt,
                chunk_size=args.save_every,
            )
        else:
            found = {r["id"]: r for r in log.read()}
            missing = [it["id"] for it in rows if it["id"] not in found]
            if missing:
                raise FileNotFoundError(
                    f"{log.path} lacks {len(missing)} of {len(rows)} generations (e.g. {missing[0]}); run the "
                    f"generate stage first"
                )
            generations[b] = {it["id"]: found[it["id"]] for it in rows}
    if generator is not None and hasattr(generator, "close"):
        generator.close()  # a vLLM engine keeps its GPU memory: with a judge on the same GPUs, run the stages apart

    judgements: dict[str, list[Judgement] | None] = dict.fromkeys(items)
    reasoning, judge_stats, judge_name = None, None, None
    meta_path = out / "judgements" / "meta.json"
    judging = "judge" in args.stages
    if judging:
        _check_meta(meta_path, _judge_meta(judge_cfg, args), args.overwrite_output_dir, "judgements")
        judge_name = judge_cfg.judge_model
    elif meta_path.exists():  # a report of an earlier run's judgements, asking nothing
        judge_name = json.loads(meta_path.read_text(encoding="utf-8"))["judge_model"]
    if judge_name is not None:
        judge = Judge(judge_cfg) if judging else None
        try:
            for b, rows in items.items():
                log = JsonlLog(out / "judgements" / f"{b}.jsonl")
                if judging or log.path.exists():
                    requests = _judge_requests(rows, generations[b], args)
                    judgements[b] = judge_all(
                        requests, judge, log, retry_failed=args.judge_retry_failed, desc=f"judge {b}"
                    )
            log = JsonlLog(out / "judgements" / "reasoning.jsonl")
            if args.reasoning_profile and (judging or log.path.exists()):
                requests = _reasoning_requests(items, generations, args)
                reasoning = tasks.aggregate_reasoning_profile(
                    judge_all(requests, judge, log, retry_failed=args.judge_retry_failed, desc="judge reasoning")
                )
        finally:
            if judge is not None:
                judge_stats = dict(judge.stats)
                judge.close()

    weights = bm.load_hellobench_weights(args.benchmark_data) if "hellobench" in items else None
    results = {
        "run_name": args.run_name or gen_cfg.generator_model,
        "model": gen_cfg.generator_model,
        "judge": judge_name,
        "judge_stats": judge_stats,
        "benchmarks": {
            b: score_benchmark(b, rows, generations[b], judgements[b], weights) for b, rows in items.items()
        },
        "reasoning_profile": reasoning,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    if "report" in args.stages:
        return rp.write_report(results, out, compare_to=args.compare_to)
    return results
