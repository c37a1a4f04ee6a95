"""Whether the generator can be used, as a run that writes in pieces (the synthesis run's pieces, the evaluation's
generation calls) must know: the health check at the start refuses a server that cannot be reached or does not serve
the model, and :class:`PieceFailures` stops the run as an outage once too many pieces failed on requests that got no
usable reply (``generator_outage_*``). A failed piece says nothing about its rows: it is not written, and starting the
run again redoes exactly the missing pieces.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from reer_hf.core.endpoint import EndpointError, served_models
from reer_hf.generation.completion import GeneratorUnavailable
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.openai_backend import generator_endpoint

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
