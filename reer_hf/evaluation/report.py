"""Reports: the paper's table (REER.md section 8) with its reference rows beside ours, details per benchmark, and the
comparison of runs (e.g. the full model against an ablation), as Markdown and JSON, with plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "COLUMNS",
    "EXTRA_COLUMNS",
    "PAPER_ABLATIONS",
    "PAPER_TABLE",
    "build_report",
    "partial_columns",
    "compare_markdown",
    "load_report",
    "render_markdown",
    "table_row",
    "write_report",
]

#: The paper's table columns: LongBench-Write overall S, HelloBench A (open-ended QA) and B (heuristic text
#: generation), raw 0-100; WritingBench domains A-F on the x10 scale.
COLUMNS = ("LB", "HB-A", "HB-B", "WB-A", "WB-B", "WB-C", "WB-D", "WB-E", "WB-F")
#: Shown after the paper's columns: the LongBench-Write length score alone, which needs no judge.
EXTRA_COLUMNS = ("LB S_l",)
_HELLOBENCH_COLUMNS = {"HB-A": "open_ended_qa", "HB-B": "heuristic_text_generation"}

#: REER.md section 8 (the paper's judges: GPT-4o / Claude 3.7 class LLMs); the paper reports WritingBench A, D, F only.
PAPER_TABLE: dict[str, dict[str, float]] = {
    "DeepWriter-8B": {"LB": 91.28, "HB-A": 82.6, "HB-B": 87.48, "WB-A": 72.2, "WB-D": 70.6, "WB-F": 72.3},
    "GPT-4o": {"LB": 83.1, "HB-A": 83.7, "HB-B": 87.6, "WB-A": 74.4, "WB-D": 77.9, "WB-F": 78.0},
    "Claude 3.5": {"LB": 89.3, "HB-A": 82.9, "HB-B": 88.3, "WB-A": 59.1, "WB-D": 59.3, "WB-F": 67.7},
    "Qwen3-8B": {"LB": 85.2, "HB-A": 81.4, "HB-B": 85.3, "WB-A": 68.7, "WB-D": 67.2, "WB-F": 71.3},
    "LongWriter-8B": {"LB": 76.5, "HB-A": 80.1, "HB-B": 82.6, "WB-A": 57.9, "WB-D": 52.0, "WB-F": 52.0},
}
#: REER.md section 9: the ablations (HB-B / WB-A / WB-D).
PAPER_ABLATIONS: dict[str, dict[str, float]] = {
    "full": {"HB-B": 87.5, "WB-A": 72.2, "WB-D": 70.6},
    "no synthetic data": {"HB-B": 73.7, "WB-A": 63.4, "WB-D": 57.7},
    "no iterative search": {"HB-B": 84.4, "WB-A": 66.7, "WB-D": 65.6},
    "no reflection tokens": {"HB-B": 82.8, "WB-A": 71.6, "WB-D": 62.0},
    "fewer long trajectories": {"HB-B": 84.0, "WB-A": 69.6, "WB-D": 67.5},
    "fewer short trajectories": {"HB-B": 82.1, "WB-A": 70.8, "WB-D": 66.9},
}
PAPER_JUDGE = "GPT-4o / Claude 3.7 class LLMs"


def table_row(results: dict[str, Any]) -> dict[str, float | None]:
    """This run's cells of the paper's table (None where the benchmark, task or judge was not run)."""
    benchmarks = results["benchmarks"]
    row: dict[str, float | None] = dict.fromkeys(COLUMNS + EXTRA_COLUMNS)
    row["LB S_l"] = benchmarks.get("longbench_write", {}).get("length_score")
    judged_lb = benchmarks.get("longbench_write", {}).get("judged")
    if judged_lb:
        row["LB"] = judged_lb["score"]
    hb = benchmarks.get("hellobench", {}).get("judged") or {}
    for column, task in _HELLOBENCH_COLUMNS.items():
        row[column] = (hb.get(task) or {}).get("score")
    wb = (benchmarks.get("writingbench", {}).get("judged") or {}).get("domains", {})
    for letter in "ABCDEF":
        row[f"WB-{letter}"] = (wb.get(letter) or {}).get("score_x10")
    return row


_BENCHMARK_COLUMNS = {
    "longbench_write": ("LB", "LB S_l"),
    "hellobench": ("HB-A", "HB-B"),
    "writingbench": tuple(f"WB-{c}" for c in "ABCDEF"),
}


def partial_columns(results: dict[str, Any]) -> list[str]:
    """The table cells computed on fewer items than the benchmark has: some generation or judgement failed (and is
    left out, not scored). A long LongBench-Write answer that overflows the judge's context is the usual cause."""
    failures = _failures(results)
    row = table_row(results)
    return [
        column
        for name, columns in _BENCHMARK_COLUMNS.items()
        if name in failures and (failures[name]["generation"] or failures[name]["judge"])
        for column in columns
        if row.get(column) is not None and not (column == "LB S_l" and not failures[name]["generation"])
    ]


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


def _failures(results: dict[str, Any]) -> dict[str, Any]:
    """Every failed generation and judgement, counted per benchmark: the report never hides one."""
    out = {}
    for name, bench in results["benchmarks"].items():
        judged = bench.get("judged") or {}
        if name == "hellobench":
            judge_failed = sum(t["n_failed"] for t in judged.values())
        elif name == "writingbench":
            judge_failed = judged.get("overall", {}).get("n_failed", 0)
        else:
            judge_failed = judged.get("n_failed", 0)
        out[name] = {"generation": len(bench["generation"]["failed_ids"]), "judge": judge_failed}
    if results.get("reasoning_profile"):
        out["reasoning_profile"] = {"judge": results["reasoning_profile"]["n_failed"]}
    return out


def build_report(results: dict[str, Any]) -> dict[str, Any]:
    """The report of one run: table row, paper references, details, failures."""
    benchmarks = results["benchmarks"]
    details: dict[str, Any] = {}
    if "longbench_write" in benchmarks:
        lb = benchmarks["longbench_write"]
        judged = lb.get("judged") or {}
        details["longbench_write"] = {
            "S_l": lb.get("length_score"),
            "S_q": judged.get("quality_score"),
            "S": judged.get("score"),
            "quality_dimensions": judged.get("dimensions"),
        }
    if "hellobench" in benchmarks:
        judged = benchmarks["hellobench"].get("judged") or {}
        details["hellobench"] = {
            task: {"score": t["score"], "rescaled": t["rescaled"], "n_ok": t["n_ok"]} for task, t in judged.items()
        }
    if "writingbench" in benchmarks:
        judged = benchmarks["writingbench"].get("judged") or {}
        details["writingbench"] = {"overall": judged.get("overall"), "domains": judged.get("domains")}
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
        "paper": {"judge": PAPER_JUDGE, "table": PAPER_TABLE, "ablations": PAPER_ABLATIONS},
    }


def _cell(value: float | None, partial: bool = False) -> str:
    return "—" if value is None else f"{value:.2f}" + ("*" if partial else "")


def _table(
    rows: Sequence[tuple[str, dict[str, float | None]]],
    columns: Sequence[str] = COLUMNS,
    partial: dict[str, Sequence[str]] | None = None,
) -> list[str]:
    """A Markdown table; ``partial`` maps a row name to its cells to star (computed on part of the items)."""
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows:
        starred = set((partial or {}).get(name, ()))
        lines.append(f"| {name} | " + " | ".join(_cell(row.get(c), c in starred) for c in columns) + " |")
    return lines


_PARTIAL_NOTE = (
    "\\* computed on part of the items: some generations or judge calls failed and are left out (never scored); "
    "counts under *Generations and failures*."
)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the paper's table (ours first, then the paper's rows), then details and failures."""
    judge = report["judge"] or "none (deterministic metrics only)"
    ours = f"**{report['run_name']}** (ours)"
    lines = [
        f"# Evaluation of {report['run_name']}",
        "",
        f"Model: `{report['model']}`. Judge: `{judge}`. Paper rows: judged by {report['paper']['judge']} "
        "(scores from different judges are not directly comparable). LB = LongBench-Write S = (S_l + S_q) / 2; "
        "HB-A / HB-B = HelloBench open-ended QA / heuristic text generation (0-100); WB = WritingBench domains (x10).",
        "",
        *_table(
            [(ours, report["table"])] + list(report["paper"]["table"].items()),
            COLUMNS + EXTRA_COLUMNS,
            {ours: report.get("partial", ())},
        ),
    ]
    if report.get("partial"):
        lines += ["", _PARTIAL_NOTE]
    details = report["details"]
    if "longbench_write" in details:
        lb = details["longbench_write"]
        lines += ["", "## LongBench-Write", "", f"S_l {_cell(lb['S_l'])}, S_q {_cell(lb['S_q'])}, S {_cell(lb['S'])}"]
        if lb["quality_dimensions"]:
            lines.append("; ".join(f"{d} {_cell(v)}" for d, v in lb["quality_dimensions"].items()))
    if details.get("hellobench"):
        lines += [
            "",
            "## HelloBench",
            "",
            "| task | score | rescaled (score - 75) * 4 | judged |",
            "|---|---|---|---|",
        ]
        for task, t in details["hellobench"].items():
            lines.append(f"| {task} | {_cell(t['score'])} | {_cell(t['rescaled'])} | {t['n_ok']} |")
    wb = details.get("writingbench") or {}
    if wb.get("overall"):
        lines += ["", "## WritingBench", "", "| domain | score (1-10) | x10 | judged queries |", "|---|---|---|---|"]
        for letter, d in {**wb["domains"], "overall": wb["overall"]}.items():
            lines.append(f"| {letter} | {_cell(d['score'])} | {_cell(d['score_x10'])} | {d['n_ok']} of {d['n']} |")
    rp = report.get("reasoning_profile")
    if rp and rp["dimensions"]:
        lines += ["", "## Reasoning profile (1-10, judged)", "", "| dimension | mean | std | min | max |"]
        lines.append("|---|---|---|---|---|")
        for dim, s in rp["dimensions"].items():
            lines.append(f"| {dim} | {_cell(s['mean'])} | {_cell(s['std'])} | {_cell(s['min'])} | {_cell(s['max'])} |")
    refl = report.get("reflection_profile") or {}
    if refl:
        lines += ["", "## Reflection phrases in the thinking", ""]
        for lang, p in refl.items():
            unit = "words" if lang == "en" else "characters"
            lines.append(f"- {lang}: {p['per_1k']:.2f} per 1,000 {unit} ({p['units']} {unit}); per family:")
            for n, (family, rate) in enumerate(p["families"].items(), 1):
                lines.append(f"  {lang}-{n}. `{family}`: {rate:.2f}")
    lines += ["", "## Generations and failures", ""]
    lines.append("| benchmark | statuses | distinct-1 / distinct-2 | failed generations | failed judgements |")
    lines.append("|---|---|---|---|---|")
    for name, f in report["failures"].items():
        statuses = ", ".join(f"{k} {v}" for k, v in report["generation"].get(name, {}).items()) or "—"
        dn = report["distinct_n"].get(name) or {}
        distinct = f"{_cell(dn.get('distinct_1'))} / {_cell(dn.get('distinct_2'))}" if dn else "—"
        lines.append(f"| {name} | {statuses} | {distinct} | {f.get('generation', 0)} | {f['judge']} |")
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
    columns = [c for c in COLUMNS + EXTRA_COLUMNS if any(r["table"].get(c) is not None for r in reports)]
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
    lines += _table(list(PAPER_ABLATIONS.items()), ("HB-B", "WB-A", "WB-D"))
    return "\n".join(lines) + "\n"


def load_report(path: str | Path) -> dict[str, Any]:
    """A run's ``report.json``, given the file or its output folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"No report at {path}: run recipes/evaluate.py with the report stage first")
    return json.loads(path.read_text(encoding="utf-8"))


def write_report(results: dict[str, Any], out: str | Path, compare_to: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and the plots to ``out``; with ``compare_to`` (other runs' folders or
    reports), also ``comparison.md`` and plots with every run. Returns the report."""
    from reer_hf.evaluation import plots

    out = Path(out)
    report = build_report(results)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    runs = [load_report(p) for p in compare_to or []] + [
        report
    ]  # the baseline(s) first: differences are ours - theirs
    if len(runs) > 1:
        (out / "comparison.md").write_text(compare_markdown(runs), encoding="utf-8")
    report["plots"] = [str(p) for p in plots.plot_evaluation(runs, out)]
    return report
