"""One BLAS thread for the classifier's process, set when the classifier is built (never at import).

The encoder multiplies a few dozen token rows by matrices of a few MB: two BLAS threads gain nothing on
such small products, and on a busy 2-core machine a second (spinning) thread turns p95 latency from ~5 ms
into 50–150 ms (measured, docs/routing.md). ``OPENBLAS_NUM_THREADS`` is read only when numpy loads, so the
setting is applied through the OpenBLAS library numpy ships (``numpy.libs``) — or through ``threadpoolctl``
when that is installed. It is process-wide: the gateway does no other large linear algebra.
"""

from __future__ import annotations

import ctypes
import pathlib
from typing import Final

import numpy as np

_SETTERS: Final = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _bundled_openblas() -> list[pathlib.Path]:
    libs = pathlib.Path(np.__file__).resolve().parent.parent / "numpy.libs"
    return sorted(libs.glob("lib*openblas*.so*")) if libs.is_dir() else []


def limit_blas_threads(threads: int = 1) -> bool:
    """Limit numpy's BLAS to ``threads`` threads. Returns False when no known BLAS was found."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        threadpool_limits(limits=threads, user_api="blas")
        return True
    for path in _bundled_openblas():
        lib = ctypes.CDLL(str(path))  # already loaded by numpy: dlopen returns the same handle
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                setter(threads)
                return True
    return False
