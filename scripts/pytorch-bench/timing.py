# Shared by the micro-benchmarks in this folder: the median time of a callable, milliseconds.
import time


def bench(f, reps=20):
    """Median of `reps` timed calls of `f` after 3 warm-up calls, in milliseconds."""
    for _ in range(3):
        f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e3
