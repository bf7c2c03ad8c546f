"""What the gateway keeps of files it read, and when it reads them again (gateway/filewatch.py).

A start's kernelspec and pod template are kept between starts only while nothing under their
folders changes: every kind of change an operator or Kubernetes makes to such a folder (an edit,
a new or removed file, a mode, a rename, a ConfigMap's update, the folder appearing where there
was none) must make the next read read again, and reading alone must not.  Where inotify cannot
be had, every read reads.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.filewatch import FolderWatch, WatchedReads


@pytest.fixture
async def watch() -> AsyncIterator[FolderWatch]:
    folder_watch = FolderWatch()
    assert folder_watch.available, "inotify is what the gateway's kernelspec reads rely on, on Linux"
    yield folder_watch
    await folder_watch.stop()


def _changes(folder: Path) -> dict[str, Callable[[], object]]:
    target = folder / "kernel.json"
    return {
        "an edit": lambda: target.write_text('{"display_name": "edited"}'),
        "a new file": lambda: (folder / "logo-64x64.png").write_bytes(b"png"),
        "a removed file": target.unlink,
        "a mode": lambda: target.chmod(0o600),
        "a rename": lambda: target.rename(folder / "kernel.json.old"),
        "a new folder": lambda: (folder / "scripts").mkdir(),
    }


@pytest.mark.parametrize("change", list(_changes(Path())))
async def test_each_kind_of_change_in_a_watched_folder_moves_the_generation(
        watch: FolderWatch, tmp_path: Path, change: str) -> None:
    folder = tmp_path / "python_kubernetes"
    folder.mkdir()
    (folder / "kernel.json").write_text("{}")
    assert watch.watch([folder])
    before = watch.generation()
    _changes(folder)[change]()
    assert watch.generation() != before


async def test_reading_a_watched_folder_changes_nothing(watch: FolderWatch, tmp_path: Path) -> None:
    (tmp_path / "kernel.json").write_text("{}")
    assert watch.watch([tmp_path])
    before = watch.generation()
    (tmp_path / "kernel.json").read_text()
    os.listdir(tmp_path)
    assert watch.generation() == before


async def test_a_folder_that_does_not_exist_yet_is_watched_through_the_one_above(
        watch: FolderWatch, tmp_path: Path) -> None:
    assert watch.watch([tmp_path / "kernels" / "python_kubernetes"])
    before = watch.generation()
    (tmp_path / "kernels").mkdir()
    assert watch.generation() != before


async def test_a_configmap_update_moves_the_generation(watch: FolderWatch, tmp_path: Path) -> None:
    # As the kubelet updates a ConfigMap volume: the files are links through ..data, which is swapped by a rename.
    old, new = tmp_path / "..2026_12_07_old", tmp_path / "..2026_12_07_new"
    for version, text in ((old, "first"), (new, "second")):
        version.mkdir()
        (version / "kernel.json").write_text(text)
    (tmp_path / "..data").symlink_to(old.name)
    (tmp_path / "kernel.json").symlink_to("..data/kernel.json")
    assert watch.watch([tmp_path])
    before = watch.generation()
    (tmp_path / "..data_tmp").symlink_to(new.name)
    os.rename(tmp_path / "..data_tmp", tmp_path / "..data")
    assert watch.generation() != before
    assert (tmp_path / "kernel.json").read_text() == "second"


async def test_a_stopped_watch_watches_nothing(tmp_path: Path) -> None:
    folder_watch = FolderWatch()
    await folder_watch.stop()
    assert not folder_watch.watch([tmp_path])
    assert not folder_watch.available


class _Reader:
    """Reads ``kernel.json`` in a folder, counting its reads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reads = 0

    def __call__(self) -> str:
        self.reads += 1
        return (self.folder / "kernel.json").read_text()


async def test_a_read_is_kept_until_its_folder_changes(watch: FolderWatch, tmp_path: Path) -> None:
    (tmp_path / "kernel.json").write_text("first")
    reads: WatchedReads[str, str] = WatchedReads(watch)
    reader = _Reader(tmp_path)
    assert [await reads.read("spec", [tmp_path], reader) for _ in range(3)] == ["first"] * 3
    assert reader.reads == 1
    (tmp_path / "kernel.json").write_text("second")
    assert await reads.read("spec", [tmp_path], reader) == "second"
    assert await reads.read("spec", [tmp_path], reader) == "second"
    assert reader.reads == 2


async def test_a_change_while_reading_is_not_kept(watch: FolderWatch, tmp_path: Path) -> None:
    (tmp_path / "kernel.json").write_text("first")
    reads: WatchedReads[str, str] = WatchedReads(watch)
    reader = _Reader(tmp_path)

    def read_then_edit() -> str:
        text = reader()
        (tmp_path / "kernel.json").write_text("second")  # the operator's edit lands right after the read
        return text

    assert await reads.read("spec", [tmp_path], read_then_edit) == "first"
    assert await reads.read("spec", [tmp_path], reader) == "second"


async def test_a_read_that_failed_is_not_kept(watch: FolderWatch, tmp_path: Path) -> None:
    reads: WatchedReads[str, str] = WatchedReads(watch)
    reader = _Reader(tmp_path)
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            await reads.read("spec", [tmp_path], reader)
    assert reader.reads == 2
    (tmp_path / "kernel.json").write_text("there now")
    assert await reads.read("spec", [tmp_path], reader) == "there now"


@pytest.mark.parametrize("which", ["none", "stopped"])
async def test_without_a_watch_every_read_reads(tmp_path: Path, which: str) -> None:
    folder_watch = None
    if which == "stopped":
        folder_watch = FolderWatch()
        await folder_watch.stop()
    (tmp_path / "kernel.json").write_text("first")
    reads: WatchedReads[str, str] = WatchedReads(folder_watch)
    reader = _Reader(tmp_path)
    for _ in range(3):
        assert await reads.read("spec", [tmp_path], reader) == "first"
    assert reader.reads == 3
