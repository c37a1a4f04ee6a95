"""Generator failures in a synthesis run, kept out of the data.

A request that still gets no usable reply after its retries (``GeneratorUnavailable``: the server unreachable, a 5xx,
an unparsable body) says nothing about its row, so it fails its whole piece: the piece
is not written, the run goes on with the next ones and ends with :class:`PiecesFailed`, and starting the run again
redoes exactly the missing pieces. Seeds follow rows, so the data is then what a run without failures writes. A
prompt too long for the model, or a reply cut by the token limit, is the model's answer and stays recorded per row.

Each failed attempt is kept in ``pieces/piece-k.failed.json`` until the piece is written; the piece's stats then
carry the attempts, their retries and the time they cost, which the run summary adds up. Too many failures (in a row,
or as a share of the last pieces) stop the run as an outage (:class:`GeneratorOutage`), and the health check at the
start refuses a server that cannot be reached or does not serve the model.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from pathlib import Path

from reer_hf.core.cache import atomic_write
from reer_hf.core.endpoint import EndpointError, served_models
from reer_hf.synthesis.config import GeneratorConfig
from reer_hf.synthesis.generation import GeneratorUnavailable, generator_endpoint

FAILED_SUFFIX = ".failed.json"
RESUME = "run the same command again (same settings and output_dir): it redoes exactly the missing pieces"


class GeneratorOutage(RuntimeError):
    """The generator cannot be used: the health check failed, or too many pieces failed on it."""


class PiecesFailed(RuntimeError):
    """Some pieces were not written because their generator requests failed; a later run redoes them."""


def check_generator(config: GeneratorConfig) -> None:
    """Fail at once, before any model loads, when the ``openai`` backend's server cannot be reached or does not
    serve ``generator_model`` (``GET {base_url}/models``)."""
    if config.generator_backend != "openai" or not config.generator_health_check:
        return
    url, model = config.generator_base_url, config.generator_model
    try:
        served = served_models(generator_endpoint(config, backoff=0.0))
    except EndpointError as e:
        if e.kind == "network":
            raise GeneratorOutage(
                f"Cannot reach the generator at {url} (model {model!r}): {e}. Start the server (e.g. `vllm serve "
                f"{model}`) or fix generator_base_url."
            ) from e
        raise GeneratorOutage(
            f"The generator at {url} gave no model list ({e}); for a server without /models set "
            "generator_health_check false."
        ) from e
    if model not in served:
        raise GeneratorOutage(
            f"The generator at {url} does not serve generator_model {model!r}; it serves {served}. Set "
            "generator_model to the served name (vllm serve --served-model-name)."
        )


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


class PieceFailures:
    """The pieces of this process that failed in this run, and the outage thresholds of the ``generator_*``
    options: ``add`` raises :class:`GeneratorOutage` once they are passed, ``raise_if_any`` at the end of the run.

    The evaluation's generate stage counts its generation calls the same way (``unit``, and ``resume``: how to go on
    once the server answers)."""

    def __init__(
        self, config: GeneratorConfig, where: str, pieces_dir: Path, unit: str = "pieces", resume: str = RESUME
    ):
        self.config = config
        self.where = where
        self.pieces_dir = pieces_dir
        self.unit, self.resume = unit, resume
        self.failed: list[str] = []
        self.in_a_row = 0
        self.recent: deque[bool] = deque(maxlen=config.generator_outage_window)
        self.last_error = ""

    def add(self, name: str, error: GeneratorUnavailable | None) -> None:
        """The outcome of one piece (``error`` None: written)."""
        self.recent.append(error is not None)
        if error is None:
            self.in_a_row = 0
            return
        self.failed.append(name)
        self.in_a_row += 1
        self.last_error = error.error
        cfg = self.config
        window = len(self.recent) == self.recent.maxlen
        share = sum(self.recent) / len(self.recent)
        limit = cfg.generator_outage_consecutive
        if limit and self.in_a_row >= limit:
            why = f"{self.in_a_row} {self.unit} in a row failed (generator_outage_consecutive={limit})"
        elif window and share > cfg.generator_outage_share:
            why = (
                f"{sum(self.recent)} of the last {len(self.recent)} {self.unit} failed (generator_outage_share="
                f"{cfg.generator_outage_share}, generator_outage_window={cfg.generator_outage_window})"
            )
        else:
            return
        raise GeneratorOutage(
            f"Generator outage at {self.where}: {why}; the last error: {self.last_error}. What is written is kept "
            f"in {self.pieces_dir}; once the server answers again, {self.resume}."
        )

    def raise_if_any(self) -> None:
        if self.failed:
            raise PiecesFailed(
                f"{len(self.failed)} pieces were not written because requests to the generator at {self.where} "
                f"failed after their retries: {', '.join(self.failed)}; the last error: {self.last_error}. The "
                f"other pieces are kept in {self.pieces_dir}; {RESUME}, and the result is what a run without "
                "failures writes."
            )
