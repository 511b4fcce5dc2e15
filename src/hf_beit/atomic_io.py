"""Atomic output: files and folders appear complete or not at all (interrupts leave no half-written output).

* Work happens under a temporary name beside the target, renamed into place at the end; on any error (or
  ``KeyboardInterrupt``) the temporary is removed.
* One writer per target: a second process writing the same path fails at once with ``OutputBusyError``, and a
  folder that did not exist (or was empty) when writing began is never replaced without ``overwrite=True``: if
  another writer created it meanwhile, the rename fails with ``FileExistsError`` and the other output is kept.
* Temporaries of writers that were killed (``kill -9``, power loss) are removed by the next writer of the same
  target (:mod:`hf_beit.output_lock`).
* Outputs get the permissions of any new file or folder (``0o666`` / ``0o777`` minus the umask), not the private
  ``0600`` / ``0700`` of the temporary names they are written under.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .output_lock import OutputBusyError, remove_stale_temporaries, temporary_prefix, writer_lock

__all__ = ["OutputBusyError", "atomic_file", "atomic_output_dir", "atomic_save_image", "atomic_write_text",
           "check_output_folder"]


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Create the parent folder, hold the writer lock and clear dead writers' temporaries."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(target):
        remove_stale_temporaries(target)
        yield


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it is renamed to ``path``, else removed."""
    target = Path(path)
    with _writing(target):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temporary_prefix(target), suffix=target.suffix)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(folder: Path) -> None:
    """Give ``folder`` and everything in it the umask's permissions: the temporary folder starts 0700, and some
    writers (safetensors through transformers) create their files 0600."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse what :func:`atomic_output_dir` would refuse (a file, or a non-empty folder without ``overwrite``), so a
    command can fail before its slow work."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"Output {str(target)!r} exists and is not a folder.")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"Output folder {str(target)!r} is not empty; pass --overwrite to replace it.")


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``, on any error it is removed.

    An existing non-empty ``path`` is only replaced with ``overwrite=True``.
    """
    target = Path(path)
    check_output_folder(target, overwrite)
    with _writing(target):
        check_output_folder(target, overwrite)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=temporary_prefix(target)))
        try:
            yield tmp
            _apply_umask(tmp)
            if overwrite:
                _swap_into_place(tmp, target)
            else:
                _rename_new(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _rename_new(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, which must not exist or be an empty folder (checked by the rename itself)."""
    try:
        os.rename(new, target)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(
                f"Output {str(target)!r} was created by someone else while this output was being written; it was "
                "kept and nothing was replaced. Pass --overwrite to replace it."
            ) from error
        raise


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is restored if the swap fails half-way."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=temporary_prefix(target, "old"))) / "previous"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    finally:
        shutil.rmtree(old.parent, ignore_errors=True)


def atomic_save_image(image, path: str | os.PathLike) -> Path:
    """Save a PIL image (format from the suffix) atomically; returns ``path``."""
    with atomic_file(path) as tmp:
        image.save(tmp)
    return Path(path)
