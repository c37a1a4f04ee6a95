"""The generate stage: each item's answer from the model under evaluation, sampled with its benchmark's settings,
split into thinking and answer, given a status, and written as it comes so an interrupted run resumes. A request that
failed in transport (:data:`~reer_hf.generation.completion.TRANSPORT_KINDS`) is counted in this run but never written:
the next run redoes it. Generation calls with such failures count towards the generator's outage thresholds
(``generator_outage_*``, :class:`~reer_hf.generation.health.PieceFailures`, as in a synthesis run), so a server that
went away stops the run instead of failing every remaining item after its retries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tqdm.auto import tqdm

from reer_hf.core.text import split_thinking
from reer_hf.evaluation.benchmarks.registry import get_benchmark
from reer_hf.evaluation.store import JsonlLog
from reer_hf.generation import (
    FINISH_ERROR,
    FINISH_LENGTH,
    TRANSPORT_KINDS,
    Completion,
    Generator,
    GeneratorUnavailable,
    Request,
    Sampling,
)
from reer_hf.generation.health import PieceFailures

__all__ = ["GENERATION_STATUSES", "generate_answers", "generation_record", "sampling_for"]

#: Completion error kinds of the transport (no reply, a refused request, a body that is no reply), not the model's.

#: ``truncated``: the token limit cut the answer; ``unfinished_thinking``: ``<think>`` never closed, so no answer;
#: ``error``: the generation failed (left out of every score, redone by the next run).
GENERATION_STATUSES = ("ok", "truncated", "unfinished_thinking", "empty_answer", "error")


def sampling_for(benchmark: str, args) -> Sampling:
    """Benchmark ``benchmark``'s own generation settings, each overridden by the run's ``eval_*`` option when that is
    set."""
    chosen = {
        key: getattr(args, f"eval_{key}") if getattr(args, f"eval_{key}") is not None else value
        for key, value in asdict(get_benchmark(benchmark).sampling).items()
    }
    chosen["top_k"] = chosen["top_k"] or None  # 0: off, and never sent to a server
    return Sampling(n=1, seed=args.eval_seed, repetition_penalty=args.eval_repetition_penalty, **chosen)


def generation_record(item: dict[str, Any], completion: Completion, prefill: str) -> dict[str, Any]:
    """What the log keeps of one answer: the raw response (with the pre-fill the model continued), the thinking, the
    answer and a status of :data:`GENERATION_STATUSES`."""
    record = {
        "id": item["id"],
        "benchmark": item["benchmark"],
        "task": item["task"],
        "finish_reason": completion.finish_reason,
        "n_tokens": completion.n_tokens,
        "error": completion.error,
        "error_kind": completion.error_kind,
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
    generator: Generator | None,
    sampling: Sampling,
    log: JsonlLog,
    *,
    prefill: str = "",
    system_prompt: str | None = None,
    chunk_size: int = 32,
    progress: bool = True,
    failures: PieceFailures | None = None,
) -> dict[str, dict[str, Any]]:
    """Each item's generation record, generating only those ``log`` does not hold yet (or holds as failed), in
    chunks of ``chunk_size`` written as they finish, except transport failures (this run reports them as failed;
    the next one redoes them). Longest prompts first, so batches pad little. Each chunk's outcome goes to
    ``failures``, which raises :class:`~reer_hf.generation.health.GeneratorOutage` past its thresholds."""
    done = {r["id"]: r for r in log.read() if r.get("status") != "error" or r.get("error_kind") == "context"}
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
            generation_record(it, c[0], prefill if seeded else "") for it, c in zip(chunk, completions, strict=True)
        ]
        log.append([r for r in records if r["error_kind"] not in TRANSPORT_KINDS])
        if failures is not None:
            lost = [r["error"] for r in records if r["error_kind"] in TRANSPORT_KINDS]
            error = GeneratorUnavailable(failures.where, len(lost), len(records), lost[-1]) if lost else None
            failures.add(f"call {lo // chunk_size}", error)
        done.update((r["id"], r) for r in records if r["status"] != "error")
        for r in records:
            if r["status"] == "error":
                done.setdefault(r["id"], r)  # reported as failed in this run; redone by the next one
        bar.update(len(chunk))
    bar.close()
    return {it["id"]: done[it["id"]] for it in items}
