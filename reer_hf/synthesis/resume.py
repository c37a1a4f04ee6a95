"""What ties a run's pieces to the run that wrote them: the exact input rows and the options that decide what a run
writes. A restart resumes the pieces only when both are the same, and says which differs otherwise.

The rows are identified by a digest of every column of every row as the run loaded them (types included), not by a
normalised key: a dataset corrected in its casing, its spacing or any column the rows carry is other data, whose rows
the old pieces do not hold. (Dedup may still match near-duplicates by a normalised key; that decides which rows are
searched, not which run the pieces belong to.)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from reer_hf.core.options import semantic_options

__all__ = ["MARKER", "data_digest", "fingerprint", "prepare"]

#: The file in ``pieces/`` that names the run its pieces belong to.
MARKER = "run.json"


def data_digest(ds) -> str:
    """A sha256 of the rows exactly as loaded: the features, then every row's values, in order (read as Arrow stores
    them, so an image or audio column hashes its bytes, not a decoded object)."""
    digest = hashlib.sha256(json.dumps(ds.features.to_dict(), sort_keys=True).encode())
    for batch in ds.with_format("arrow").iter(batch_size=1024):
        digest.update(json.dumps(batch.to_pydict(), sort_keys=True, ensure_ascii=False, default=repr).encode())
    return digest.hexdigest()


def _options(configs: tuple) -> dict[str, Any]:
    """The options that decide what a run writes (all but the ``resume_safe`` ones), as JSON would keep them."""
    return json.loads(json.dumps(dict(sorted(semantic_options(*configs).items())), default=str))


def fingerprint(configs: tuple, data_hash: str) -> str:
    """What a piece depends on: the options that decide what a run writes and the rows themselves."""
    return hashlib.sha256(json.dumps([_options(configs), data_hash], sort_keys=True).encode()).hexdigest()[:16]


def _difference(marker: dict, options: dict[str, Any], data_hash: str) -> str:
    """Why the pieces of ``marker``'s run are not this run's, in words."""
    reasons = []
    if marker.get("data_digest") not in (None, data_hash):
        reasons.append(
            f"the input rows differ from those its pieces were searched from (data digest "
            f"{marker['data_digest'][:16]}, now {data_hash[:16]}: another file, revision, order, or a corrected "
            "text or column)"
        )
    old = marker.get("options")
    if isinstance(old, dict):
        changed = sorted(k for k in old.keys() | options.keys() if old.get(k, "<unset>") != options.get(k, "<unset>"))
        if changed:
            shown = "; ".join(f"{k}: {old.get(k, '<unset>')!r} -> {options.get(k, '<unset>')!r}" for k in changed[:8])
            more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            reasons.append(f"options that decide what a run writes changed ({shown}{more})")
    return "; ".join(reasons) or "its settings or data differ (written by an older version, which kept no details)"


def prepare(pieces_dir: Path, configs: tuple, data_hash: str, overwrite: bool) -> str:
    """Start or resume the run whose pieces live in ``pieces_dir`` (the main process, before any other reads it):
    clear it for ``overwrite``, drop stale failure markers, and refuse, with the reason, pieces of another run.
    Returns the run's fingerprint."""
    print_ = fingerprint(configs, data_hash)
    marker = pieces_dir / MARKER
    if overwrite and pieces_dir.exists():
        shutil.rmtree(pieces_dir)
    for stale in pieces_dir.glob("failed-*.txt"):  # left by a crashed process of an earlier launch
        stale.unlink()
    options = _options(configs)
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous.get("fingerprint") != print_:
            raise ValueError(
                f"{pieces_dir} holds pieces of another run: {_difference(previous, options, data_hash)}. Resuming "
                "would mix them into this run's output; use another --output_dir, or --overwrite_output_dir to start "
                "over"
            )
        return print_
    pieces_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": print_, "data_digest": data_hash, "options": options}, indent=1))
    return print_
