"""A whole synthesis run: load pairs, dedup, search them piece by piece (resumable, sharded across processes), merge,
summarise, plot, save, card, push.

Pieces: the rows are cut into pieces of ``map_batch_size * save_every`` rows; piece ``k`` belongs to process
``k % num_processes``. Each piece is one ``datasets.map`` of the searcher and is written atomically
(``pieces/piece-00000k.parquet`` plus its stats) before the next starts, so a killed run resumes at the first missing
piece and loses at most the one in flight. The seeds of a map batch derive from its first row's index, so a resumed
run writes exactly what an uninterrupted one would have. The main process merges the pieces in input order. A piece
whose generator requests fail in transport is left unwritten and the run ends with an error listing it, so a later
run redoes it (``faults``): a server's bad moment never becomes data. A restart resumes only pieces of the same run:
the same rows, exactly, and the same options (``resume``); the scorer's noise floor is measured once, by the main
process, and every process decides with the saved value (``noise_floor``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path

from reer_hf.core.cache import atomic_write
from reer_hf.core.data import load_pairs
from reer_hf.core.formats import to_messages
from reer_hf.core.models import resolve_device, resolve_dtype, resolve_model
from reer_hf.core.threads import set_torch_threads
from reer_hf.generation import GeneratorUnavailable, build_generator
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.health import PieceFailures, check_generator
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.openai_backend import ScorerUnavailable
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis import noise_floor
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.faults import add_failures, clear_failures, record_failure
from reer_hf.synthesis.filters import pair_key
from reer_hf.synthesis.noise_floor import NOISE_FLOOR_FILE
from reer_hf.synthesis.outputs import config_name, push_dataset, save_outputs, summarize
from reer_hf.synthesis.resume import data_digest, fingerprint, prepare
from reer_hf.synthesis.search import Searcher, search_features

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Piece:
    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"piece-{self.index:06d}"


def run_config(*configs) -> dict:
    """Every option of the run, by name (the card shows it; its semantic part fingerprints resumable pieces)."""
    return {k: v for c in configs for k, v in dataclasses.asdict(c).items()}


def map_fingerprint(*parts: str) -> str:
    """A ``datasets`` fingerprint for a map whose function holds a model: derived from what the map depends on, so
    ``datasets`` does not pickle the function (minutes and gigabytes for an 8B model) to hash it."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def follow_reflection_switch(search_cfg: SearchConfig, scorer_cfg: ScorerConfig) -> ScorerConfig:
    """The scorer config with ``scorer_reflection`` following ``search_reflection``: the "no reflection tokens"
    ablation is one switch, which removes the reflection request from the generator's prompts and from the scorer's
    inference template alike. Setting the two to different values is refused: a run scored against a template that
    asks for what the prompts forbade (or the reverse) is no run of the paper's."""
    if scorer_cfg.scorer_reflection is None:
        return dataclasses.replace(scorer_cfg, scorer_reflection=search_cfg.search_reflection)
    if scorer_cfg.scorer_reflection != search_cfg.search_reflection:
        raise ValueError(
            f"scorer_reflection={scorer_cfg.scorer_reflection} contradicts search_reflection="
            f"{search_cfg.search_reflection}: leave scorer_reflection unset (it follows search_reflection)"
        )
    return scorer_cfg


def expand_rollouts(ds, n: int):
    """Each pair ``n`` times in a row, with its ``rollout`` index: rollout r of pair i is row i * n + r, so the
    seeds, which follow rows, follow (pair, rollout), and a resumed or sharded run cuts exactly the same rows."""
    from datasets import Value

    pairs = len(ds)
    if n > 1:
        ds = ds.select([i for i in range(pairs) for _ in range(n)])
    return ds.add_column("rollout", [r for _ in range(pairs) for r in range(n)], feature=Value("int32"))


def mark_duplicates(ds, enabled: bool = True):
    """Add ``duplicate_of``: the index of the first row with the same normalised (query, answer) and rollout, else
    None (near-duplicates count: the key is case-folded and whitespace-normalised)."""
    first: dict[str, int] = {}
    dup: list[int | None] = []
    rollouts = ds["rollout"] if "rollout" in ds.column_names else [0] * len(ds)
    for i, (q, a, r) in enumerate(zip(ds["query"], ds["answer"], rollouts, strict=True)):
        key = pair_key(q, a) if isinstance(q, str) and isinstance(a, str) else repr((q, a))
        key = f"{key}-{r}" if r else key
        if not enabled or not isinstance(q, str) or not isinstance(a, str):
            dup.append(None)
            continue
        dup.append(first.get(key))
        first.setdefault(key, i)
    from datasets import Value

    return ds.add_column("duplicate_of", dup, feature=Value("int64"))


def plan_pieces(rows: int, piece_rows: int) -> list[Piece]:
    return [Piece(k, lo, min(lo + piece_rows, rows)) for k, lo in enumerate(range(0, rows, piece_rows))]


def _scorer_config(scorer_cfg: ScorerConfig, device: str | None) -> ScorerConfig:
    """The scorer options on this process's device, when it has one and the options leave it to ``auto``."""
    if device and scorer_cfg.scorer_device == "auto":
        return dataclasses.replace(scorer_cfg, scorer_device=device)
    return scorer_cfg


def build_components(gen_cfg: GeneratorConfig, scorer_cfg: ScorerConfig, device: str | None = None):
    """The generator and the scorer; one transformers model serves both roles when they name the same model on the
    same device in the same dtype, however each spells it (``auto`` that resolves to fp32 is ``fp32``)."""
    scorer_cfg = _scorer_config(scorer_cfg, device)
    if device and gen_cfg.generator_device == "auto":
        gen_cfg = dataclasses.replace(gen_cfg, generator_device=device)
    if "transformers" in (gen_cfg.generator_backend, scorer_cfg.scorer_backend):
        set_torch_threads(gen_cfg.generator_torch_threads)  # before any model loads, while the process is idle
    scorer = Scorer.from_config(scorer_cfg)
    local = gen_cfg.generator_backend == scorer_cfg.scorer_backend == "transformers"
    shared = (scorer.backend.model, scorer.tokenizer) if local and same_weights(gen_cfg, scorer_cfg) else None
    return build_generator(gen_cfg, shared=shared), scorer


def same_weights(gen_cfg: GeneratorConfig, scorer_cfg: ScorerConfig) -> bool:
    """Whether generator and scorer would load the same weights: the same model, device and resolved dtype."""
    gen_device, scorer_device = resolve_device(gen_cfg.generator_device), resolve_device(scorer_cfg.scorer_device)
    return (
        resolve_model(gen_cfg.generator_model) == resolve_model(scorer_cfg.scorer_model)
        and gen_device == scorer_device
        and resolve_dtype(gen_cfg.generator_dtype, gen_device) == resolve_dtype(scorer_cfg.scorer_dtype, scorer_device)
    )


def synthesize(
    args: SynthesisScriptArguments,
    gen_cfg: GeneratorConfig,
    search_cfg: SearchConfig,
    filter_cfg: FilterConfig,
    scorer_cfg: ScorerConfig,
    process_index: int | None = None,
    num_processes: int | None = None,
) -> dict | None:
    """Run (or resume) the search; the main process returns the run summary, the others None."""
    from tqdm.auto import tqdm

    if process_index is None or num_processes is None:
        import torch
        from accelerate import PartialState

        # cpu=True on machines without CUDA, or accelerate treats CPU processes as one (every rank 0 of 1)
        state = PartialState(cpu=not torch.cuda.is_available())
        process_index, num_processes = state.process_index, state.num_processes
        device = str(state.device) if state.device.type == "cuda" else None
    else:
        state, device = None, None
    is_main = process_index == 0
    wall = time.perf_counter()
    ds = load_pairs(
        args.dataset_name,
        args.dataset_split,
        args.dataset_query_column,
        args.dataset_answer_column,
        args.max_rows,
        args.dataset_config,
        args.dataset_data_files,
        args.dataset_revision,
    )
    clashes = [c for c in [*search_features(), "duplicate_of", "rollout"] if c in ds.column_names]
    if clashes:
        ds = ds.rename_columns({c: f"source_{c}" for c in clashes})
    data_hash = data_digest(ds)  # the rows exactly as loaded: what resumable pieces are tied to
    pairs = ds
    ds = mark_duplicates(expand_rollouts(ds, search_cfg.search_num_rollouts), filter_cfg.filter_dedup)
    scorer_cfg = follow_reflection_switch(search_cfg, scorer_cfg)
    configs = (args, gen_cfg, search_cfg, filter_cfg, scorer_cfg)
    config = run_config(*configs)
    out = Path(args.output_dir)
    pieces_dir = out / "pieces"
    run_print = fingerprint(configs, data_hash)
    pieces = plan_pieces(len(ds), args.map_batch_size * args.save_every)
    mine = [p for p in pieces if p.index % num_processes == process_index]
    if search_cfg.measures_noise:
        noise_floor.check_backend(scorer_cfg)  # a vLLM scorer's floor cannot be measured: stop before any model loads
    if is_main:
        prepare(pieces_dir, configs, data_hash, args.overwrite_output_dir)  # refuses another run's pieces, saying why
        if scorer_cfg.scorer_carry_prefixes < args.map_batch_size:
            logger.warning(
                "scorer_carry_prefixes (%d) < map_batch_size (%d): the rows' prefix caches cannot all be carried "
                "from one step to the next, so most are recomputed; raise it if the scorer's memory allows",
                scorer_cfg.scorer_carry_prefixes,
                args.map_batch_size,
            )
    if state is not None:
        state.wait_for_everyone()  # the main process may have cleared the pieces (overwrite_output_dir)
    pieces_dir.mkdir(parents=True, exist_ok=True)
    todo = [p for p in mine if not (pieces_dir / f"{p.name}.parquet").exists()]
    done_rows = sum(p.stop - p.start for p in mine) - sum(p.stop - p.start for p in todo)
    if done_rows:
        total = sum(p.stop - p.start for p in mine)
        logger.info("Resuming: %d of this process's %d rows are already searched", done_rows, total)
    components = None
    if is_main:
        try:
            components = _measure_floor(pairs, pieces_dir, bool(todo), gen_cfg, search_cfg, scorer_cfg, device)
        except Exception as err:
            if num_processes > 1:  # the other processes wait for the floor: tell them instead
                (pieces_dir / f"failed-{process_index}.txt").write_text(f"process {process_index}: {err!r}")
            raise
    if todo:
        if components is None:
            check_generator(gen_cfg)  # before any model loads: a server that cannot serve the model fails at once
            components = build_components(gen_cfg, scorer_cfg, device)
        # every process decides with the floor the main process saved (waiting for it), first run or resumed
        floor = noise_floor.load(pieces_dir, args.merge_timeout) if search_cfg.measures_noise else None
        generator, scorer = components
        generator.raise_on_transport = True  # a request lost in transport fails its piece, which a later run redoes
        failures = PieceFailures(gen_cfg, generator.where, pieces_dir)
        searcher = Searcher(
            generator,
            scorer,
            search_cfg,
            filter_cfg,
            to_messages=lambda q, z, a: to_messages(
                q, z, a, args.messages_system_prompt, args.messages_assistant_format
            ),
        )
        searcher.noise_floor = floor
        features = ds.features.copy()
        features.update(search_features())
        bar = tqdm(
            total=sum(p.stop - p.start for p in mine),
            initial=done_rows,
            unit="row",
            desc=f"REER search [{process_index + 1}/{num_processes}]",
            dynamic_ncols=True,
        )
        searcher.on_step = lambda step, active: bar.set_postfix(
            step=f"{step + 1}/{search_cfg.search_max_step}",
            active=active,
            retries=generator.stats["retries"],
            failed=len(failures.failed),
        )
        try:
            for piece in todo:
                error = _search_piece(ds, piece, searcher, features, pieces_dir, args.map_batch_size, run_print)
                if error is None:
                    bar.update(piece.stop - piece.start)
                else:
                    logger.warning("%s not written (a later run redoes it): %s", piece.name, error)
                failures.add(piece.name, error)  # raises GeneratorOutage past the generator_outage_* thresholds
                bar.set_postfix(retries=generator.stats["retries"], failed=len(failures.failed))
            failures.raise_if_any()
        except Exception as err:
            if num_processes > 1:  # tell the main process, which polls for the pieces, instead of letting it wait
                (pieces_dir / f"failed-{process_index}.txt").write_text(f"process {process_index}: {err!r}")
            raise
        finally:
            bar.close()
    if not is_main:
        return None
    merged = _merge(pieces, pieces_dir, args.merge_timeout)
    stats = _piece_stats(pieces, pieces_dir)
    summary = summarize(merged, stats, time.perf_counter() - wall)
    summary["hub_config_name"] = args.hub_config_name or config_name(search_cfg, scorer_cfg, gen_cfg)
    noise_path = pieces_dir / NOISE_FLOOR_FILE
    summary["noise_floor"] = json.loads(noise_path.read_text()) if noise_path.exists() else None
    folder = save_outputs(merged, summary, config, args, out)
    if args.push_to_hub:
        if folder is None:
            raise ValueError("Nothing to push: the run produced no rows")
        summary["hub_url"] = push_dataset(
            folder, args.hub_dataset_id, summary["hub_config_name"], args.hub_private, args.hub_revision
        )
    return summary


def _measure_floor(
    pairs,
    pieces_dir: Path,
    searching: bool,
    gen_cfg: GeneratorConfig,
    search_cfg: SearchConfig,
    scorer_cfg: ScorerConfig,
    device: str | None,
) -> tuple | None:
    """Main process: measure the scorer's noise floor on the run's first pairs and save it with the pieces, when the
    run's margin is that floor (``auto``) and no earlier launch saved one. Returns the generator and scorer it built
    (when this process has pieces to search, so nothing loads twice), else None."""
    if not search_cfg.measures_noise or not len(pairs) or (pieces_dir / NOISE_FLOOR_FILE).exists():
        return None
    components = None
    if searching:
        check_generator(gen_cfg)  # before any model loads
        components = build_components(gen_cfg, scorer_cfg, device)
        scorer = components[1]
    else:  # this process's pieces are done, another's are not: the scorer alone
        scorer = Scorer.from_config(_scorer_config(scorer_cfg, device))
    head = pairs.select(range(min(len(pairs), 4 * search_cfg.search_noise_rows)))  # spare rows for invalid ones
    floor = noise_floor.measure(scorer, search_cfg, head["query"], head["answer"])
    logger.info(
        "Scorer noise floor (%s vs fp32, %d rows): max %s, median %s", floor.dtype, floor.rows, floor.max, floor.median
    )
    noise_floor.save(pieces_dir, floor)
    return components


def _search_piece(
    ds, piece: Piece, searcher: Searcher, features, pieces_dir: Path, batch_size: int, run_print: str
) -> GeneratorUnavailable | ScorerUnavailable | None:
    """Search one piece and write it with its stats; a piece whose generator or served scorer requests failed in
    transport is not written but recorded, and its error returned (the run goes on; a later run redoes the piece)."""
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    before = _run_stats(searcher)
    start = time.perf_counter()
    shown = is_progress_bar_enabled()
    disable_progress_bar()  # the run's own bar counts rows across pieces
    try:
        result = ds.select(range(piece.start, piece.stop)).map(
            searcher,
            batched=True,
            batch_size=batch_size,  # the lock-step unit
            with_indices=True,
            fn_kwargs={"offset": piece.start},
            features=features,
            load_from_cache_file=False,
            keep_in_memory=True,
            # Named, so datasets never pickles the searcher (and the models it holds) to fingerprint the map.
            new_fingerprint=map_fingerprint(run_print, piece.name),
        )
    except (GeneratorUnavailable, ScorerUnavailable) as err:
        retries = _run_stats(searcher)["generator_retries"] - before["generator_retries"]
        record_failure(pieces_dir, piece.name, str(err), time.perf_counter() - start, retries)
        return err
    finally:
        if shown:
            enable_progress_bar()
    stats = Counter({k: v - before.get(k, 0) for k, v in _run_stats(searcher).items()})
    stats["wall_seconds"] = time.perf_counter() - start
    add_failures(stats, pieces_dir, piece.name)
    atomic_write(pieces_dir / f"{piece.name}.json", lambda p: p.write_text(json.dumps(stats)))
    atomic_write(pieces_dir / f"{piece.name}.parquet", lambda p: result.to_parquet(str(p)))
    clear_failures(pieces_dir, piece.name)
    return None


def _run_stats(searcher: Searcher) -> Counter:
    """The searcher's counters and the generator backend's (requests, errors, retries), the latter prefixed."""
    stats = Counter(searcher.stats)
    for key in (
        "requests",
        "completions",
        "errors",
        "retries",
        "prompt_tokens",
        "prompt_tokens_requested",
        "prompt_tokens_carried",
    ):
        stats[f"generator_{key}"] = searcher.generator.stats.get(key, 0)
    return stats


def _merge(pieces: list[Piece], pieces_dir: Path, timeout: float):
    """All pieces in input order, once every process has written its own (polled: no collective over hours)."""
    from datasets import concatenate_datasets, load_dataset

    deadline = time.monotonic() + timeout
    waiting = [p for p in pieces if not (pieces_dir / f"{p.name}.parquet").exists()]
    if waiting:
        logger.info("Waiting for %d pieces from the other processes", len(waiting))
    while waiting:
        failed = sorted(pieces_dir.glob("failed-*.txt"))
        if failed:
            raise RuntimeError(f"Another process failed: {failed[0].read_text()[:2000]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} pieces still missing in {pieces_dir} (e.g. {waiting[0].name})")
        time.sleep(5)
        waiting = [p for p in waiting if not (pieces_dir / f"{p.name}.parquet").exists()]
    parts = [
        load_dataset("parquet", data_files=str(pieces_dir / f"{p.name}.parquet"), split="train", keep_in_memory=True)
        for p in pieces
    ]
    return concatenate_datasets(parts) if parts else None


def _piece_stats(pieces: list[Piece], pieces_dir: Path) -> Counter:
    total: Counter = Counter()
    for p in pieces:
        path = pieces_dir / f"{p.name}.json"
        if path.exists():
            total.update(json.loads(path.read_text()))
    return total
