"""Numbers from users: finite, in range, and within what this machine can compute.

Two tools, used by the schemas (``schema.py`` of each capability) and the commands:

* :func:`check_number` validates one numeric option (finite, ``lo <= x <= hi``) and
  raises an ``InputError`` naming the option; Pydantic models use
  ``Field(ge=..., le=..., allow_inf_nan=False)`` for the same.
* :func:`check_memory` / :func:`check_work` refuse work whose estimated memory or
  element count exceeds the machine, BEFORE allocating, with the estimate in the
  message (``would need 439.0 GiB``).

The memory budget is half of the physical memory, or ``$HEPANAV_MEMORY_LIMIT_MB``.
"""

from __future__ import annotations

import math
import os

from hepanav.core.errors import InputError


def memory_budget_bytes() -> int:
    """Bytes one command may allocate: ``$HEPANAV_MEMORY_LIMIT_MB`` or half the RAM."""
    env = os.environ.get("HEPANAV_MEMORY_LIMIT_MB")
    if env:
        try:
            return int(float(env) * 2**20)
        except ValueError:
            pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 8 * 2**30
    return int(total // 2)


def _fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def check_memory(n_bytes: float, what: str, source: str) -> None:
    """Refuse when ``n_bytes`` (an estimate) exceeds :func:`memory_budget_bytes`.

    Raises
    ------
    InputError
        On ``source`` (the option or file field), with the estimate and the budget.
    """
    budget = memory_budget_bytes()
    shown = _fmt_bytes(n_bytes) if math.isfinite(n_bytes) else "unbounded memory"
    if not math.isfinite(n_bytes) or n_bytes > budget:
        raise InputError(
            f"{what} would need about {shown}, more than the {_fmt_bytes(budget)} "
            "this machine allows "
            "(HEPANAV_MEMORY_LIMIT_MB)",
            source,
        )


def check_work(n_items: float, limit: float, what: str, source: str) -> None:
    """Refuse when ``n_items`` (an estimate of loop iterations/elements) exceeds ``limit``."""
    if not math.isfinite(n_items) or n_items > limit:
        shown = f"{n_items:.3g}" if math.isfinite(n_items) else "unbounded"
        raise InputError(f"{what} would take {shown} steps; the limit is {limit:.3g}", source)


def check_number(
    value: float | int | None,
    option: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    unit: str = "",
) -> float | int | None:
    """Validate a numeric option: finite and in ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``).

    Returns ``value``; ``None`` passes through (an option not given).

    Raises
    ------
    InputError
        Naming ``option`` and the allowed range, without echoing anything else.
    """
    if value is None:
        return None
    u = f" {unit}" if unit else ""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError("must be a number", option) from None
    if not math.isfinite(x):
        raise InputError("must be a finite number", option)
    bad_lo = lo is not None and (x <= lo if lo_open else x < lo)
    bad_hi = hi is not None and x > hi
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise InputError(f"must lie in {left}{lo_s}, {hi_s}]{u}, not {x:g}", option)
    return value


def available_cores() -> int:
    """CPU cores this process may use: affinity mask, capped by a cgroup CPU quota.

    ``os.cpu_count()`` counts the machine's cores even when a container (cgroup v2
    ``cpu.max``, or v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``) or ``taskset``
    allows fewer; running more threads than that only adds contention. A quota of
    ``q`` µs per period ``p`` µs gives ``ceil(q / p)`` cores. At least 1.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota_cores()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, int(cores))


def _cgroup_quota_cores(root: str = "/sys/fs/cgroup") -> int | None:
    """Cores allowed by the cgroup CPU quota, or None when unlimited or unknown."""
    candidates = (
        (os.path.join(root, "cpu.max"), None),
        (
            os.path.join(root, "cpu", "cpu.cfs_quota_us"),
            os.path.join(root, "cpu", "cpu.cfs_period_us"),
        ),
    )
    for first, second in candidates:
        try:
            with open(first, encoding="ascii") as fh:
                fields = fh.read().split()
            if second is not None:
                with open(second, encoding="ascii") as fh:
                    fields.append(fh.read().strip())
        except OSError:
            continue
        if len(fields) < 2 or fields[0] in ("max", "-1"):
            return None
        try:
            quota, period = float(fields[0]), float(fields[1])
        except ValueError:
            return None
        if quota <= 0 or period <= 0:
            return None
        return max(1, math.ceil(quota / period))
    return None
