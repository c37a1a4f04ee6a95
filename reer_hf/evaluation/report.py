"""Reports: the paper's table (:mod:`reer_hf.core.paper`) with its reference rows beside ours, each benchmark's
details, and the comparison of runs (e.g. the full model against an ablation), as Markdown and JSON, with plots.

What a benchmark puts in the table and its section comes from the benchmark itself (the registry); this module only
lays the pieces out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reer_hf.core.paper import ABLATION_COLUMNS, COLUMN_NAMES, PAPER_ABLATIONS, PAPER_JUDGE, PAPER_TABLE
from reer_hf.evaluation.benchmarks import BENCHMARKS, get_benchmark
from reer_hf.evaluation.benchmarks.base import cell
from reer_hf.evaluation.plots import plot_evaluation

__all__ = [
    "COLUMNS",
    "build_report",
    "compare_markdown",
    "extra_columns",
    "load_report",
    "partial_columns",
    "render_markdown",
    "table_columns",
    "table_row",
    "write_report",
]

#: The paper's table columns: LongBench-Write overall S, HelloBench A (open-ended QA) and B (heuristic text
#: generation), raw 0-100; WritingBench domains A-F on the x10 scale.
COLUMNS = tuple(COLUMN_NAMES)


def extra_columns() -> tuple[str, ...]:
    """The columns registered benchmarks fill beyond the paper's (LongBench-Write's S_l alone, which needs no judge),
    shown after the paper's."""
    return tuple(c for bench in BENCHMARKS.values() for c in bench.columns if c not in COLUMN_NAMES)


def table_columns() -> tuple[str, ...]:
    return COLUMNS + extra_columns()


def table_row(results: dict[str, Any]) -> dict[str, float | None]:
    """This run's cells of the paper's table (None where the benchmark, task or judge was not run)."""
    row: dict[str, float | None] = dict.fromkeys(table_columns())
    for name, scores in results["benchmarks"].items():
        row.update(get_benchmark(name).cells(scores))
    return row


def _failures(results: dict[str, Any]) -> dict[str, Any]:
    """Every failed generation and judgement, counted per benchmark: the report never hides one."""
    out = {}
    for name, scores in results["benchmarks"].items():
        judge_failed = get_benchmark(name).judge_failures(scores.get("judged") or {})
        out[name] = {"generation": len(scores["generation"]["failed_ids"]), "judge": judge_failed}
    if results.get("reasoning_profile"):
        out["reasoning_profile"] = {"judge": results["reasoning_profile"]["n_failed"]}
    return out


def partial_columns(results: dict[str, Any]) -> list[str]:
    """The table cells computed on fewer items than the benchmark has: some generation or judgement failed (and is
    left out, not scored). A long LongBench-Write answer that overflows the judge's context is the usual cause."""
    failures = _failures(results)
    row = table_row(results)
    out = []
    for name, bench in BENCHMARKS.items():
        failed = failures.get(name)
        if not failed or not (failed["generation"] or failed["judge"]):
            continue
        for column in bench.columns:
            judge_free = column in bench.judge_free_columns
            if row.get(column) is not None and not (judge_free and not failed["generation"]):
                out.append(column)
    return out


def _pooled_reflections(results: dict[str, Any]) -> dict[str, Any]:
    """The reflection-phrase profile of the thinking pooled over benchmarks, per language (rates per 1,000 units)."""
    out = {}
    for lang in ("en", "zh"):
        units, counts = 0, {}
        for bench in results["benchmarks"].values():
            profile = (bench.get("reflection_profile") or {}).get(lang)
            if profile:
                units += profile["units"]
                for family, count in profile["family_counts"].items():
                    counts[family] = counts.get(family, 0) + count
        if units:
            out[lang] = {
                "units": units,
                "per_1k": 1000.0 * sum(counts.values()) / units,
                "families": {f: 1000.0 * c / units for f, c in counts.items()},
            }
    return out


def build_report(results: dict[str, Any]) -> dict[str, Any]:
    """The report of one run: table row, paper references, details, failures."""
    benchmarks = results["benchmarks"]
    details: dict[str, Any] = {}
    for name, bench in BENCHMARKS.items():  # registry order, whatever order the run named them in
        if name in benchmarks and (shown := bench.details(benchmarks[name])) is not None:
            details[name] = shown
    return {
        "run_name": results["run_name"],
        "model": results["model"],
        "judge": results["judge"],
        "table": table_row(results),
        "partial": partial_columns(results),
        "details": details,
        "generation": {name: b["generation"]["statuses"] for name, b in benchmarks.items()},
        "distinct_n": {name: b.get("distinct_n") for name, b in benchmarks.items()},
        "reflection_profile": _pooled_reflections(results),
        "reasoning_profile": results.get("reasoning_profile"),
        "failures": _failures(results),
        "table_notes": [
            note for name, b in benchmarks.items() if (note := get_benchmark(name).table_note(b)) is not None
        ],
        "judge_protocol": results.get("judge_protocol"),
        "transport": _transport(results),
        "paper": {"judge": PAPER_JUDGE, "table": PAPER_TABLE, "ablations": PAPER_ABLATIONS},
    }


def _transport(results: dict[str, Any]) -> dict[str, int]:
    """This run's retries and transport failures (never stored: the next run redoes them)."""
    judge = results.get("judge_stats") or {}
    generation = results.get("generation_stats") or {}
    return {
        "generation_retries": int(generation.get("retries", 0)),
        "generation_transport_failed": sum(
            b["generation"].get("transport_failed", 0) for b in results["benchmarks"].values()
        ),
        "judge_calls": int(judge.get("calls", 0)),
        "judge_retries": int(judge.get("retries", 0)),
        "judge_parse_retries": int(judge.get("parse_retries", 0)),
        "judge_transport_failed": int(judge.get("transport_failed", 0)),
    }


def _protocol_markdown(report: dict[str, Any]) -> list[str]:
    """Each benchmark's judge prompt and sampling, so numbers are set beside tables judged the same way."""
    protocol = report.get("judge_protocol")
    if not protocol:
        return []
    lines = ["", "## Judge protocol", "", "| benchmark | prompt | temperature | top-p | max tokens | seed |"]
    lines.append("|---|---|---|---|---|---|")
    for name, p in protocol.items():
        prompt = p["prompt"]
        where = ", ".join(prompt["official"]) if "official" in prompt else f"builtin ({prompt['builtin']})"
        if prompt.get("response_tokenizer"):
            where += f"; response tokenizer: {prompt['response_tokenizer']}"
        s = p["sampling"]
        seed = "—" if s["seed"] is None else s["seed"]
        lines.append(f"| {name} | {where} | {s['temperature']} | {s['top_p']} | {s['max_tokens']} | {seed} |")
    return lines


def _table(
    rows: Sequence[tuple[str, dict[str, float | None]]],
    columns: Sequence[str] = COLUMNS,
    partial: dict[str, Sequence[str]] | None = None,
) -> list[str]:
    """A Markdown table; ``partial`` maps a row name to its cells to star (computed on part of the items)."""
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows:
        starred = set((partial or {}).get(name, ()))
        lines.append(f"| {name} | " + " | ".join(cell(row.get(c), c in starred) for c in columns) + " |")
    return lines


_PARTIAL_NOTE = (
    "\\* computed on part of the items: some generations or judge calls failed and are left out (never scored); "
    "counts under *Generations and failures*."
)


def _profiles_markdown(report: dict[str, Any]) -> list[str]:
    """The judged reasoning profile and the reflection phrases of the thinking."""
    lines: list[str] = []
    rp = report.get("reasoning_profile")
    if rp and rp["dimensions"]:
        lines += ["", "## Reasoning profile (1-10, judged)", "", "| dimension | mean | std | min | max |"]
        lines.append("|---|---|---|---|---|")
        for dim, s in rp["dimensions"].items():
            lines.append(f"| {dim} | {cell(s['mean'])} | {cell(s['std'])} | {cell(s['min'])} | {cell(s['max'])} |")
    refl = report.get("reflection_profile") or {}
    if refl:
        lines += ["", "## Reflection phrases in the thinking", ""]
        for lang, p in refl.items():
            unit = "words" if lang == "en" else "characters"
            lines.append(f"- {lang}: {p['per_1k']:.2f} per 1,000 {unit} ({p['units']} {unit}); per family:")
            for n, (family, rate) in enumerate(p["families"].items(), 1):
                lines.append(f"  {lang}-{n}. `{family}`: {rate:.2f}")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the paper's table (ours first, then the paper's rows), then details and failures."""
    judge = report["judge"] or "none (deterministic metrics only)"
    ours = f"**{report['run_name']}** (ours)"
    lines = [
        f"# Evaluation of {report['run_name']}",
        "",
        f"Model: `{report['model']}`. Judge: `{judge}`. Paper rows: judged by {report['paper']['judge']} "
        "(scores from different judges are not directly comparable). "
        + "; ".join(
            [
                *(report.get("table_notes") or ["LB = LongBench-Write S = (S_l + S_q) / 2"]),
                "HB-A / HB-B = HelloBench open-ended QA / heuristic text generation (0-100)",
                "WB = WritingBench domains (x10).",
            ]
        ),
        "",
        *_table(
            [(ours, report["table"])] + list(report["paper"]["table"].items()),
            table_columns(),
            {ours: report.get("partial", ())},
        ),
    ]
    if report.get("partial"):
        lines += ["", _PARTIAL_NOTE]
    for name, details in report["details"].items():
        lines += get_benchmark(name).markdown(details)
    lines += _protocol_markdown(report)
    lines += _profiles_markdown(report)
    lines += ["", "## Generations and failures", ""]
    lines.append("| benchmark | statuses | distinct-1 / distinct-2 | failed generations | failed judgements |")
    lines.append("|---|---|---|---|---|")
    for name, f in report["failures"].items():
        statuses = ", ".join(f"{k} {v}" for k, v in report["generation"].get(name, {}).items()) or "—"
        dn = report["distinct_n"].get(name) or {}
        distinct = f"{cell(dn.get('distinct_1'))} / {cell(dn.get('distinct_2'))}" if dn else "—"
        lines.append(f"| {name} | {statuses} | {distinct} | {f.get('generation', 0)} | {f['judge']} |")
    t = report.get("transport")
    if t:
        lines += [
            "",
            f"Transport: {t['generation_transport_failed']} generation and {t['judge_transport_failed']} judge "
            f"requests failed in transport (not stored: the next run redoes them; counted above as failed); "
            f"{t['generation_retries']} generation and {t['judge_retries']} judge network retries, "
            f"{t['judge_parse_retries']} judge parse retries over {t['judge_calls']} judge calls.",
        ]
    if any("unfinished_thinking" in g for g in report["generation"].values()):
        lines += [
            "",
            "`unfinished_thinking`: the response opened `<think>` and never closed it, so it has no answer and is "
            "scored as an empty one (WritingBench's original code would judge the whole text).",
        ]
    return "\n".join(lines) + "\n"


def compare_markdown(reports: Sequence[dict[str, Any]]) -> str:
    """Runs side by side on the paper's columns, each with its difference to the first run, and the paper's ablation
    rows for reference."""
    if len(reports) < 2:
        raise ValueError("a comparison needs two or more reports")
    base = reports[0]
    columns = [c for c in table_columns() if any(r["table"].get(c) is not None for r in reports)]
    columns = columns or list(COLUMNS)
    lines = [
        f"# Comparison against {base['run_name']}",
        "",
        "Judges: " + ", ".join(f"{r['run_name']}: `{r['judge']}`" for r in reports),
        "",
        *_table(
            [(r["run_name"], r["table"]) for r in reports],
            columns,
            {r["run_name"]: r.get("partial", ()) for r in reports},
        ),
        "",
        f"Differences to {base['run_name']}:",
        "",
    ]
    deltas = []
    for r in reports[1:]:
        row = {
            c: None if r["table"].get(c) is None or base["table"].get(c) is None else r["table"][c] - base["table"][c]
            for c in columns
        }
        deltas.append((f"{r['run_name']} - {base['run_name']}", row))
    lines += _table(deltas, columns)
    if any(r.get("partial") for r in reports):
        lines += ["", _PARTIAL_NOTE]
    lines += ["", f"The paper's ablations (judged by {PAPER_JUDGE}):", ""]
    ablations = [(run, a["scores"]) for run, a in PAPER_ABLATIONS.items() if a["scores"]]  # some report no numbers
    lines += _table(ablations, ABLATION_COLUMNS)
    return "\n".join(lines) + "\n"


def load_report(path: str | Path) -> dict[str, Any]:
    """A run's ``report.json``, given the file or its output folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"No report at {path}: run recipes/eval.py with the report stage first")
    return json.loads(path.read_text(encoding="utf-8"))


def write_report(results: dict[str, Any], out: str | Path, compare_to: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and the plots to ``out``; with ``compare_to`` (other runs' folders or
    reports), also ``comparison.md`` and plots with every run. Returns the report."""
    out = Path(out)
    report = build_report(results)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    runs = [load_report(p) for p in compare_to or []] + [report]  # the baselines first: differences are ours - theirs
    if len(runs) > 1:
        (out / "comparison.md").write_text(compare_markdown(runs), encoding="utf-8")
    report["plots"] = [str(p) for p in plot_evaluation(runs, out)]
    return report
