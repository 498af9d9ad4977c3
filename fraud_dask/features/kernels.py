"""numba kernels over one entity-grouped, time-sorted batch.

Every kernel sees flat arrays of a batch sorted by (entity, ts, tx_id); ``starts`` holds the
first row of each entity group and the batch length last (``len(starts) == groups + 1``).
A window is a half-open row range ``[lo[i], hi[i])`` per row ``i``; within a group both ends
only move forward, so aggregates slide: rows enter at ``hi`` and leave at ``lo``, and the state
is reset whenever the window becomes empty (which also stops rounding error from accumulating
across gaps). Sums use Neumaier compensation, variance uses Welford's update and downdate, min and
max a monotonic deque, distinct counts a count table; label windows with per-row label times use
a Fenwick tree of integers, so they are exact.

Compiled functions are cached on disk (``cache=True``): the first call in a fresh environment
compiles (a few seconds), later processes load the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: width of an unbounded window ("all history"), safe against int64 overflow of ts - width
UNBOUNDED = np.int64(2**62)


@njit(cache=True)
def window_bounds(starts, ts, width, offset, include_current):  # pragma: no cover - numba
    """Rows ``[lo, hi)`` of each row's window ``(t - offset - width, t - offset]``.

    With ``offset == 0`` the right edge is the row itself (``hi = i + 1``, or ``i`` when the
    current row is excluded): later rows of the same timestamp are not yet seen.
    """
    n = ts.shape[0]
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        a = s
        b = s
        for i in range(s, e):
            right = ts[i] - offset
            left = right - width
            while a < e and ts[a] <= left:
                a += 1
            if offset == 0:
                b = i + 1 if include_current else i
            else:
                while b < e and ts[b] <= right:
                    b += 1
            lo[i] = a
            hi[i] = b if b > a else a
    return lo, hi


@njit(cache=True, inline="always")
def _neumaier(s, c, v):  # pragma: no cover - numba
    """Add ``v`` to the sum ``s`` with its running compensation ``c`` (Neumaier); the sum is
    ``s + c``."""
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@njit(cache=True)
def window_moments(lo, hi, x):  # pragma: no cover - numba
    """Sum (compensated), mean and sample standard deviation of ``x`` over each window."""
    n = lo.shape[0]
    total = np.empty(n, np.float64)
    mean = np.empty(n, np.float64)
    std = np.empty(n, np.float64)
    a = 0
    b = 0
    s = 0.0
    c = 0.0
    m = 0.0
    m2 = 0.0
    k = 0
    for i in range(n):
        if lo[i] >= b:  # the new window shares no row with the state: start afresh
            a = lo[i]
            b = lo[i]
            s = 0.0
            c = 0.0
            m = 0.0
            m2 = 0.0
            k = 0
        while b < hi[i]:
            v = x[b]
            s, c = _neumaier(s, c, v)
            k += 1
            d = v - m
            m += d / k
            m2 += d * (v - m)
            b += 1
        while a < lo[i]:
            v = -x[a]
            s, c = _neumaier(s, c, v)
            k -= 1
            if k == 0:
                m = 0.0
                m2 = 0.0
                s = 0.0
                c = 0.0
            else:
                d = -v - m
                m -= d / k
                m2 -= d * (-v - m)
                if m2 < 0.0:
                    m2 = 0.0
            a += 1
        total[i] = s + c
        if k > 0:
            mean[i] = (s + c) / k
        else:
            mean[i] = np.nan
        if k > 1:
            std[i] = np.sqrt(m2 / (k - 1))
        else:
            std[i] = np.nan
    return total, mean, std


@njit(cache=True)
def window_extreme(lo, hi, x, largest):  # pragma: no cover - numba
    """Minimum (or maximum with ``largest``) of ``x`` over each window; NaN when empty."""
    n = lo.shape[0]
    out = np.empty(n, np.float64)
    dq = np.empty(max(n, 1), np.int64)
    head = 0
    tail = 0
    b = 0
    for i in range(n):
        if lo[i] >= b:
            head = 0
            tail = 0
            b = lo[i]
        while b < hi[i]:
            v = x[b]
            if largest:
                while tail > head and x[dq[tail - 1]] <= v:
                    tail -= 1
            else:
                while tail > head and x[dq[tail - 1]] >= v:
                    tail -= 1
            dq[tail] = b
            tail += 1
            b += 1
        while tail > head and dq[head] < lo[i]:
            head += 1
        if tail > head and hi[i] > lo[i]:
            out[i] = x[dq[head]]
        else:
            out[i] = np.nan
    return out


@njit(cache=True)
def window_distinct(lo, hi, codes, n_codes):  # pragma: no cover - numba
    """Number of distinct non-negative ``codes`` over each window (negative codes: missing)."""
    n = lo.shape[0]
    out = np.empty(n, np.float64)
    seen = np.zeros(max(n_codes, 1), np.int64)
    distinct = 0
    a = 0
    b = 0
    for i in range(n):
        if lo[i] >= b:
            for j in range(a, b):
                if codes[j] >= 0:
                    seen[codes[j]] = 0
            distinct = 0
            a = lo[i]
            b = lo[i]
        while b < hi[i]:
            v = codes[b]
            if v >= 0:
                if seen[v] == 0:
                    distinct += 1
                seen[v] += 1
            b += 1
        while a < lo[i]:
            v = codes[a]
            if v >= 0:
                seen[v] -= 1
                if seen[v] == 0:
                    distinct -= 1
            a += 1
        out[i] = distinct
    return out


@njit(cache=True)
def known_label_window(starts, ts, lo, known, y):  # pragma: no cover - numba
    """Rows and frauds in ``[lo[i], i)`` whose label is known at ``ts[i]`` (``known <= ts[i]``).

    ``known`` is each row's label time (int64 ns; missing labels hold int64 max). Per group the
    rows are inserted into Fenwick trees in label-time order while the query time advances, and
    each query sums the positions of its window: O(n log n), exact integer counts.
    """
    n = ts.shape[0]
    count = np.zeros(n, np.float64)
    frauds = np.zeros(n, np.float64)
    tree_n = np.zeros(n + 1, np.int64)
    tree_y = np.zeros(n + 1, np.int64)
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        size = e - s
        order = np.argsort(known[s:e], kind="mergesort")
        for j in range(size + 1):
            tree_n[j] = 0
            tree_y[j] = 0
        p = 0
        for i in range(s, e):
            while p < size and known[s + order[p]] <= ts[i]:
                pos = order[p] + 1
                yy = y[s + order[p]]
                while pos <= size:
                    tree_n[pos] += 1
                    tree_y[pos] += yy
                    pos += pos & (-pos)
                p += 1
            # prefix(i - s) - prefix(lo - s): positions lo..i-1 (1-based lo+1..i)
            cn = 0
            cy = 0
            pos = i - s
            while pos > 0:
                cn += tree_n[pos]
                cy += tree_y[pos]
                pos -= pos & (-pos)
            pos = lo[i] - s
            while pos > 0:
                cn -= tree_n[pos]
                cy -= tree_y[pos]
                pos -= pos & (-pos)
            count[i] = cn
            frauds[i] = cy
    return count, frauds


@njit(cache=True)
def window_int_sum(lo, hi, y):  # pragma: no cover - numba
    """Exact sum of the integer array ``y`` over each window (prefix sums of integers)."""
    n = lo.shape[0]
    prefix = np.zeros(n + 1, np.int64)
    for i in range(n):
        prefix[i + 1] = prefix[i] + y[i]
    out = np.empty(n, np.float64)
    for i in range(n):
        out[i] = prefix[hi[i]] - prefix[lo[i]]
    return out


@njit(cache=True)
def previous_gap(starts, ts):  # pragma: no cover - numba
    """Seconds since the previous row of the same group; NaN for a group's first row."""
    n = ts.shape[0]
    out = np.empty(n, np.float64)
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        for i in range(s, e):
            if i == s:
                out[i] = np.nan
            else:
                out[i] = (ts[i] - ts[i - 1]) / 1e9
    return out


@njit(cache=True)
def window_median(lo, hi, x):  # pragma: no cover - numba
    """Median of the non-missing ``x`` over each window; NaN when it holds none.

    The window's values are kept sorted as rows enter (insertion) and leave (binary search).
    """
    n = lo.shape[0]
    out = np.empty(n, np.float64)
    longest = 0
    for i in range(n):
        if hi[i] - lo[i] > longest:
            longest = hi[i] - lo[i]
    buf = np.empty(max(longest, 1), np.float64)
    k = 0
    a = 0
    b = 0
    for i in range(n):
        if lo[i] >= b:
            k = 0
            a = lo[i]
            b = lo[i]
        # leaving rows first (all of them entered before): at most the window's rows held
        while a < lo[i]:
            v = x[a]
            if v == v:
                p = np.searchsorted(buf[:k], v)
                for j in range(p, k - 1):
                    buf[j] = buf[j + 1]
                k -= 1
            a += 1
        while b < hi[i]:
            v = x[b]
            if v == v:
                p = k
                while p > 0 and buf[p - 1] > v:
                    buf[p] = buf[p - 1]
                    p -= 1
                buf[p] = v
                k += 1
            b += 1
        if k == 0:
            out[i] = np.nan
        elif k % 2 == 1:
            out[i] = buf[k // 2]
        else:
            out[i] = (buf[k // 2 - 1] + buf[k // 2]) / 2.0
    return out


@njit(cache=True)
def window_count_above(lo, hi, x, threshold):  # pragma: no cover - numba
    """Rows ``j`` of each window ``[lo[i], hi[i])`` with ``x[j] > threshold[i]``."""
    n = lo.shape[0]
    out = np.zeros(n, np.float64)
    for i in range(n):
        c = 0
        for j in range(lo[i], hi[i]):
            if x[j] > threshold[i]:
                c += 1
        out[i] = c
    return out


@njit(cache=True)
def fraud_history_rows(lo, hi, y):  # pragma: no cover - numba
    """The known-fraud history of each row whose known rows are ``[lo[i], hi[i])``.

    Returns the row of the earliest and of the latest fraud in the window (-1 when none), the
    fraud share of the rows from the earliest fraud on (NaN when none) and the label of the
    window's last row (NaN when the window is empty). O(n): prefix counts and the nearest
    fraud at or after / at or before each row.
    """
    n = lo.shape[0]
    prefix = np.zeros(n + 1, np.int64)
    after = np.empty(n + 1, np.int64)
    before = np.empty(n, np.int64)
    for i in range(n):
        prefix[i + 1] = prefix[i] + (1 if y[i] > 0 else 0)
    nearest = n
    after[n] = n
    for i in range(n - 1, -1, -1):
        if y[i] > 0:
            nearest = i
        after[i] = nearest
    nearest = -1
    for i in range(n):
        if y[i] > 0:
            nearest = i
        before[i] = nearest
    first = np.full(n, -1, np.int64)
    last = np.full(n, -1, np.int64)
    share = np.full(n, np.nan)
    last_label = np.full(n, np.nan)
    for i in range(n):
        a = lo[i]
        b = hi[i]
        if b <= a:
            continue
        last_label[i] = 1.0 if y[b - 1] > 0 else 0.0
        f = after[a]
        if f < b:
            first[i] = f
            last[i] = before[b - 1]
            share[i] = (prefix[b] - prefix[f]) / (b - f)
    return first, last, share, last_label


@njit(cache=True)
def fraud_history_known(ts, lo, known, y):  # pragma: no cover - numba
    """:func:`fraud_history_rows` over the rows of ``[lo[i], i)`` whose label is known at
    ``ts[i]`` (``known <= ts[i]``): one scan of each row's window, O(n x window rows)."""
    n = ts.shape[0]
    first = np.full(n, -1, np.int64)
    last = np.full(n, -1, np.int64)
    share = np.full(n, np.nan)
    last_label = np.full(n, np.nan)
    for i in range(n):
        f = -1
        latest = -1
        count = 0
        frauds = 0
        for j in range(lo[i], i):
            if known[j] > ts[i]:
                continue
            latest = j
            if y[j] > 0:
                if f < 0:
                    f = j
                last[i] = j
                frauds += 1
            if f >= 0:
                count += 1
        if latest >= 0:
            last_label[i] = 1.0 if y[latest] > 0 else 0.0
        if f >= 0:
            first[i] = f
            share[i] = frauds / count
    return first, last, share, last_label


# -- one event against its entity's kept rows (the online state) ---------------------------------
@njit(cache=True)
def _rows_at_or_before(ts, p, right):  # pragma: no cover - numba
    """Rows among ``ts[:p]`` (sorted) with ``ts <= right`` (``searchsorted(..., "right")``)."""
    a = 0
    b = p
    while a < b:
        m = (a + b) >> 1
        if ts[m] <= right:
            a = m + 1
        else:
            b = m
    return a


@njit(cache=True)
def event_window(ts, x, p, t, width, offset, amount, current, extremes):  # pragma: no cover
    """One event's window ``(t - offset - width, t - offset]`` over the kept rows ``[0, p)``.

    The single-event counterpart of :func:`window_bounds` with :func:`window_moments` and
    :func:`window_extreme`: ``width`` is :data:`UNBOUNDED` for all history; ``current`` adds
    the event's own ``amount`` (a window ending at the event). Returns ``(lo, hi, count,
    total, mean, std, lowest, highest)``: the rows ``[lo, hi)`` of the window, the count with
    the event, the sum (Neumaier-compensated), mean and sample standard deviation of the
    amounts (NaN below 1 and 2 values), and their minimum and maximum (NaN when empty; computed
    only when ``extremes``).
    """
    right = t - offset
    lo = _rows_at_or_before(ts, p, right - width)
    hi = p if offset == 0 else _rows_at_or_before(ts, p, right)
    if hi < lo:
        hi = lo
    k = hi - lo + (1 if current else 0)
    s = 0.0
    c = 0.0
    for i in range(lo, hi + (1 if current else 0)):
        s, c = _neumaier(s, c, x[i] if i < hi else amount)
    total = s + c
    mean = np.nan
    std = np.nan
    if k > 0:
        mean = total / k
    if k > 1:
        q = 0.0
        for i in range(lo, hi):
            d = x[i] - mean
            q += d * d
        if current:
            d = amount - mean
            q += d * d
        std = np.sqrt(q / (k - 1))
    lowest = np.nan
    highest = np.nan
    if extremes and k > 0:
        lowest = np.inf
        highest = -np.inf
        for i in range(lo, hi):
            v = x[i]
            if v < lowest:
                lowest = v
            if v > highest:
                highest = v
        if current:
            lowest = min(lowest, amount)
            highest = max(highest, amount)
    return lo, hi, float(k), total, mean, std, lowest, highest


@njit(cache=True)
def event_labels(ts, y, known, p, t, width, delay):  # pragma: no cover - numba
    """(rows with a usable label, frauds among them) in one event's label window.

    The single-event counterpart of :func:`window_int_sum` (``delay >= 0``: the labels of the
    rows in ``(t - delay - width, t - delay]``) and :func:`known_label_window` (``delay < 0``:
    the rows in ``(t - width, t)`` whose label is known by ``t``, ``known <= t``).
    """
    count = 0
    frauds = 0
    if delay >= 0:
        right = t - delay
        lo = _rows_at_or_before(ts, p, right - width)
        hi = _rows_at_or_before(ts, p, right)
        for i in range(lo, hi):
            count += 1
            frauds += y[i]
    else:
        lo = _rows_at_or_before(ts, p, t - width)
        for i in range(lo, p):
            if known[i] <= t:
                count += 1
                frauds += y[i]
    return float(count), float(frauds)
