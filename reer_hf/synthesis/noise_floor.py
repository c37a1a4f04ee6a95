"""The scorer's noise floor in a synthesis run, the margin of ``search_min_gain: auto``: measured once, by the main
process, on the run's first rows, saved with the pieces, and read back by every process, in the first run and in each
resumed one, so that all of them decide with the one saved value.

Only ``auto`` under same-pass acceptance needs it; a number (0 included) makes no fp32 copy of the scorer. A floor
that cannot be measured (a vLLM scorer holds no model to copy; no row could be scored) stops the run and says so,
rather than letting ``auto`` accept any gain, which is a different search than the one asked for.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from reer_hf.core.cache import atomic_write
from reer_hf.core.text import strip_thinking
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.noise import NoiseFloor, measure_noise_floor
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import SearchConfig

__all__ = ["NOISE_FLOOR_FILE", "NoiseFloorUnavailable", "check_backend", "load", "measure", "require", "save"]

logger = logging.getLogger(__name__)

#: The file in ``pieces/`` that keeps the run's floor.
NOISE_FLOOR_FILE = "noise_floor.json"


class NoiseFloorUnavailable(RuntimeError):
    """``search_min_gain: auto`` needs a noise floor that was not, or cannot be, measured."""


def require(floor: NoiseFloor | None) -> NoiseFloor:
    """``floor`` when it was measured; else raise, with the reason and what to set instead."""
    if floor is not None and floor.max is not None:
        return floor
    why = f"it cannot be measured: {floor.note}" if floor is not None and floor.note else "it was not measured"
    raise NoiseFloorUnavailable(
        f"search_min_gain auto needs the scorer's noise floor (its run dtype against fp32), and {why}. Set "
        "search_min_gain to a number instead: 0 accepts any lower score (the official code), or a margin of your own"
    )


def check_backend(scorer_config: ScorerConfig) -> None:
    """Raise before any model loads when the scorer's backend holds no transformers model to copy in fp32 (vLLM)."""
    if scorer_config.scorer_backend != "transformers":
        note = f"the {scorer_config.scorer_backend} scorer holds no transformers model to copy in fp32"
        require(NoiseFloor(None, None, 0, "unknown", note))


def measure(scorer: Scorer, config: SearchConfig, queries: Sequence, answers: Sequence) -> NoiseFloor:
    """The floor on the first ``search_noise_rows`` rows that have a query and an answer (an empty thinking each,
    thinking in an answer stripped, as the search scores it); raises :class:`NoiseFloorUnavailable` when it cannot be
    measured."""
    rows = [(q, a) for q, a in zip(queries, answers, strict=True) if isinstance(q, str) and isinstance(a, str)]
    rows = [(q, strip_thinking(a)) for q, a in rows if q.strip() and a.strip()][: config.search_noise_rows]
    floor = measure_noise_floor(scorer, [q for q, _ in rows], [""] * len(rows), [a for _, a in rows])
    return require(floor)


def save(pieces_dir: Path, floor: NoiseFloor) -> None:
    """Keep ``floor`` with the pieces (written atomically: the other processes poll for it)."""
    atomic_write(pieces_dir / NOISE_FLOOR_FILE, lambda tmp: tmp.write_text(json.dumps(require(floor).to_dict())))


def load(pieces_dir: Path, timeout: float, poll: float = 1.0) -> NoiseFloor:
    """The run's saved floor. A process that finds none yet waits for the main process to save it (polled, as the
    merge polls for pieces), and stops when another process failed or after ``timeout`` seconds."""
    path = pieces_dir / NOISE_FLOOR_FILE
    deadline = time.monotonic() + timeout
    if not path.exists():
        logger.info("Waiting for the main process to measure the scorer's noise floor (%s)", path)
    while not path.exists():
        failed = sorted(pieces_dir.glob("failed-*.txt"))
        if failed:
            raise RuntimeError(f"Another process failed: {failed[0].read_text()[:2000]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"The main process saved no noise floor in {path} within {timeout:.0f} s")
        time.sleep(poll)
    return require(NoiseFloor(**json.loads(path.read_text())))
