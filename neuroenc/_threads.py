"""Thread pools: how many BLAS, OpenMP and torch threads neuroenc's work may use.

A multi-threaded BLAS on a busy machine can be far slower than one thread: two threads of one
``eigh`` spin against each other and against every other job (a 564 × 564 eigendecomposition
took 0.3 s on one thread and 1.5–12 s on two, with a load of 9 on 2 cores). So neuroenc sets
the pools itself, in one place: :func:`thread_limits` around a command's or a task's work, with
the number from :func:`resolve_threads`:

1. the number given (``neuroenc --threads N``, a ``threads=`` argument);
2. the setting of an enclosing :func:`thread_limits` (the command's, for the library calls
   it makes);
3. the environment variable ``NEUROENC_THREADS``;
4. the default: the cores this process may use (:func:`available_cores`: its CPU affinity
   and its cgroup's CPU quota, not the machine's core count) over the processes that share
   them, so that processes × threads ≤ cores; and no more than the machine's idle cores (its
   cores less its load, :func:`system_load`: on a busy machine extra threads only spin);
   ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS``, when set lower, cap
   it too (a cluster's ``OMP_NUM_THREADS=1`` holds).

What was used is recorded in the results' provenance (:func:`threads_provenance`).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The environment variable that sets the threads (below ``--threads``, above the default).
ENV_VAR = "NEUROENC_THREADS"
#: Where the cgroup file systems are mounted (a parameter for tests).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The kernel's load file: its fourth field counts the tasks runnable now (a parameter for tests).
LOADAVG = Path("/proc/loadavg")
#: Reads of the runnable tasks, and the seconds between them (the fewest seen counts: a task that
#: runs for a moment is not a busy machine).
RUNNABLE_READS, RUNNABLE_GAP = 3, 0.005
#: The environment variables that libraries loaded later read their pool size from.
_POOL_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class ThreadSetting:
    """The threads a block of work uses, and where the number came from.

    Attributes
    ----------
    threads : int
        BLAS, OpenMP and torch threads.
    source : str
        ``"--threads"`` (or the argument's name), ``"NEUROENC_THREADS"``, ``"default"``,
        ``"load"`` (the machine's load capped the default), ``"OMP_NUM_THREADS"`` (or another
        pool's variable that capped it) or ``"worker"`` (a Dask worker's share).
    affinity : int
        CPUs this process may run on (``os.sched_getaffinity``).
    quota : float | None
        The cgroup's CPU quota in CPUs (None: no quota).
    processes : int
        Processes sharing those cores (the default divides by it).
    load : float | None
        The machine's load (:func:`system_load`; None where unknown).
    """

    threads: int
    source: str
    affinity: int
    quota: float | None
    processes: int = 1
    load: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The setting as a JSON-able dict."""
        return dataclasses.asdict(self)


_ACTIVE: contextvars.ContextVar[ThreadSetting | None] = contextvars.ContextVar("neuroenc_threads", default=None)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_dirs(root: Path) -> list[Path]:
    """This process's cgroup v2 folder (from /proc/self/cgroup) and the root."""
    dirs = []
    text = _read(Path("/proc/self/cgroup")) or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip().lstrip("/")
            if rel:
                dirs.append(root / rel)
    return [*dirs, root]


def cgroup_cpu_quota(root: str | os.PathLike | None = None) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (``1.5``: one and a half), or None.

    Reads ``cpu.max`` (cgroup v2: ``"150000 100000"``, or ``"max 100000"`` for none), else
    ``cpu/cpu.cfs_quota_us`` over ``cpu/cpu.cfs_period_us`` (cgroup v1; a quota of -1 is
    none). Unreadable or malformed files count as no quota.

    Parameters
    ----------
    root : path-like | None
        Where the cgroup file systems are mounted (default :data:`CGROUP_ROOT`).
    """
    root = Path(CGROUP_ROOT if root is None else root)
    for folder in _cgroup_dirs(root):
        text = _read(folder / "cpu.max")
        if text is None:
            continue
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = float(parts[0]), float(parts[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    for sub in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota, period = _read(root / sub / "cpu.cfs_quota_us"), _read(root / sub / "cpu.cfs_period_us")
        if quota is None or period is None:
            continue
        try:
            q, p = float(quota), float(period)
        except ValueError:
            return None
        return q / p if q > 0 and p > 0 else None
    return None


def cpu_affinity() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where
    that does not exist)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # macOS, Windows
        return max(os.cpu_count() or 1, 1)


def runnable_now() -> int | None:
    """The tasks runnable on the machine now, other than this one: the fewest of a few reads
    of the kernel's count (``/proc/loadavg``), so that a task that runs for a moment does not
    count (None where the system does not say)."""
    seen = []
    for i in range(RUNNABLE_READS):
        text = _read(LOADAVG)
        fields = text.split() if text else []
        running = fields[3].partition("/")[0] if len(fields) >= 4 else ""
        if not running.isdigit():
            return None
        seen.append(int(running) - 1)  # the reading task runs too
        if i + 1 < RUNNABLE_READS:
            time.sleep(RUNNABLE_GAP)
    return max(min(seen), 0)


def system_load() -> float | None:
    """The machine's load: the larger of its load average over the last minute and the tasks
    runnable now (:func:`runnable_now`). The average lags a job that has just started by up to
    a minute, so two jobs started together each see an idle machine in it; the count sees them
    at once. None where the system says neither."""
    try:
        average = round(float(os.getloadavg()[0]), 2)
    except (AttributeError, OSError):  # Windows
        average = None
    now = runnable_now()
    if average is None or now is None:
        return average if now is None else float(now)
    return max(average, float(now))


def available_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota
    (rounded down, at least 1)."""
    cores = cpu_affinity()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(int(math.floor(quota)), 1))
    return cores


def check_threads(value: Any, option: str = "threads") -> int:
    """``value`` as a number of threads (a whole number ≥ 1, or its text).

    Raises
    ------
    ValueError
        Naming ``option``, the value and the fix.
    """
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        example = f"{option} 1" if option.startswith("-") else f"{option}=1"
        raise ValueError(f"Invalid value for {option}: {value!r}. Give a whole number of threads >= 1, "
                         f"e.g. {example} (1 is fastest on a busy or shared machine).")
    return int(text)


def resolve_threads(threads: int | str | None = None, *, processes: int = 1, option: str = "threads") -> ThreadSetting:
    """The threads to use, and where the number came from (see the module docstring).

    Parameters
    ----------
    threads : int | str | None
        The number given; None: an enclosing :func:`thread_limits`'s, else ``NEUROENC_THREADS``,
        else the default.
    processes : int
        Processes that share this process's cores (the default is their share).
    option : str
        The name of ``threads`` for messages (``"--threads"``).

    Raises
    ------
    ValueError
        For a value (or ``NEUROENC_THREADS``) that is not a whole number ≥ 1.
    """
    affinity, quota = cpu_affinity(), cgroup_cpu_quota()
    processes = max(int(processes), 1)
    if threads is not None:
        return ThreadSetting(check_threads(threads, option), option, affinity, quota, processes, system_load())
    active = _ACTIVE.get()
    if active is not None and active.source not in ("default", "load", *_POOL_ENV):  # a default is worked out
        return active                                                          # again, for `processes`
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return ThreadSetting(check_threads(env, ENV_VAR), ENV_VAR, affinity, quota, processes, system_load())
    cores = min(affinity, max(int(math.floor(quota)), 1)) if quota is not None else affinity
    threads, source = max(cores // processes, 1), "default"
    load = system_load()
    if load is not None:  # a busy machine: threads beyond the idle cores spin against the other jobs
        idle = max(int((os.cpu_count() or affinity) - load + 0.5), 1)
        if idle < threads:
            threads, source = idle, "load"
    for name in _POOL_ENV:  # the pools' own variables, when set, are a cap (OMP_NUM_THREADS=1 on a cluster)
        value = os.environ.get(name, "").strip()
        if value.isdigit() and 1 <= int(value) < threads:
            threads, source = int(value), name
    return ThreadSetting(threads, source, affinity, quota, processes, load)


def current_threads() -> dict[str, int]:
    """The threads of each loaded pool now: ``{"blas": n, "openmp": n, "torch": n}`` (a pool
    not loaded is left out; several libraries of one kind give the largest)."""
    from threadpoolctl import threadpool_info

    out: dict[str, int] = {}
    for info in threadpool_info():
        api = info.get("user_api")
        out[api] = max(out.get(api, 0), int(info.get("num_threads") or 0))
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = int(torch.get_num_threads())
    return out


@contextlib.contextmanager
def thread_limits(threads: int | str | None = None, *, processes: int = 1, source: str | None = None,
                  option: str = "threads") -> Iterator[ThreadSetting]:
    """Limit the BLAS, OpenMP and torch thread pools in a ``with`` block; restored on exit.

    Parameters
    ----------
    threads : int | str | None
        The threads (see :func:`resolve_threads` for None).
    processes : int
        Processes sharing this process's cores, for the default.
    source : str | None
        Where ``threads`` came from, recorded instead of ``option`` (``"worker"``).
    option : str
        The name of ``threads`` for messages and provenance (``"--threads"``).

    Yields
    ------
    setting : ThreadSetting

    Notes
    -----
    The BLAS of numpy and scipy (both loaded here) and OpenMP are limited with
    :func:`threadpoolctl.threadpool_limits`, torch with :func:`torch.set_num_threads` when
    torch is loaded; ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS``
    are set for the block, for libraries (and torch) loaded within it.

    Examples
    --------
    >>> from neuroenc._threads import thread_limits
    >>> with thread_limits(1) as setting:
    ...     setting.threads
    1
    """
    setting = resolve_threads(threads, processes=processes, option=option)
    if source is not None:
        setting = dataclasses.replace(setting, source=source)
    import scipy.linalg  # noqa: F401  (scipy's own BLAS: loaded now, so that it is limited)
    from threadpoolctl import threadpool_limits

    n = setting.threads
    saved_env = {name: os.environ.get(name) for name in _POOL_ENV}
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    token = _ACTIVE.set(setting)
    limiter = threadpool_limits(limits=n)
    try:
        for name in _POOL_ENV:
            os.environ[name] = str(n)
        if torch is not None and torch_before != n:
            torch.set_num_threads(n)
        logger.debug("threads: %d (%s; affinity %d CPUs, cgroup quota %s)", n, setting.source, setting.affinity,
                     setting.quota)
        yield setting
    finally:
        limiter.restore_original_limits()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if torch is not None and torch.get_num_threads() != torch_before:
            torch.set_num_threads(torch_before)
        _ACTIVE.reset(token)


def threads_provenance() -> dict[str, Any]:
    """What a fit records: the pools' threads now (:func:`current_threads`) and the active
    setting (:class:`ThreadSetting`; None outside :func:`thread_limits`)."""
    active = _ACTIVE.get()
    return {"pools": current_threads(), "setting": active.to_dict() if active is not None else None}


def worker_threads(nthreads: int) -> int:
    """A Dask task's threads: the worker's cores over its task slots (``nthreads``).

    The worker's cores are ``NEUROENC_THREADS`` in its environment (the local cluster sets it
    to each worker's share of this machine), else its ``nthreads`` (dask-jobqueue starts a
    worker with one thread per core it holds), so that tasks × threads ≤ cores.
    """
    nthreads = max(int(nthreads), 1)
    env = os.environ.get(ENV_VAR, "").strip()
    cores = check_threads(env, ENV_VAR) if env else nthreads
    return max(cores // nthreads, 1)


__all__ = ["ENV_VAR", "ThreadSetting", "available_cores", "cgroup_cpu_quota", "check_threads", "cpu_affinity",
           "current_threads", "resolve_threads", "runnable_now", "system_load", "thread_limits", "threads_provenance",
           "worker_threads"]
