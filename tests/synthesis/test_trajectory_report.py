"""report.html: the builder on hand-made traces (word diffs, candidate outcomes, the replayed trajectory, evidence,
escaping, the stated sample of a large run), its place in a run's output and Hub folder, its rebuild from an output,
and the page in a real browser (headless Chromium): what a person sees, the filter kept in the address, and markup in
the data that shows as text and never runs."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from datasets import Dataset, Features, Value
from openai_server import OpenAIServer, ServerReply, completion_body
from synthetic_run import synthetic_rows, trace_step
from test_hub_push import finish_run
from test_search import ANSWER, THINKING, Writer, paragraphs
from testing_utils import PROSE, REPO_ROOT, write_jsonl

import reer_hf.synthesis.runner as synthesis
from reer_hf.core.data import demo_pairs
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.faults import record_failure
from reer_hf.synthesis.filters import thinking_verdict
from reer_hf.synthesis.report import build_report, choose_rows, main, read_config, read_summary, render
from reer_hf.synthesis.report_rows import candidate_outcome, diff_counts, step_view, trajectory_view, word_diff
from reer_hf.synthesis.trajectory import SEPARATOR, search_features

SEGMENTS = [
    "The reader wants a calm story about a small town, told slowly, with warmth and concrete detail in every scene.",
    "So the goal is a quiet mood: the rhythm of ordinary days and the small habits of the people who live there.",
    "Finally the structure: three short scenes from morning to evening, ending with the baker as the lights go out.",
]
FEATURES = Features({"query": Value("string"), "answer": Value("string"), **search_features()})
SCRIPT = "<script>document.body.setAttribute('data-pwned','script');document.title='PWNED'</script>"
IMAGE = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"


def step(segment: int, candidates: list, scores: list, incumbent: float, margin: float = 0.001) -> dict:
    """A trace step as the search writes it (see ``synthetic_run.trace_step``), with this file's margin."""
    return trace_step(segment, candidates, scores, incumbent, margin)


def searched_row(trace: list[dict], segments: list[str] = SEGMENTS, **values) -> dict:
    """A row whose ``z_star`` is ``z0`` with the trace's accepted rewrites, as the search leaves it."""
    final = list(segments)
    for s in trace:
        if s["accepted"]:
            final[s["segment"]] = s["candidates"][s["chosen"]]
    initial = trace[0]["incumbent_score"] if trace else 1.5
    row = {
        "query": "Write a calm story about a day in a small town.",
        "answer": ANSWER,
        "language": "en",
        "z0": SEPARATOR.join(segments),
        "z_star": SEPARATOR.join(final),
        "initial_score": initial,
        "final_score": trace[-1]["score_after"] if trace else initial,
        "initial_nll": initial,
        "final_nll": initial,
        "n_segments": len(segments),
        "trace": trace,
        "status": "ok",
        "drop_reason": None,
        "drop_evidence": None,
        "stop_reason": "max_step",
        "z_star_tokens": 80,
        "generated_tokens": 200,
        "scored_tokens": 900,
        "messages": None,
    }
    row.update(values)
    return row


def table_of(rows: list[dict], features: Features = FEATURES):
    return Dataset.from_list(rows, features=features).with_format("arrow")[:]


def test_word_diff_marks_the_words_added_and_removed():
    old, new = "the calm story ends", "the gentle story ends today"
    runs = word_diff(old, new)
    assert runs == [("same", "the "), ("del", "calm"), ("ins", "gentle"), ("same", " story ends"), ("ins", " today")]
    assert "".join(t for k, t in runs if k != "ins") == old and "".join(t for k, t in runs if k != "del") == new
    assert diff_counts(runs) == {"added": 2, "removed": 1}
    assert word_diff("秋天的风", "秋天的雨") == [
        ("same", "秋天的"),
        ("del", "风"),
        ("ins", "雨"),
    ]  # character by character
    assert word_diff("same text", "same text") == [("same", "same text")]


def test_each_candidate_gets_its_outcome():
    texts = ["best", "also better", "barely better", "worse", None]
    s = step(0, texts, [1.40, 1.45, 1.4995, 1.60, None], incumbent=1.5)
    assert [candidate_outcome(s, k) for k in range(5)] == ["accepted", "cleared", "below_margin", "worse", "rejected"]
    assert [c["outcome"] for c in step_view(s)["candidates"]] == [
        "accepted",
        "cleared",
        "below_margin",
        "worse",
        "rejected",
    ]
    held = step(1, ["close"], [1.4995], incumbent=1.5)  # the best, but within the margin: not accepted
    assert not held["accepted"] and candidate_outcome(held, 0) == "below_margin"


def test_the_trajectory_shows_each_accepted_rewrite_against_the_segment_it_replaced():
    first = SEGMENTS[0].replace("calm", "gentle").replace(" in every scene", "")
    third = SEGMENTS[2] + " The last image stays."
    trace = [
        step(0, [first, "a worse idea"], [1.40, 1.60], 1.5),
        step(1, ["no better"], [1.45], 1.40),
        step(2, [third, None], [1.30, None], 1.40),
    ]
    row = searched_row(trace)
    view = trajectory_view(row["z0"], row["z_star"], trace, 100)
    assert view["replayed"] and view["rewrites"] == 2
    one, two, three = view["segments"]
    assert ("del", "calm") in one["diff"] and ("ins", "gentle") in one["diff"] and one["counts"]["removed"] == 4
    assert "diff" not in two and two["text"] == SEGMENTS[1]
    assert three["diff"][-1] == ("ins", " The last image stays.") and three["gain"] == pytest.approx(0.10)
    # a z_star the trace does not replay to: shown whole, and said so
    broken = trajectory_view(row["z0"], row["z_star"] + " (edited by hand)", trace, 100)
    assert not broken["replayed"] and broken["segments"] == [{"text": row["z_star"] + " (edited by hand)"}]
    # the run's segmentation decides what a segment is: short paragraphs merge under the default of 100 characters
    short = ["First thought, short.", "Second thought, short.", "Third thought, short."]
    rewrite = step(1, ["Second thought, rewritten."], [1.2], 1.5)
    small = searched_row([rewrite], segments=short)
    assert trajectory_view(small["z0"], small["z_star"], [rewrite], 10)["replayed"]
    assert not trajectory_view(small["z0"], small["z_star"], [rewrite], 100)["replayed"]


def test_markup_in_any_text_is_escaped():
    """Queries, answers, trajectories, candidates, evidence and reasons are data: none of it may become markup."""
    rewrite = SEGMENTS[0] + " " + IMAGE
    trace = [step(0, [rewrite, f"{SCRIPT} rejected text"], [1.4, 1.6], 1.5)]
    hostile = searched_row(trace, segments=[SEGMENTS[0], f"{SCRIPT} {SEGMENTS[1]}", SEGMENTS[2]])
    hostile.update(query=f"Write a story. {SCRIPT}", answer=f"{IMAGE}\n\n{ANSWER}")
    removed = searched_row([], status="filtered", drop_reason='x" onmouseover="alert(1)')
    removed["drop_evidence"] = {"check": "leak", "text": SCRIPT, "value": 14.0, "limit": 12.0}
    html, _ = render(table_of([hostile, removed]), {"hub_config_name": "<b>cfg</b>"}, {"generator_model": IMAGE})

    class Elements(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: list[tuple[str, list]] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, attrs))

    parsed = Elements()
    parsed.feed(html)
    assert [t for t, _ in parsed.tags].count("script") == 1  # the report's own
    assert "img" not in [t for t, _ in parsed.tags] and "b" not in [t for t, _ in parsed.tags]
    assert not [(t, a) for t, attrs in parsed.tags for a, _ in attrs if a.startswith("on")]
    assert html.count("&lt;script&gt;document.body.setAttribute(") >= 4  # query, z0, candidate, evidence
    assert 'data-reason="x&#34; onmouseover=&#34;alert(1)"' in html


def test_removed_rows_show_their_reason_and_evidence():
    config = {"filter_max_thinking_tokens": 8192, "filter_min_thinking_tokens": 50}
    hesitant = PROSE + " But wait, maybe the ending should change."
    reason, evidence = thinking_verdict(hesitant, True, "en", FilterConfig(), 200)
    loop = "I think about the story and the ending. " * 30
    rows = [
        searched_row([], z_star=hesitant, status="filtered", drop_reason=reason, drop_evidence=evidence),
        searched_row([], z_star=loop, status="filtered", drop_reason="repetition"),
        searched_row([], status="dropped", drop_reason="leak"),
        searched_row([], status="dropped", drop_reason="single_segment"),
        searched_row([], status="filtered", drop_reason="too_long", z_star_tokens=9000),
    ]
    rows[1]["drop_evidence"] = thinking_verdict(loop, True, "en", FilterConfig(), 200)[1]
    rows[2]["drop_evidence"] = {"check": "leak", "text": "the smell of bread drifted", "value": 14.0, "limit": 12.0}
    html, _ = render(table_of(rows), {}, config)
    section = html[html.index('<section id="removed">') : html.index('<section id="rows">')]
    assert section.count("<tr data-reason=") == 5
    assert (
        'still hesitates at its end. Still hesitating at the end: <mark class="ev">But wait</mark> at 93% of the '
        'thinking (the filter reads its last 10%). <q class="ev">…under a pale sun. <mark>But wait</mark>, maybe the '
        "ending should change.</q>"
    ) in section
    assert (
        'The most repeated n-gram is <mark class="ev">i think about</mark>: the three most frequent n-grams cover 38% '
        "of all n-grams (limit 30%)."
    ) in section
    assert '(12 count as a leak): <mark class="ev">the smell of bread drifted</mark>' in section
    assert "there is nothing to rewrite segment by segment" in section
    # an output written before the filters recorded evidence: what the row itself shows, and no invented evidence
    old = Features({k: v for k, v in FEATURES.items() if k != "drop_evidence"})
    html, _ = render(table_of([{k: v for k, v in r.items() if k != "drop_evidence"} for r in rows], old), {}, config)
    assert html.count("No evidence recorded (an output written before the filters recorded it).") == 2 * 3
    assert "9,000 thinking tokens; the bound is 8,192." in html


def test_a_large_run_shows_a_sample_chosen_by_a_stated_rule():
    table = synthetic_rows(400, seed=1).with_format("arrow")[:]
    chosen, rule = choose_rows(table, 60, seed=0)
    assert len(chosen) == rule["shown"] == 60 and rule["total"] == 400 and not rule["all"]
    assert chosen == choose_rows(table, 60, seed=0)[0] and chosen != choose_rows(table, 60, seed=1)[0]
    gains = [(i, g) for i, g in enumerate(_gains(table)) if g is not None]
    top = sorted(gains, key=lambda ig: -ig[1])[:15]
    assert [i for i, why in chosen if why == "largest gain"] == sorted(i for i, _ in top)
    losses = sorted(g for _, g in gains if g < 0)
    assert 0 < sum(why == "largest loss" for _, why in chosen) == min(15, len(losses))
    reasons = {r for r in table.column("drop_reason").to_pylist() if r}
    shown_reasons = {table.column("drop_reason")[i].as_py() for i, _ in chosen}
    assert reasons <= shown_reasons  # every drop reason is represented
    labels = [p["label"] for p in rule["parts"]]
    assert labels[:2] == ["largest gain", "largest loss"] and labels[-1] == "random"
    assert sum(p["count"] for p in rule["parts"]) == 60
    html, _ = render(table, {}, {}, max_rows=60)
    assert html.count('<article class="row"') == 60
    assert "This report shows <strong>60 of the run's 400 rows</strong>" in html
    assert "rows drawn at random from the other" in html and html.count('class="why">shown as: ') == 60
    assert '<span class="big" id="rows-in">400</span>' in html  # the overview counts every row
    assert "could not be replayed" not in html and html.count('<div class="seg rewritten">') > 60  # diffs for all
    html, rule = render(table.slice(0, 12), {}, {}, max_rows=60)
    assert rule["all"] and "This report shows all 12 rows of the run." in html and "shown as:" not in html


def _gains(table) -> list[float | None]:
    first, last = table.column("initial_score").to_pylist(), table.column("final_score").to_pylist()
    return [None if a is None or b is None else a - b for a, b in zip(first, last, strict=True)]


@pytest.mark.slow  # a whole synthesis run
def test_the_run_writes_the_report_and_the_module_rebuilds_it(tmp_path, capsys):
    out = tmp_path / "run"
    finish_run(out, "cfg", n=4)
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "This report shows all 4 rows of the run." in page
    assert (out / "hub" / "cfg" / "report.html").read_text() == page  # the Hub upload carries it
    card = (out / "README.md").read_text()
    assert "[`cfg/report.html`](cfg/report.html)" in card
    assert read_config(out)["report_rows"] == 200 and read_config(out)["dataset_pretty_name"] == "Run cfg"  # card
    assert read_config(tmp_path) == {}
    info = main([str(out), "--rows", "2", "--output", str(tmp_path / "two.html")])
    assert json.loads(capsys.readouterr().out) == info and info["rows"] == 4 and info["shown"] == 2
    two = (tmp_path / "two.html").read_text()
    assert "2 of the run's 4 rows" in two and "rows read from <code>dataset/</code>" in two
    assert "<h1>Run cfg</h1>" in two  # the title from the run's card
    (out / "run_config.json").write_text(json.dumps({"dataset_pretty_name": "Run <i>cfg</i>"}))  # the runner's file
    build_report(out)
    assert "<h1>Run &lt;i&gt;cfg&lt;/i&gt;</h1>" in (out / "report.html").read_text()
    # an output with only its pieces (a run still going, or stopped before the merge): rows and their timings
    pieces = tmp_path / "unmerged" / "pieces"
    pieces.mkdir(parents=True)
    shutil.copyfile(out / "reer.parquet", pieces / "piece-000000.parquet")
    (pieces / "piece-000000.json").write_text(json.dumps({"generator_seconds": 3.0, "wall_seconds": 5.0}))
    info = build_report(tmp_path / "unmerged")
    unmerged = (tmp_path / "unmerged" / "report.html").read_text()
    assert info["rows"] == 4 and "rows read from <code>pieces/ (1 written)</code>" in unmerged
    assert "(5.0 s wall)" in unmerged and "3.0 s" in unmerged
    with pytest.raises(FileNotFoundError, match="holds no synthesis rows"):
        build_report(tmp_path / "empty")


# ---- in a real browser ------------------------------------------------------------------------------------------


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture
def browse(tmp_path):
    """Load a URL in headless Chromium with extra flags (``--dump-dom``: the DOM after the page's script ran)."""
    exe = chromium()
    if exe is None:
        pytest.skip("chromium not found (Debian: apt-get install chromium)")
    profiles = itertools.count()

    def run(url: str, *flags: str) -> str:
        profile = tmp_path / f"chromium-profile-{next(profiles)}"
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}"]
        proc = subprocess.run([*cmd, *flags, url], capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    return run


def visible_rows(dom: str) -> list[int]:
    """The row entries a person sees, in page order (the filter hides the others)."""
    return [
        int(i) for i, attrs in re.findall(r'<article class="row" id="row-(\d+)"([^>]*)>', dom) if "hidden" not in attrs
    ]


@pytest.fixture
def demo_output(tmp_path, tiny_llama_dir, monkeypatch) -> tuple[Path, list[dict]]:
    """A real run on the demo pairs plus one whose texts carry markup: a scripted generator (loops, a late "Hmm", a
    copy of the answer, a thinking cut by the token limit, the rest plain), the tiny Llama as scorer."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    pairs = demo_pairs() + [{"query": f"Write a calm story. {SCRIPT}", "answer": f"{IMAGE}\n\n{ANSWER}"}]
    copied = " ".join(pairs[3]["answer"].split()[:14])

    def initial(user: str, payload: dict):
        index = next(i for i, p in enumerate(pairs) if p["query"] in user)
        if index == 1:
            return [paragraphs(["The user wants a calm story and I keep saying so again. " * 2] * 12)]
        if index == 2:
            return [paragraphs(THINKING[:3] + [THINKING[3] + " Hmm, maybe not."])]
        if index == 3:
            return [paragraphs(THINKING[:2] + [f"I could open with this: {copied}."] + THINKING[2:])]
        if index == 4:
            return ServerReply(body=completion_body("chat", [paragraphs(THINKING)], finish_reason="length"))
        return [paragraphs(THINKING)]

    out = tmp_path / "demo"
    args = SynthesisScriptArguments(
        dataset_name=str(write_jsonl(tmp_path / "pairs.jsonl", pairs)), map_batch_size=3, output_dir=str(out)
    )
    with OpenAIServer(Writer(initial=initial)) as server:
        generator = GeneratorConfig(
            generator_backend="openai", generator_base_url=server.base_url, generator_model="test-model"
        )
        search = SearchConfig(search_max_step=3, search_stop_thresh=0.0, search_min_rollout_tokens=5)
        scorer = ScorerConfig(
            scorer_model=str(tiny_llama_dir), scorer_dtype="fp32", scorer_clip=False, scorer_max_length=4096
        )
        synthesis.synthesize(args, generator, search, FilterConfig(filter_min_thinking_tokens=None), scorer, 0, 1)
    return out, pairs


@pytest.mark.slow
def test_the_report_in_a_real_browser(demo_output, browse, tmp_path):
    out, pairs = demo_output
    rows = Dataset.from_parquet(str(out / "reer.parquet")).to_list()
    assert [(r["status"], r["drop_reason"]) for r in rows[1:5]] == [
        ("filtered", "repetition"),
        ("filtered", "end_of_thinking"),
        ("dropped", "leak"),
        ("filtered", "end_of_thinking"),
    ]
    # the filters recorded what they saw, where they decided
    loop = rows[1]["drop_evidence"]
    assert loop["check"] in ("top_ngram_share", "loop_share") and loop["value"] > loop["limit"]
    assert loop["text"] in "the user wants a calm story and i keep saying so again " * 3  # the looping n-gram
    assert (rows[2]["drop_evidence"]["check"], rows[2]["drop_evidence"]["text"]) == ("reflection_in_tail", "Hmm")
    leak = rows[3]["drop_evidence"]
    assert leak["check"] == "leak" and " ".join(leak["text"].split()) in " ".join(pairs[3]["answer"].split())
    assert (
        rows[4]["drop_evidence"]["check"] == "unfinished"
        and rows[4]["drop_evidence"]["limit"] == SearchConfig().search_max_new_tokens
    )
    assert any(step["accepted"] for r in rows for step in r["trace"])

    page = (out / "report.html").resolve().as_uri()
    dom = browse(page, "--dump-dom")
    assert '<span class="big" id="rows-in">9</span>' in dom
    assert '<p id="shown" aria-live="polite">9 of 9 rows shown</p>' in dom
    assert visible_rows(dom) == list(range(9))
    assert "<del>" in dom and "<ins>" in dom and "rewritten, accepted at step" in dom  # a rewrite as a diff
    # markup in the data is text: shown escaped, never run
    assert re.search(r"<body[^>]*>", dom).group() == "<body>"
    assert "PWNED" not in re.search(r"<title>(.*?)</title>", dom).group(1) and dom.count("<script") == 1
    assert "<pre>Write a calm story. &lt;script&gt;document.body.setAttribute(" in dom
    assert "&lt;img src=x onerror=" in dom and "<img" not in dom

    # the filter in the address: the page's script shows the rows it selects, and only those
    dom = browse(page + "#status=filtered&reason=repetition", "--dump-dom")
    assert visible_rows(dom) == [1]
    assert "1 of 9 rows shown (status: filtered, reason: repetition)" in dom
    dom = browse(page + "#reason=end_of_thinking", "--dump-dom")
    assert visible_rows(dom) == [2, 4]
    gains = {
        i: None if r["final_score"] is None else r["initial_score"] - r["final_score"] for i, r in enumerate(rows)
    }
    dom = browse(page + "#sort=-gain", "--dump-dom")
    scored = sorted((i for i in gains if gains[i] is not None), key=lambda i: (-gains[i], i))
    assert visible_rows(dom) == scored + [i for i in range(9) if gains[i] is None]

    screenshot = tmp_path / "report-1280.png"
    browse(page, f"--screenshot={screenshot}", "--window-size=1280,900")
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1280 and len(png) > 20_000

    # rebuilt by the module from the output, with a sample of 4 rows
    cmd = [
        sys.executable,
        "-m",
        "reer_hf.synthesis.report",
        str(out),
        "--rows",
        "4",
        "--output",
        str(tmp_path / "4.html"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["shown"] == 4
    dom = browse((tmp_path / "4.html").as_uri(), "--dump-dom")
    assert len(visible_rows(dom)) == 4 and "4 of the run's 9 rows" in dom
    name = json.loads((out / "summary.json").read_text())["hub_config_name"]
    assert (out / "hub" / name / "report.html").read_bytes() == (out / "report.html").read_bytes()
    assert f"({name}/report.html)" in (out / "README.md").read_text()


def test_an_unmerged_run_with_a_failed_piece_sums_the_stats_of_the_pieces_written(tmp_path):
    """A run that stopped on a failed piece: its pieces' stats add up, its failure record is no stats."""
    pieces = tmp_path / "pieces"
    pieces.mkdir()
    (pieces / "piece-000000.json").write_text(json.dumps({"generator_seconds": 2.5, "scorer_seconds": 1.0}))
    (pieces / "piece-000002.json").write_text(json.dumps({"generator_seconds": 1.5, "wall_seconds": 9.0}))
    record_failure(pieces, "piece-000001", "the generator went away", seconds=3.0, retries=5)
    summary = read_summary(tmp_path)
    assert summary["generator_seconds"] == 4.0 and summary["scorer_seconds"] == 1.0
    assert summary["wall_seconds"] == 9.0 and summary["noise_floor"] is None
