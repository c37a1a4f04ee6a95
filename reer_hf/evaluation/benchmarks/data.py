"""Where the benchmark files are: a local folder, a Hub dataset of the same layout, or the copy bundled with the
package; and the readers every benchmark loader shares.

The folder is laid out as the benchmarks' own repositories ship their files::

    <root>/longbench_write.jsonl, longbench_write_en.jsonl, longwrite_ruler.jsonl     (THUDM/LongWriter evaluation/)
    <root>/hellobench/<task>.jsonl, checklist_weights.json                             (Quehry/HelloBench)
    <root>/writingbench/benchmark_all.jsonl, requirement_subsets.json                  (X-PLUG/WritingBench)

``root`` is the argument, else the environment variable ``REER_BENCHMARK_DATA``, else ``data/benchmarks`` (relative
to the working directory); a given ``root`` may also be a Hub dataset id (``owner/name``) holding the same layout, or
``builtin``: the LongBench-Write files bundled with the package (``reer_hf/assets/benchmarks``, Apache-2.0).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reer_hf.core.data import hub_id

__all__ = ["BUILTIN_DATA_DIR", "DATA_ENV", "DEFAULT_DATA_DIR", "benchmark_dir", "read_json", "read_jsonl"]

DATA_ENV = "REER_BENCHMARK_DATA"
DEFAULT_DATA_DIR = "data/benchmarks"
BUILTIN_DATA_DIR = Path(__file__).resolve().parents[2] / "assets" / "benchmarks"
LAYOUT = "layout: reer_hf/evaluation/benchmarks/data.py"


def benchmark_dir(root: str | os.PathLike | None = None) -> Path:
    """The benchmark data folder: ``root``, else ``$REER_BENCHMARK_DATA``, else ``data/benchmarks``.

    A given ``root`` (or ``$REER_BENCHMARK_DATA``) that is not a folder but looks like ``owner/name`` is taken as a
    Hub dataset repository with the same layout, fetched (or found in the cache, offline) with
    ``huggingface_hub.snapshot_download``."""
    spec = root if root is not None else os.environ.get(DATA_ENV)
    if spec == "builtin":
        return BUILTIN_DATA_DIR
    path = Path(spec if spec is not None else DEFAULT_DATA_DIR)
    if path.is_dir():
        return path
    hint = f"pass the folder or a Hub dataset id, or set ${DATA_ENV} ({LAYOUT})"
    if spec is not None and hub_id(str(spec)):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id=str(spec), repo_type="dataset"))
        except Exception as e:  # offline without a cached copy, no such repository, no access
            raise FileNotFoundError(
                f"{spec} is no folder, and fetching it as a Hub dataset failed ({type(e).__name__}: {e}); {hint}"
            ) from e
    raise FileNotFoundError(f"No benchmark data folder at {path}: {hint}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; a missing file names the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"No {path.name} in {path.parent} ({LAYOUT})")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path: Path) -> Any:
    """The value of a JSON file; a missing file names the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"No {path.name} in {path.parent} ({LAYOUT})")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
