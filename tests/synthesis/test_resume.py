"""What ties a run's pieces and processes together: a restart resumes only the same rows, exactly, with the same
options (anything else is refused, with the reason), and the scorer's noise floor is measured once, by the main
process, and every process decides with the saved value."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
from datasets import load_from_disk
from openai_server import OpenAIServer
from test_search import ANSWER, QUERY, Writer
from test_synthesis import configs, scripted
from testing_utils import write_jsonl

import reer_hf.synthesis.noise_floor as noise_floor
import reer_hf.synthesis.runner as synthesis
from reer_hf.core.data import load_pairs
from reer_hf.synthesis.noise_floor import NoiseFloorUnavailable

ROWS = [{"question": f"{QUERY} Version {i}.", "answer": ANSWER, "source": "web"} for i in range(3)]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def small(out: Path, data: Path, model_dir: Path, server: OpenAIServer, bf16: bool = False, **search) -> tuple:
    """A run of one search step per row (two rows a piece), its scorer in fp32, or in bf16 to have a noise floor."""
    run = configs(out, data, model_dir, scripted(server), **{"search_max_step": 1, **search})
    return (*run[:4], dataclasses.replace(run[4], scorer_dtype="bf16")) if bf16 else run


def measurements(monkeypatch) -> list[str]:
    """The threads that measure a noise floor (each an fp32 copy of the scorer), in order."""
    calls: list[str] = []
    real = noise_floor.measure_noise_floor

    def spy(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(noise_floor, "measure_noise_floor", spy)
    return calls


def _locked(lock: threading.RLock, function, *args, **kwargs):
    with lock:
        return function(*args, **kwargs)


@pytest.mark.slow  # a whole synthesis run
def test_a_restart_resumes_only_the_same_rows_exactly(tmp_path, tiny_llama_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    out = tmp_path / "run"
    corrected = {
        "casing": dict(ROWS[1], question=ROWS[1]["question"].lower()),
        "spacing": dict(ROWS[1], answer=ANSWER.replace(" the ", "  the ", 1)),
        "another column": dict(ROWS[1], source="book"),
    }
    with OpenAIServer(Writer()) as server:
        run = small(out, data, tiny_llama_dir, server)
        synthesis.synthesize(*run, process_index=0, num_processes=1)
        searched = len(server.requests)
        assert synthesis.synthesize(*run, process_index=0, num_processes=1)["rows"] == 3  # the same rows: resumed
        assert len(server.requests) == searched  # nothing searched again
        for what, row in corrected.items():  # each the same pair to dedup's normalised key, other data to a resume
            write_jsonl(data, [ROWS[0], row, ROWS[2]])
            with pytest.raises(ValueError, match="the input rows differ") as refused:
                synthesis.synthesize(*run, process_index=0, num_processes=1)
            assert "overwrite_output_dir" in str(refused.value) and "options" not in str(refused.value), what
        write_jsonl(data, ROWS)
        longer = small(out, data, tiny_llama_dir, server, search_max_step=2)
        changed = r"options that decide what a run writes changed \(search_max_step: 1 -> 2\)"
        with pytest.raises(ValueError, match=changed):
            synthesis.synthesize(*longer, process_index=0, num_processes=1)
        write_jsonl(data, [ROWS[0], corrected["casing"], ROWS[2]])
        args, *rest = run
        fresh = dataclasses.replace(args, overwrite_output_dir=True)
        assert synthesis.synthesize(fresh, *rest, process_index=0, num_processes=1)["rows"] == 3  # started over
        assert len(server.requests) > searched
    assert load_from_disk(str(out / "dataset"))["query"][1] == corrected["casing"]["question"]


@pytest.mark.slow  # a whole synthesis run
def test_a_margin_given_as_a_number_measures_no_floor(tmp_path, tiny_llama_dir, monkeypatch):
    calls = measurements(monkeypatch)
    data = write_jsonl(tmp_path / "pairs.jsonl", ROWS[:2])
    out = tmp_path / "number"
    with OpenAIServer(Writer()) as server:
        summary = synthesis.synthesize(
            *small(out, data, tiny_llama_dir, server, bf16=True, search_min_gain="0.001"),
            process_index=0,
            num_processes=1,
        )
    assert calls == [] and summary["noise_floor"] is None  # no fp32 copy of the scorer for a margin not used
    assert not (out / "pieces" / noise_floor.NOISE_FLOOR_FILE).exists()
    assert {s["margin"] for r in load_from_disk(str(out / "dataset")) for s in r["trace"]} == {0.001}


def test_an_auto_margin_a_vllm_scorer_cannot_have_stops_the_run_before_any_model_loads(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", ROWS[:2])
    with OpenAIServer(Writer()) as server:
        args, *rest, scorer = small(tmp_path / "vllm", data, tmp_path / "no-such-model", server)
        vllm = dataclasses.replace(scorer, scorer_backend="vllm")
        with pytest.raises(NoiseFloorUnavailable, match="vllm scorer holds no transformers model.*search_min_gain to"):
            synthesis.synthesize(args, *rest, vllm, process_index=0, num_processes=1)
        assert not server.requests


@pytest.mark.slow
def test_one_noise_floor_measured_by_the_main_process_decides_for_every_process(tmp_path, tiny_llama_dir, monkeypatch):
    """Two processes (threads here) of one run with a bf16 scorer: the floor is measured once, by the main one; the
    other waits for it, and the rows of both are decided with the saved value."""
    calls = measurements(monkeypatch)
    # Threads share torch's process-wide state, which loading a bf16 model changes for a while (the default dtype):
    # loads and the fp32 measurement take turns here, as separate processes never need to.
    torch_state = threading.RLock()
    for name in ("build_components", "_measure_floor"):
        real = getattr(synthesis, name)
        monkeypatch.setattr(synthesis, name, lambda *a, _real=real, **k: _locked(torch_state, _real, *a, **k))
    data = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    load_pairs(str(data))  # its datasets cache, built before two threads read it
    out = tmp_path / "sharded"
    errors: list[BaseException] = []
    with OpenAIServer(Writer()) as server:
        run = small(out, data, tiny_llama_dir, server, bf16=True)

        def other_process():
            try:
                assert synthesis.synthesize(*run, process_index=1, num_processes=2) is None
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                errors.append(err)

        other = threading.Thread(target=other_process, name="process-1")
        other.start()
        summary = synthesis.synthesize(*run, process_index=0, num_processes=2)
        other.join(timeout=600)
    assert not errors and not other.is_alive()
    assert calls == ["MainThread"]  # measured once, by the main process
    saved = json.loads((out / "pieces" / noise_floor.NOISE_FLOOR_FILE).read_text())
    assert saved["dtype"] == "bfloat16" and saved["max"] > 0 and summary["noise_floor"] == saved
    rows = load_from_disk(str(out / "dataset")).to_list()
    assert len(rows) == 3 and all(r["trace"] for r in rows)  # rows 0-1: the main process's piece; row 2: the other's
    assert {s["margin"] for r in rows for s in r["trace"]} == {saved["max"]}
