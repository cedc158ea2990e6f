"""Process tuning for a serving process, applied where the server starts."""

from __future__ import annotations

import ctypes

MMAP_THRESHOLD = 2**20  # bytes; larger allocations are mapped from the OS and returned when freed
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def limit_blas_threads() -> None:
    """Numpy's BLAS threads fight torch's for the same cores: queries slow from ~10 ms to
    ~250 ms on two cores (scripts/bench.py). The scoring products are small, one thread is best.
    Torch gets one too: two made a lone query's model call faster in-process (7.7 ms, not
    11.7) but HTTP answers slower (21 ms at the median, not 15): their spinning worker took
    the core the server needed."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def return_large_allocations(threshold: int = MMAP_THRESHOLD) -> None:
    """glibc serves an allocation over its threshold with a fresh mapping and unmaps it when
    it is freed, but raises the threshold to the size of each such block freed (up to 32 MB),
    after which blocks of that size come from per-thread heaps that keep what is freed: request
    threads building 5-10 MB arrays per query held +450 MB more after a load test at 1.3M
    passages. A fixed threshold keeps per-query arrays returned to the OS (at the cost of page
    faults, about 1 ms a query there). A no-op where libc is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, threshold)


def tune_process() -> None:
    """What a process that answers queries sets once, before it loads an index."""
    limit_blas_threads()
    return_large_allocations()
