"""glibc's malloc thresholds in the worker processes, for the length of one stage.

Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``: freed memory goes back to the
system at once, which keeps a worker's unmanaged memory low. Setting that variable also fixes
glibc's mmap threshold at 128 KiB, so every array larger than that is mapped fresh, faulted in
page by page and unmapped when freed. A stage that makes and drops partition-sized arrays all
the time (the feature shuffles and kernels) then spends as much time in the kernel as in its own
code (docs/benchmarks.md, issue 17: 56 s of system time in an 80 s run).

:func:`worker_malloc` sets the two thresholds with ``mallopt`` in every worker for the length of
a ``with`` block, so freed memory stays in the heap for reuse, and on leaving it puts back what
the worker's environment asked for and gives the kept memory back (``malloc_trim``). Only that
stage holds the extra memory; a worker restarted meanwhile starts with its environment's
settings. Where the C library is not glibc this does nothing (and says so in its result).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dask.utils import parse_bytes

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's values when the environment sets none (the mmap threshold then adapts upwards)
GLIBC_TRIM_THRESHOLD = 128 * 1024
GLIBC_MMAP_THRESHOLD = 128 * 1024


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def set_thresholds(trim: int | None, mmap: int | None, *, release: bool = False) -> bool:
    """In this process: glibc's trim and mmap thresholds (None: the environment's, else glibc's).

    ``release`` also gives free heap memory back to the system (``malloc_trim(0)``). Returns
    False where there is no glibc (nothing was changed).
    """
    libc = _libc()
    if libc is None:
        return False
    if trim is None:
        trim = int(os.environ.get("MALLOC_TRIM_THRESHOLD_", GLIBC_TRIM_THRESHOLD))
    if mmap is None:
        mmap = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", GLIBC_MMAP_THRESHOLD))
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap)))
    ok = bool(libc.mallopt(M_TRIM_THRESHOLD, int(trim))) and ok
    if release:
        libc.malloc_trim(0)
    return ok


@contextlib.contextmanager
def worker_malloc(
    client: Client, trim: str | int | None, mmap: str | int | None = None
) -> Iterator[dict[str, bool]]:
    """Set the workers' malloc thresholds for the block; put back and release on leaving.

    Parameters
    ----------
    client : distributed.Client
        Its workers are set (those present on entering; one that joins later keeps its own).
    trim : str or int, optional
        Free memory at the top of the heap kept for reuse (e.g. ``"512MiB"``); None: leave the
        workers as they are (the block then changes nothing).
    mmap : str or int, optional
        Allocations above this size are mapped; default half of ``trim``.

    Yields
    ------
    dict
        Worker address -> whether the thresholds were set (False: not glibc).
    """
    if trim is None:
        yield {}
        return
    trim_b = int(parse_bytes(trim)) if isinstance(trim, str) else int(trim)
    mmap_b = trim_b // 2 if mmap is None else (
        int(parse_bytes(mmap)) if isinstance(mmap, str) else int(mmap)
    )  # fmt: skip
    done = client.run(set_thresholds, trim_b, mmap_b)
    log.debug("malloc thresholds trim=%d mmap=%d on %s", trim_b, mmap_b, done)
    try:
        yield done
    finally:
        with contextlib.suppress(Exception):  # a closed cluster has nothing to put back
            client.run(set_thresholds, None, None, release=True)
