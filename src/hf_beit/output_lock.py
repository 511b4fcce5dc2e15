"""One writer per output path, and clean-up after writers that died (used by :mod:`hf_beit.atomic_io`).

A writer of ``DIR/NAME`` holds an exclusive ``flock`` on ``DIR/.NAME.lock`` while it works; a second writer of the
same path gets :class:`OutputBusyError` at once. The kernel releases the lock when its holder dies, even by
``kill -9``, so the lock tells a live writer from a dead one without trusting pids. Temporaries are named
``.NAME.tmp-<pid>-<random>`` (and ``.NAME.old-<pid>-<random>`` for the previous output during a swap); a writer
that holds the lock removes those of processes that no longer run, and puts back a previous output that a killed
swap left aside. Where ``fcntl`` is missing (Windows) there is no lock and no clean-up.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["OutputBusyError", "remove_stale_temporaries", "temporary_prefix", "writer_lock"]

_PREVIOUS = "previous"


class OutputBusyError(FileExistsError):
    """Another live process is writing the same output path."""


def temporary_prefix(target: Path, kind: str = "tmp") -> str:
    """``.NAME.<kind>-<pid>-``: the prefix of this process's temporaries for ``target``."""
    return f".{target.name}.{kind}-{os.getpid()}-"


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _owner(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f"process {text}"
    return "another process"


@contextlib.contextmanager
def writer_lock(target: Path) -> Iterator[None]:
    """Hold the writer lock of ``target`` (``OutputBusyError`` if another process holds it); removed on exit."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path = _lock_path(target)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise OutputBusyError(
                f"{owner.capitalize()} is writing {str(target)!r} right now (lock {lock_path.name}); wait for it to "
                "finish or choose another output."
            ) from None
        if _same_file(fd, lock_path):  # else the previous holder removed the file between our open and lock
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove ``target``'s temporaries left by dead processes; call it while holding :func:`writer_lock`.

    A previous output found aside (``.NAME.old-*/previous``) is moved back to ``target`` when ``target`` is missing
    (the owner was killed between the two renames of a swap). Returns what was removed or restored.
    """
    if fcntl is None or not target.parent.is_dir():  # pragma: no cover
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)-")
    handled = []
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or _alive(int(match.group(2))):
            continue
        previous = entry / _PREVIOUS
        if match.group(1) == "old" and previous.exists() and not os.path.lexists(target):
            os.replace(previous, target)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        handled.append(entry)
    return handled
