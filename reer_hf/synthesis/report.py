"""``report.html``: one static page per synthesis run that shows what the search did, row by row.

The page is self-contained (inline CSS, inline SVG charts, a few lines of script for sorting and filtering; no network)
so it opens from disk, travels with the Hub upload, and can be sent as one file. Every text in it (queries, answers,
what a model wrote) goes through Jinja's autoescaping, so markup in the data shows as text and never runs.

A large run gets the overview of every row and a sample of rows chosen by a rule the page states (:func:`choose_rows`).

Rebuild the report of an existing output (a finished, resumed or multi-process run; an unfinished one from its
pieces)::

    python -m reer_hf.synthesis.report OUTPUT_DIR [--rows 200] [--seed 0] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from reer_hf.synthesis.report_charts import number, sparkline
from reer_hf.synthesis.report_overview import column, floats, overview
from reer_hf.synthesis.report_rows import OUTCOMES, row_view
from reer_hf.synthesis.trajectory import STATUS_OK

REPORT_FILE = "report.html"
#: The run's options, which the runner saves in the output folder: the report shows them, ``scripts/verify_fp32.py``
#: re-scores with them. Defined here, the leaf of the output modules, so the runner and the report share one name.
RUN_CONFIG_FILE = "run_config.json"
DEFAULT_ROWS = 200
TEMPLATE = "report.html.jinja"


def choose_rows(table: pa.Table, max_rows: int | None, seed: int = 0) -> tuple[list[tuple[int, str]], dict]:
    """The rows the report shows, each with why, and the rule that chose them, stated for the page.

    Every row when there are at most ``max_rows``. Otherwise, with ``quota = max_rows // 4``: the ``quota`` largest
    gains (initial minus final score), the ``quota`` largest losses (a final score above the first one measured, which
    the scorer's numeric noise allows), for each drop reason up to ``quota // reasons`` more of its rows (at least
    one) drawn at random, then rows drawn at random from the rest up to ``max_rows``; draws are seeded (``seed``), so
    a rebuild shows the same rows.
    """
    n = table.num_rows
    if max_rows is None or n <= max_rows:
        return [(i, "") for i in range(n)], {"all": True, "total": n, "shown": n, "parts": []}
    rng = random.Random(seed)
    gain = floats(table, "initial_score") - floats(table, "final_score")
    chosen: dict[int, str] = {}
    parts: list[dict] = []
    quota = max(1, max_rows // 4)

    def take(label: str, text: str, candidates: list[int]) -> None:
        picked = [i for i in candidates if i not in chosen]
        for i in picked:
            chosen[i] = label
        parts.append({"label": label, "count": len(picked), "text": text.format(n=len(picked))})

    finite = ~np.isnan(gain)
    up = np.flatnonzero(finite & (gain > 0))
    down = np.flatnonzero(finite & (gain < 0))
    best = up[np.argsort(-gain[up], kind="stable")][:quota].tolist()
    take("largest gain", f"the {{n}} rows whose score the search lowered most (of {len(up):,} improved)", best)
    worst = down[np.argsort(gain[down], kind="stable")][:quota].tolist()
    text = f"the {{n}} rows whose final score is furthest above the first one measured (of {len(down):,} such rows)"
    take("largest loss", text, worst)
    by_reason: dict[str, list[int]] = {}
    for i, reason in enumerate(column(table, "drop_reason")):
        if reason:
            by_reason.setdefault(reason, []).append(i)
    per_reason = max(1, quota // max(len(by_reason), 1))
    for reason in sorted(by_reason):
        rows = [i for i in by_reason[reason] if i not in chosen]
        drawn = sorted(rng.sample(rows, min(per_reason, len(rows))))
        text = f"{{n}} more of the {len(by_reason[reason]):,} rows with this reason, drawn at random"
        take(f"drop reason {reason}", text, drawn)
    rest = [i for i in range(n) if i not in chosen]
    drawn = sorted(rng.sample(rest, min(max(max_rows - len(chosen), 0), len(rest))))
    take("random", f"{{n}} rows drawn at random from the other {len(rest):,}", drawn)
    rule = {"all": False, "total": n, "shown": len(chosen), "parts": parts, "quota": quota, "per_reason": per_reason}
    rule.update(limit=max_rows, seed=seed)
    return sorted(chosen.items()), rule


def read_output(out: Path) -> tuple[pa.Table, str]:
    """Every row of a run's output and where they were read: ``dataset/`` (memory-mapped), ``reer.parquet``, or for
    a run not merged yet (still running, or stopped) its written ``pieces/``, in input order."""
    if (out / "dataset" / "dataset_info.json").is_file():
        from datasets import load_from_disk

        return load_from_disk(str(out / "dataset")).with_format("arrow")[:], "dataset/"
    if (out / "reer.parquet").is_file():
        import pyarrow.parquet as pq

        return pq.read_table(out / "reer.parquet"), "reer.parquet"
    pieces = sorted((out / "pieces").glob("piece-*.parquet"))
    if pieces:
        import pyarrow.parquet as pq

        tables = [pq.read_table(p) for p in pieces]
        return pa.concat_tables(tables, promote_options="default"), f"pieces/ ({len(pieces)} written)"
    raise FileNotFoundError(f"{out} holds no synthesis rows (dataset/, reer.parquet or pieces/piece-*.parquet)")


def read_summary(out: Path) -> dict:
    """``summary.json``; for a run not merged yet, the timings summed from its pieces' stats and its noise floor."""
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    stats: Counter = Counter()
    for path in sorted((out / "pieces").glob("piece-*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict):  # a failed piece's record (``piece-N.failed.json``) holds its attempts
            continue
        stats.update({k: v for k, v in record.items() if isinstance(v, (int, float))})
    if not stats:
        return {}
    summary = {key: round(stats.get(key, 0.0), 2) for key in ("generator_seconds", "scorer_seconds")}
    summary["search_seconds"] = summary["wall_seconds"] = round(stats.get("wall_seconds", 0.0), 2)
    floor = out / "pieces" / "noise_floor.json"
    summary["noise_floor"] = json.loads(floor.read_text()) if floor.is_file() else None
    return summary


def read_config(out: Path) -> dict:
    """The run's options: ``run_config.json`` where the run wrote it, else the YAML block of its dataset card
    (``README.md``), which holds them all; empty when there is neither (the report then assumes the options'
    defaults, and says where that matters)."""
    if (out / RUN_CONFIG_FILE).is_file():
        return json.loads((out / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    card = out / "README.md"
    if not card.is_file():
        return {}
    found = re.search(r"## Search configuration\s*```yaml\n(.*?)\n```", card.read_text(encoding="utf-8"), re.S)
    try:
        config = yaml.safe_load(found.group(1)) if found else None
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _environment():
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = number
    env.filters["score"] = lambda v: "–" if v is None else f"{v:.6f}"  # a row's scores: gains are often < 1e-3
    env.filters["count"] = lambda n: f"{n:,}"
    env.filters["pct"] = lambda part, whole: f"{100 * part / whole:.0f}%" if whole else "–"
    return env


def render(
    table: pa.Table,
    summary: dict,
    config: dict,
    max_rows: int | None = DEFAULT_ROWS,
    seed: int = 0,
    source: str = "",
    title: str | None = None,
) -> tuple[str, dict]:
    """The report's HTML for the run whose rows are ``table``, and the rule that chose its rows."""
    chosen, rule = choose_rows(table, max_rows, seed)
    picked = table.take(pa.array([i for i, _ in chosen], type=pa.int64())).to_pylist() if chosen else []
    rows = []
    for (index, why), row in zip(chosen, picked, strict=True):
        view = row_view(row, index, why, config)
        view["spark"] = sparkline(view["path"])
        rows.append(view)
    glance = overview(table, summary, config)
    text = resources.files("reer_hf").joinpath("templates").joinpath(TEMPLATE).read_text(encoding="utf-8")
    template = _environment().from_string(text)
    html = template.render(
        title=title or config.get("dataset_pretty_name") or "REER synthesis run",
        source=source,
        config=config,
        summary=summary,
        glance=glance,
        rule=rule,
        rows=rows,
        removed=[r for r in rows if r["status"] != STATUS_OK],
        statuses=[s for s, _ in glance["status"]],
        reasons=sorted({r for r in column(table, "drop_reason") if r}),
        outcomes=OUTCOMES,
    )
    return html, rule


def write_report(
    ds,
    summary: dict,
    config: dict,
    path: Path,
    max_rows: int | None = DEFAULT_ROWS,
    seed: int = 0,
    source: str = "",
) -> dict:
    """Write ``report.html`` for a run's rows (a ``datasets.Dataset`` or an Arrow table); returns what it wrote:
    path, bytes, rows in the run and rows shown, and the seconds it took."""
    start = time.perf_counter()
    table = ds if isinstance(ds, pa.Table) else ds.with_format("arrow")[:]
    html, rule = render(table, summary, config, max_rows, seed, source)
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "rows": rule["total"],
        "shown": rule["shown"],
        "seconds": round(time.perf_counter() - start, 3),
    }


def build_report(out: Path, max_rows: int | None = DEFAULT_ROWS, seed: int = 0, path: Path | None = None) -> dict:
    """Rebuild the report of the synthesis output in ``out`` from what it holds (rows, summary, card)."""
    start = time.perf_counter()
    out = Path(out)
    table, source = read_output(out)
    info = write_report(table, read_summary(out), read_config(out), path or out / REPORT_FILE, max_rows, seed, source)
    info["seconds"] = round(time.perf_counter() - start, 3)  # reading the output included
    return info


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m reer_hf.synthesis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path, help="A synthesis run's output_dir.")
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="Rows shown one by one (a larger run shows a sample chosen by the stated rule); 0: every row.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the sample's random draws.")
    parser.add_argument("--output", type=Path, default=None, help="Where to write (default: OUTPUT_DIR/report.html).")
    args = parser.parse_args(argv)
    info = build_report(args.output_dir, args.rows or None, args.seed, args.output)
    print(json.dumps(info))
    return info


if __name__ == "__main__":
    main()
