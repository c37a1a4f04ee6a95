"""Generator failures in a synthesis run, kept out of the data.

A request that still gets no usable reply after its retries (``GeneratorUnavailable``: the server unreachable, a 5xx,
an unparsable body) says nothing about its row, so it fails its whole piece: the piece
is not written, the run goes on with the next ones and ends with
:class:`~reer_hf.generation.health.PiecesFailed`, and starting the run again
redoes exactly the missing pieces. Seeds follow rows, so the data is then what a run without failures writes. A
prompt too long for the model, or a reply cut by the token limit, is the model's answer and stays recorded per row.

Each failed attempt is kept in ``pieces/piece-k.failed.json`` until the piece is written; the piece's stats then
carry the attempts, their retries and the time they cost, which the run summary adds up. The outage rule and the
health check at the start are the generator's (:mod:`reer_hf.generation.health`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from reer_hf.core.cache import atomic_write

FAILED_SUFFIX = ".failed.json"


def record_failure(pieces_dir: Path, name: str, error: str, seconds: float, retries: int) -> None:
    """Append one failed attempt to the piece's failure record (written atomically)."""
    path = pieces_dir / f"{name}{FAILED_SUFFIX}"
    attempts = json.loads(path.read_text()) if path.exists() else []
    attempts.append({"error": error[:2000], "seconds": seconds, "retries": retries})
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(attempts)))


def add_failures(stats: Counter, pieces_dir: Path, name: str) -> None:
    """Fold the piece's failed attempts into its stats: their count, their time and their retries."""
    path = pieces_dir / f"{name}{FAILED_SUFFIX}"
    attempts = json.loads(path.read_text()) if path.exists() else []
    stats["generator_failed_pieces"] = len(attempts)
    stats["generator_failed_seconds"] = sum(a["seconds"] for a in attempts)
    stats["generator_retries"] += sum(a["retries"] for a in attempts)


def clear_failures(pieces_dir: Path, name: str) -> None:
    """Drop the failure record of a piece now written (its stats hold the attempts)."""
    (pieces_dir / f"{name}{FAILED_SUFFIX}").unlink(missing_ok=True)
