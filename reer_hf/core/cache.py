"""Where reer-hf keeps what it derives or downloads (the demo model, pinned upstream files), and how it writes files
that a reader or a resumed run may meet half-written: no heavy imports, so a command that only needs a path stays
fast."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "cache_root"]


def cache_root() -> Path:
    """``$REER_HF_HOME``, else ``$XDG_CACHE_HOME/reer_hf``, else ``~/.cache/reer_hf``."""
    if os.environ.get("REER_HF_HOME"):
        return Path(os.environ["REER_HF_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reer_hf"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` into a temporary file beside it, then rename it in, so a reader (or a
    resumed run) never sees a partial file; the temporary file goes if ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
