"""The evaluation run's files: append-only JSON-lines logs that survive a crash, and the guard that keeps outputs made
with other settings out of one folder. Both are what makes every stage resumable."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["JsonlLog", "check_meta"]


class JsonlLog:
    """An append-only JSON-lines file, flushed and synced after each append, so a crash loses at most the line being
    written; :meth:`read` drops such a torn last line (and rewrites the file without it)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = []
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                if n != len(lines) - 1:
                    raise ValueError(f"{self.path}: line {n + 1} is not JSON; the file is damaged") from None
                logger.warning("%s: dropping a torn last line (an interrupted write); it will be redone", self.path)
                self._rewrite(records)
        return records

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        tmp.replace(self.path)


def check_meta(path: Path, meta: dict[str, Any], overwrite: bool, what: str) -> None:
    """Write ``meta`` (the settings that made the files next to it) to ``path``, refusing when the file there holds
    other settings: outputs made with other settings never mix in one file."""
    if path.exists() and not overwrite:
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != meta:
            changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise ValueError(
                f"{path.parent} holds {what} made with other settings (changed: {changed}); use another output_dir "
                f"or pass --overwrite_output_dir to start over"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
