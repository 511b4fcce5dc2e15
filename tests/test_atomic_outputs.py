"""Issue 13, atomic outputs: clean-up after ``kill -9``, one writer per path, no silent replacement, the umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from process_helpers import child_env

from hf_beit.atomic_io import OutputBusyError, atomic_file, atomic_output_dir, atomic_write_text

_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from hf_beit.atomic_io import atomic_output_dir
    with atomic_output_dir(sys.argv[1]) as tmp:
        (tmp / "weights.bin").write_bytes(b"x" * 1_000_000)
        print(tmp, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def _hidden(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_writer(tmp_path):
    target = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], capture_output=True, text=True,
                            env=child_env(), timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL
    left = _hidden(tmp_path, "out")
    assert any(name.startswith(".out.tmp-") for name in left) and not target.exists()  # what kill -9 leaves
    with atomic_output_dir(target) as tmp:
        (tmp / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "new"
    assert _hidden(tmp_path, "out") == []  # the dead writer's folder and lock file are gone


def test_a_previous_output_set_aside_by_a_killed_swap_is_restored(tmp_path):
    aside = tmp_path / f".out.old-{_dead_pid()}-abc" / "previous"
    aside.mkdir(parents=True)
    (aside / "model.safetensors").write_text("the user's model")  # killed between the two renames of a swap
    with pytest.raises(FileExistsError, match="--overwrite"), atomic_output_dir(tmp_path / "out"):
        pass  # restored first, so the output is no longer new: it is protected like any existing output
    assert (tmp_path / "out" / "model.safetensors").read_text() == "the user's model"
    assert _hidden(tmp_path, "out") == []


def test_temporaries_of_live_processes_are_left_alone(tmp_path):
    live = tmp_path / f".out.tmp-{os.getppid()}-xyz"  # our parent is alive
    live.mkdir()
    with atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("1")
    assert live.is_dir()


def test_a_second_writer_of_the_same_path_fails_at_once(tmp_path):
    target = tmp_path / "out"
    inside, release = threading.Event(), threading.Event()

    def first():
        with atomic_output_dir(target) as tmp:
            (tmp / "first.txt").write_text("1")
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(30)
    try:
        busy = pytest.raises(OutputBusyError, match=rf"Process {os.getpid()} is writing .*out.* right now")
        with busy, atomic_output_dir(target, overwrite=True):
            pass
        with pytest.raises(OutputBusyError):
            atomic_write_text(target, "x")
    finally:
        release.set()
        thread.join(30)
    assert sorted(p.name for p in target.iterdir()) == ["first.txt"]


def test_a_folder_created_meanwhile_is_not_replaced_without_overwrite(tmp_path):
    target = tmp_path / "out"
    refused = pytest.raises(FileExistsError, match="created by someone else while this output was being written")
    with refused, atomic_output_dir(target) as tmp:
        (tmp / "mine.txt").write_text("mine")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")  # another writer finished first
    assert sorted(p.name for p in target.iterdir()) == ["theirs.txt"]
    assert _hidden(tmp_path, "out") == []


def test_outputs_get_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        with atomic_output_dir(tmp_path / "folder") as tmp:
            (tmp / "a.txt").write_text("1")
            (tmp / "sub").mkdir(mode=0o700)
            fd = os.open(tmp / "sub" / "weights.safetensors", os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors does
            os.close(fd)
        with atomic_file(tmp_path / "file.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "folder" / "sub").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "folder" / "sub" / "weights.safetensors").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "folder" / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "file.json").stat().st_mode & 0o777 == 0o640
