"""The report: our row beside the paper's rows (from reer_hf.core.paper), partial cells starred, the comparison of
two runs with the paper's ablation rows."""

from __future__ import annotations

import json

import pytest

from reer_hf.core.paper import PAPER_ABLATIONS, PAPER_TABLE
from reer_hf.evaluation import report as rp


def results_of(name: str, hb_b: float, wb_a: float, wb_failed: int = 0) -> dict:
    domain = {"score": wb_a / 10, "score_x10": wb_a, "n": 1 + wb_failed, "n_ok": 1, "n_failed": wb_failed}
    return {
        "run_name": name,
        "model": name,
        "judge": "j",
        "benchmarks": {
            "hellobench": {
                "generation": {"statuses": {}, "failed_ids": []},
                "judged": {"heuristic_text_generation": {"score": hb_b, "rescaled": 0, "n_ok": 1, "n_failed": 0}},
            },
            "writingbench": {
                "generation": {"statuses": {}, "failed_ids": []},
                "judged": {"overall": domain, "domains": {"A": domain}},
            },
        },
    }


def test_compare_two_runs(tmp_path):
    full, ablation = (
        rp.build_report(results_of("full", 80.0, 70.0)),
        rp.build_report(results_of("no search", 77.5, 66.0)),
    )
    md = rp.compare_markdown([full, ablation])
    assert "| no search - full | -2.50 | -4.00 |" in md
    assert "| no iterative search | 84.40 | 66.70 | 65.60 |" in md  # the paper's ablation rows beside ours
    assert "| full | 87.48 | 72.20 | 70.60 |" in md  # the full run is the main table's DeepWriter-8B row
    assert "excluded categories" not in md  # the paper reports no numbers for it
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "report.json").write_text(json.dumps(full))
    assert rp.load_report(tmp_path / "full")["table"] == full["table"]
    with pytest.raises(ValueError, match="two"):
        rp.compare_markdown([full])


def test_the_table_holds_every_paper_row_and_stars_partial_cells():
    report = rp.build_report(results_of("ours", 80.0, 70.0, wb_failed=1))
    assert report["table"]["HB-B"] == 80.0 and report["table"]["WB-A"] == 70.0 and report["table"]["LB"] is None
    assert report["partial"] == ["WB-A"] and report["failures"]["writingbench"] == {"generation": 0, "judge": 1}
    assert report["paper"]["table"] == PAPER_TABLE and report["paper"]["ablations"] == PAPER_ABLATIONS
    md = rp.render_markdown(report)
    table = [line for line in md.splitlines() if line.startswith("| ") and "|---" not in line]
    assert table[0] == "| model | LB | HB-A | HB-B | WB-A | WB-B | WB-C | WB-D | WB-E | WB-F | LB S_l |"
    assert table[1].startswith("| **ours** (ours) | — | — | 80.00 | 70.00* |")
    assert [line.split(" | ")[0][2:] for line in table[2 : 2 + len(PAPER_TABLE)]] == list(PAPER_TABLE)
    assert "| Claude 3.7 | 97.80 | 83.90 | 93.20 | 78.20 |" in md
    assert "## WritingBench" in md and "## LongBench-Write" not in md
