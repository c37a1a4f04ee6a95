"""Where reer-hf keeps what it derives or downloads (the demo model, pinned upstream files), and how it writes files
that a reader or a resumed run may meet half-written: no heavy imports, so a command that only needs a path stays
fast."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

__all__ = ["atomic_write", "build_once", "cache_root"]

#: The file a folder built by ``build_once`` holds once it is complete.
COMPLETE_MARKER = ".complete"


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


def build_once(target: str | os.PathLike, build: Callable[[Path], object], note: str = "") -> Path:
    """The folder ``target``, built by ``build(tmp)`` the first time and reused after; safe under concurrent first use.

    A file lock serialises builders (the second process waits, then finds the folder complete); ``build`` writes a
    temporary folder beside the target, which is renamed into place with its completion marker, so a reader never
    sees a half-written folder and a crash mid-build leaves nothing that looks complete. A ``target`` that is a link
    is built where it points. ``note`` goes into the marker (what the folder was built from).
    """
    target = Path(target)
    if (target / COMPLETE_MARKER).is_file():
        return target
    if target.is_symlink():  # a link to a folder not built yet: build it there, where the link points
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / COMPLETE_MARKER).is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            build(tmp)
            (tmp / COMPLETE_MARKER).write_text(note)
            if target.exists():  # an incomplete leftover of a crashed build
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
