"""Executors: parse ``executor.kind``, start or reach a Dask cluster, close what was started.

- ``local:N``: a :class:`distributed.LocalCluster` of N worker processes with one thread each,
  listening on the loopback interface only (127.0.0.1); each worker's tasks use its share of
  this process's cores for BLAS and torch (``NEUROENC_THREADS`` in its environment: the cores
  over N, or ``--threads``; :mod:`neuroenc._threads`);
- ``dask:tcp://host:port`` (or ``kind: dask`` with ``address``): a scheduler that is already
  running (``dask scheduler`` and ``dask worker tcp://host:port`` on the machines that should
  work). A Dask client unpickles what its scheduler sends: a config file may name only a
  scheduler on this machine (see :mod:`neuroenc.pipeline.trust`), a plain ``tcp://`` address
  on another machine is warned about (unencrypted, unauthenticated), and ``tls://`` takes the
  certificates of ``executor.security`` (:func:`make_security`);
- ``slurm``: a :class:`dask_jobqueue.SLURMCluster` built from ``executor.slurm``: ``cores``
  and ``memory`` per job are required, with ``jobs`` (a fixed number of jobs) or
  ``maximum_jobs`` (and ``minimum_jobs``; adaptive); ``gpus`` per job adds
  ``--gres=gpu:N`` to the job script and a ``GPU`` resource to its worker, so that feature
  extraction runs only where there is a GPU. ``processes`` (worker processes per job)
  defaults to 1 (one model load per job); every other key is passed to ``SLURMCluster``
  (``queue``, ``account``, ``walltime``, ``job_extra_directives``, ``job_script_prologue``,
  ``interface``, ``local_directory``, ``log_directory``...); a config file gives only the
  plain resources (:data:`~neuroenc.pipeline.trust.SLURM_DATA_KEYS`), the rest comes from the
  command line or the opt-in. The scheduler and workers talk over TLS with certificates made
  for the run; without ``sbatch`` on PATH, or when sbatch refuses the jobs or does not return
  within ``executor.timeout``, :class:`ClusterError` says so at once.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib.util
import inspect
import ipaddress
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._validation import NeuroencError
from .config import ConfigError, ExecutorConfig

logger = logging.getLogger(__name__)

#: ``dask:`` addresses: a protocol, a host (or a bracketed IPv6 address) and a port.
_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://([^\s/:\[\]]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$")
#: Protocols whose traffic is encrypted and authenticated by certificates.
_ENCRYPTED = ("tls", "wss")
#: ``executor.security`` keys: those of :class:`distributed.security.Security` a client uses.
SECURITY_KEYS = ("tls_ca_file", "tls_client_cert", "tls_client_key", "require_encryption")
#: Keys of ``executor.slurm`` handled here rather than passed to ``SLURMCluster``.
SLURM_SCALE_KEYS = ("jobs", "minimum_jobs", "maximum_jobs")
SLURM_REQUIRED = ("cores", "memory")
#: Parameters of dask-jobqueue that are set here or make no sense in a config.
_SLURM_INTERNAL = {"self", "scheduler", "name", "config_name", "loop", "job_cls", "asynchronous",
                   "n_workers", "base_class_kwargs", "job_kwargs", "scheduler_cls", "security",
                   "job_extra", "env_extra", "extra", "project"}


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed ``executor.kind``: ``kind`` is ``serial``, ``local``, ``dask`` or ``slurm``."""

    kind: str
    n_workers: int | None = None
    address: str | None = None


def parse_executor(kind: str, address: str | None = None) -> ExecutorSpec:
    """Parse ``"serial"``, ``"local:N"``, ``"dask:tcp://host:port"`` or ``"slurm"``.

    ``address`` is ``executor.address``, the scheduler of ``kind="dask"`` (given either way,
    not both).

    Raises
    ------
    ConfigError
        With the expected form and an example.
    """
    if not isinstance(kind, str):
        raise ConfigError(f"executor.kind must be a string such as 'local:2', got {kind!r}.")
    if address is not None and kind != "dask":
        raise ConfigError(
            f"executor.address ({address!r}) goes with executor.kind 'dask', but kind is {kind!r}: "
            "use kind: dask with address: tcp://host:port, or kind: 'dask:tcp://host:port' alone."
        )
    if kind == "dask":
        if address is None:
            raise ConfigError("executor.kind 'dask' needs executor.address, the scheduler's address, "
                              "e.g. address: tls://10.0.0.5:8786.")
        kind = f"dask:{address}"
    if kind in ("serial", "slurm"):
        return ExecutorSpec(kind)
    if kind.startswith("local:"):
        n = kind[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(
                f"Invalid executor {kind!r}: N in 'local:N' must be a whole number of worker "
                "processes >= 1, e.g. 'local:2'."
            )
        return ExecutorSpec("local", n_workers=int(n))
    if kind.startswith("dask:"):
        address = kind[len("dask:"):]
        if not _ADDRESS.match(address):
            raise ConfigError(
                f"Invalid executor {kind!r}: give the scheduler's address as 'dask:tcp://host:port', "
                "e.g. 'dask:tcp://10.0.0.5:8786' (the address 'dask scheduler' prints)."
            )
        return ExecutorSpec("dask", address=address)
    raise ConfigError(
        f"Invalid value for 'executor.kind'. Allowed values are 'serial', 'local:N', "
        f"'dask:tcp://host:port', 'slurm', but got {kind!r} instead."
    )


# ---------------------------------------------------------------------- SLURM
def slurm_parameters() -> list[str]:
    """The options of ``executor.slurm``: :class:`dask_jobqueue.SLURMCluster`'s parameters, less
    those set here, plus ``gpus`` and the numbers of jobs."""
    from dask_jobqueue.core import Job, JobQueueCluster
    from dask_jobqueue.slurm import SLURMJob

    names: set[str] = set()
    for fn in (SLURMJob.__init__, Job.__init__, JobQueueCluster.__init__):
        names.update(p.name for p in inspect.signature(fn).parameters.values()
                     if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    return sorted((names - _SLURM_INTERNAL) | {"gpus", *SLURM_SCALE_KEYS})


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"executor.slurm.{name} must be a whole number >= 1, got {value!r}.")
    return value


def check_slurm_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, int]]:
    """Validate ``executor.slurm``; returns ``(SLURMCluster keyword arguments, scaling)``.

    ``scaling`` is ``{"jobs": n}`` (fixed) or ``{"minimum_jobs": a, "maximum_jobs": b}``
    (adaptive).

    Raises
    ------
    ConfigError
        For a missing required option, an unknown option (with a "did you mean" hint) or a
        bad value.
    """
    from dask.utils import parse_bytes

    options = dict(options or {})
    missing = [k for k in SLURM_REQUIRED if options.get(k) in (None, "")]
    if missing:
        raise ConfigError(
            f"executor.slurm is missing {', '.join(repr(m) for m in missing)}: a SLURM executor needs "
            "the cores and memory of each job, and how many jobs, e.g. executor: {kind: slurm, "
            "slurm: {cores: 8, memory: 32GB, gpus: 1, walltime: '04:00:00', jobs: 4}}."
        )
    allowed = slurm_parameters()
    for key in options:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            raise ConfigError(
                f"unknown option executor.slurm.{key}"
                + (f"; did you mean executor.slurm.{hint[0]}?" if hint else f"; allowed options: {allowed}.")
            )
    scale = {k: _positive_int(k, options.pop(k)) for k in SLURM_SCALE_KEYS if k in options}
    if "jobs" in scale and len(scale) > 1:
        raise ConfigError("executor.slurm: give either 'jobs' (a fixed number of jobs) or "
                          "'minimum_jobs'/'maximum_jobs' (adaptive), not both.")
    if not scale or ("minimum_jobs" in scale and "maximum_jobs" not in scale):
        raise ConfigError(
            "executor.slurm needs 'jobs' (how many SLURM jobs to start, e.g. jobs: 4) or "
            "'maximum_jobs' (to scale with the work, between 'minimum_jobs' and it)."
        )
    if scale.get("minimum_jobs", 0) > scale.get("maximum_jobs", 1 << 30):
        raise ConfigError(f"executor.slurm.minimum_jobs ({scale['minimum_jobs']}) is above maximum_jobs "
                          f"({scale['maximum_jobs']}).")
    _positive_int("cores", options["cores"])
    try:
        parse_bytes(str(options["memory"]))
    except ValueError:
        raise ConfigError(f"executor.slurm.memory must be a size such as '32GB', got {options['memory']!r}.") from None
    options.setdefault("processes", 1)
    _positive_int("processes", options["processes"])
    gpus = options.pop("gpus", None)
    if gpus is not None:
        _positive_int("gpus", gpus)
        options["job_extra_directives"] = [*options.get("job_extra_directives", []), f"--gres=gpu:{gpus}"]
        # each of a job's worker processes holds its share of the job's GPUs
        per_worker = gpus // options["processes"]
        if per_worker < 1:
            raise ConfigError(
                f"executor.slurm asks for {gpus} GPU(s) per job shared by {options['processes']} "
                "worker processes: give each process at least one GPU (processes <= gpus)."
            )
        options["worker_extra_args"] = [*options.get("worker_extra_args", []), "--resources",
                                        f"GPU={per_worker}"]
    return options, scale


class ClusterError(NeuroencError, RuntimeError):
    """A cluster could not be started: no ``sbatch``, or SLURM did not take the jobs in time."""


def require_sbatch() -> None:
    """Raise :class:`ClusterError` unless ``sbatch`` is on PATH (else the jobs are never
    submitted and the run waits for ever)."""
    if shutil.which("sbatch") is None:
        raise ClusterError(
            "executor.kind 'slurm' submits its jobs with sbatch, which is not on PATH on this machine. "
            "Run neuroenc on the cluster's login node (or load its SLURM module: module load slurm), "
            "or choose another executor (--executor local:N)."
        )


def _temporary_security() -> Any:
    from distributed.security import Security

    try:
        return Security.temporary()
    except ImportError as err:
        raise ClusterError(
            "executor.kind 'slurm' encrypts the scheduler's connections (TLS) with certificates made for "
            f"this run, which needs the package 'cryptography' ({err}): pip install cryptography."
        ) from err


def _secure(kwargs: dict[str, Any], shared_dir: str | Path | None) -> dict[str, Any]:
    """TLS for the scheduler and every worker (certificates made for this run), unless the caller
    set another ``protocol``. The workers' certificate and key go to ``shared_dir`` (default: the
    working directory), which the jobs must see; the files are readable by the user alone and
    deleted with the cluster."""
    protocol = kwargs.get("protocol")
    if protocol is not None and not str(protocol).startswith("tls"):
        logger.warning("executor.slurm.protocol is %r: the scheduler and workers talk unencrypted and "
                       "unauthenticated; anyone who reaches the scheduler's port can run code on the workers.",
                       protocol)
        return kwargs
    kwargs = {**kwargs, "security": _temporary_security(), "protocol": "tls://"}
    kwargs.setdefault("shared_temp_directory", str(Path(shared_dir if shared_dir is not None else ".").resolve()))
    return kwargs


async def _submitted(cluster: Any, n_jobs: int, timeout: float) -> None:
    """Wait until sbatch has taken ``n_jobs`` jobs; raise sbatch's error if it refused one."""
    import asyncio
    import time

    from distributed.core import Status

    deadline = time.monotonic() + timeout
    while len(cluster.workers) < n_jobs:  # filled once every submission has returned
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.05)
    failed = [job for job in cluster.workers.values() if job.status == Status.created]
    if failed:
        await failed[0]  # submits it again, raising sbatch's error


def _wait_submitted(cluster: Any, n_jobs: int, timeout: float) -> None:
    try:
        cluster.sync(_submitted, cluster, n_jobs, timeout)
    except TimeoutError:
        _close_quietly(cluster)
        raise ClusterError(
            f"SLURM did not take the {n_jobs} job(s) within executor.timeout ({timeout:g} s): sbatch did not "
            "return. Check that SLURM answers on this machine (squeue, sinfo), or raise executor.timeout."
        ) from None
    except RuntimeError as err:  # dask-jobqueue: "Command exited with non-zero exit code ..."
        _close_quietly(cluster)
        detail = " ".join(str(err).split())
        raise ClusterError(f"sbatch refused the SLURM job: {detail} Check executor.slurm (queue, account, "
                           "walltime, memory) against the cluster's limits (sinfo).") from err


def _close_quietly(cluster: Any) -> None:
    # jobs that were never submitted make SpecCluster.close fail its own checks
    with contextlib.suppress(Exception):
        cluster.close(timeout=5)
    _delete_certificates(cluster)


def close_cluster(cluster: Any) -> None:
    """Close a cluster of :func:`slurm_cluster` and delete the workers' certificate files."""
    try:
        cluster.close()
    finally:
        _delete_certificates(cluster)


def _delete_certificates(cluster: Any) -> None:
    # dask-jobqueue keeps the files it wrote for the workers open as _job_<key>, deleted on close
    for name in ("_job_ca_file", "_job_cert", "_job_key"):
        handle = getattr(cluster, name, None)
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()


def slurm_cluster(options: dict[str, Any] | None, scale: bool = True, *, timeout: float = 30.0,
                  shared_dir: str | Path | None = None):
    """A :class:`dask_jobqueue.SLURMCluster` from ``executor.slurm`` options.

    The scheduler (in this process) and its workers talk over TLS with certificates made for
    this run (``security=``, :meth:`distributed.security.Security.temporary`): anyone who can
    reach the scheduler's port on the node's network address cannot run code on the workers.

    Parameters
    ----------
    options : dict
        The ``executor.slurm`` section (see the module docstring).
    scale : bool
        Submit the jobs (``jobs``) or start adaptive scaling (``maximum_jobs``). Without it
        nothing is submitted: ``cluster.job_script()`` shows what would be.
    timeout : float
        Seconds to wait for sbatch to take the ``jobs`` (``executor.timeout``); jobs waiting in
        SLURM's queue after that are not timed out.
    shared_dir : path-like | None
        Where the workers' certificate and key are written (a folder the jobs see; default the
        working directory).

    Returns
    -------
    cluster : dask_jobqueue.SLURMCluster

    Raises
    ------
    ClusterError
        When ``sbatch`` is not on PATH (before anything starts), when sbatch refuses a job or
        does not return within ``timeout``, or without the package ``cryptography``.
    """
    from dask_jobqueue import SLURMCluster

    kwargs, scaling = check_slurm_options(options)
    if scale:
        require_sbatch()
    cluster = SLURMCluster(**_secure(kwargs, shared_dir))
    shell = {k: kwargs[k] for k in ("job_script_prologue", "python", "worker_command", "shebang") if kwargs.get(k)}
    if shell:
        logger.warning("every SLURM job runs this shell code from executor.slurm: %s",
                       "; ".join(f"{k}: {v!r}" for k, v in shell.items()))
    logger.info("SLURM job script:\n%s", cluster.job_script())
    if scale:
        if "jobs" in scaling:
            cluster.scale(jobs=scaling["jobs"])
            _wait_submitted(cluster, scaling["jobs"], timeout)
        else:
            cluster.adapt(minimum_jobs=scaling.get("minimum_jobs", 0), maximum_jobs=scaling["maximum_jobs"])
    return cluster


# ---------------------------------------------------------------------- security
def make_security(options: dict[str, Any] | None, address: str | None = None,
                  resolve: Any = None) -> Any:
    """A :class:`distributed.security.Security` from ``executor.security`` (None without it).

    Parameters
    ----------
    options : dict | None
        ``tls_ca_file`` (the certificate authority that signed the scheduler's certificate),
        ``tls_client_cert`` and ``tls_client_key`` (this client's certificate and key, PEM
        files; the key may be inside the certificate file) and ``require_encryption`` (default true: refuse
        unencrypted connections), as :class:`~distributed.security.Security` takes them.
    address : str | None
        The scheduler's address: certificates need a ``tls://`` (or ``wss://``) one.
    resolve : callable | None
        Maps a path from the config to a file (relative to the config file's folder); default
        as given.

    Raises
    ------
    ConfigError
        For an unknown key, a missing certificate file, or certificates with an unencrypted
        address.
    """
    if not options:
        return None
    from distributed.security import Security

    if not isinstance(options, dict):
        raise ConfigError(f"executor.security must be a mapping of {list(SECURITY_KEYS)}, got {options!r}.")
    for key in options:
        if key not in SECURITY_KEYS:
            hint = difflib.get_close_matches(str(key), SECURITY_KEYS, n=1)
            raise ConfigError(
                f"unknown option executor.security.{key}"
                + (f"; did you mean executor.security.{hint[0]}?" if hint
                   else f"; allowed options: {list(SECURITY_KEYS)}.")
            )
    protocol = address.split("://", 1)[0] if address else None
    if protocol not in _ENCRYPTED:
        raise ConfigError(
            f"executor.security gives TLS certificates, but the scheduler address is {address!r}: "
            "certificates need a tls:// address (e.g. dask:tls://10.0.0.5:8786), with the scheduler "
            "and workers started with the same certificates (dask scheduler --tls-ca-file ...)."
        )
    kwargs: dict[str, Any] = {}
    for key in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        if options.get(key) in (None, ""):
            continue
        path = resolve(options[key]) if resolve is not None else options[key]
        if not Path(path).is_file():
            raise ConfigError(f"executor.security.{key}: certificate file not found: {str(path)!r}.")
        kwargs[key] = str(path)
    if "tls_client_key" in kwargs and "tls_client_cert" not in kwargs:
        raise ConfigError("executor.security.tls_client_key needs tls_client_cert (the certificate of "
                          "that key).")
    require = options.get("require_encryption", True)
    if not isinstance(require, bool):
        raise ConfigError(f"executor.security.require_encryption must be true or false, got {require!r}.")
    return Security(require_encryption=require, **kwargs)


def address_host(address: str) -> str:
    """The host of ``proto://host:port`` (brackets of an IPv6 address dropped)."""
    rest = address.split("://", 1)[-1]
    host = rest.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(address: str) -> bool:
    """Whether a scheduler address is on this machine's loopback interface (127.0.0.0/8,
    ``::1`` or ``localhost``); host names are not resolved."""
    host = address_host(address)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(address: str) -> None:
    """Warn when a scheduler on another machine is reached without encryption."""
    protocol = address.split("://", 1)[0]
    if protocol not in _ENCRYPTED and not is_loopback(address):
        logger.warning(
            "the Dask scheduler %s is reached over plain %s:// on another machine: unencrypted and "
            "unauthenticated, so anyone who can reach it can read the data and run code here. Use "
            "tls:// with certificates (executor.security), or an SSH tunnel to 127.0.0.1.",
            address, protocol,
        )


# ---------------------------------------------------------------------- clients
def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


def dashboard(client: Any) -> str | None:
    """The dashboard link of a client's scheduler (None without bokeh, which serves it)."""
    if not _has_bokeh():
        return None
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a scheduler without an HTTP server
        return None


def _probe(address: str, timeout: float, security: Any) -> None:
    """Open a connection to ``address`` and finish Dask's handshake within ``timeout`` seconds
    (distributed waits for a handshake without a limit), in a thread with its own event loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect as dask_connect

    args = security.get_connection_args("client") if security is not None else {}

    async def probe() -> None:
        comm = await asyncio.wait_for(dask_connect(address, timeout=timeout, **args), timeout)
        await comm.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, probe()).result()


def _client(address: str, timeout: float, security: Any) -> Any:
    """A client of the scheduler at ``address``; a one-line ConnectionError when there is none."""
    from distributed import Client

    try:
        _probe(address, timeout, security)
        return Client(address, timeout=timeout, security=security)
    except (OSError, TimeoutError) as err:  # refused, closed, or no answer in time
        reason = " ".join(str(err).split()) or "no answer"
        raise ConnectionError(
            f"could not reach the Dask scheduler at {address!r} within {timeout:g} s ({reason}). "
            f"Start one with 'dask scheduler' and workers with 'dask worker {address}', or "
            "check the host, the port and the firewall."
        ) from err
    except Exception as err:  # noqa: BLE001 - a server that answers something else than Dask
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise ConnectionError(
            f"the server at {address!r} is not a Dask scheduler: its answer is not Dask's protocol "
            f"({reason[:160]}). Give the address that 'dask scheduler' prints (tcp://host:8786 by default; "
            "8787 is its dashboard), or start a scheduler there."
        ) from err


@contextlib.contextmanager
def connect(executor: ExecutorConfig, *, client: Any = None, timeout: float = 10.0,
            security: Any = None, shared_dir: str | Path | None = None) -> Iterator[Any]:
    """A :class:`distributed.Client` for an executor; what is started here is closed on exit.

    Parameters
    ----------
    executor : ExecutorConfig
        ``kind`` (and ``address``), ``security`` and, for ``slurm``, the ``slurm`` options.
    client : distributed.Client | None
        Use this client (it is left open).
    timeout : float
        Seconds to wait for an existing scheduler (``dask:``), or for sbatch to take the jobs
        (``slurm``).
    security : distributed.security.Security | None
        For a ``tls://`` scheduler; default from ``executor.security`` (:func:`make_security`,
        paths as given).
    shared_dir : path-like | None
        ``slurm``: the folder, seen by the jobs, for the workers' TLS certificate
        (:func:`slurm_cluster`).

    Raises
    ------
    ConfigError
        For a bad ``executor.kind`` or SLURM options.
    ConnectionError
        When the scheduler of ``dask:tcp://host:port`` cannot be reached, does not answer
        within ``timeout``, or is not a Dask scheduler.
    ClusterError
        When the SLURM jobs cannot be submitted (:func:`slurm_cluster`).
    """
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    spec = parse_executor(executor.kind, executor.address)
    cluster = None
    if spec.kind == "serial":
        raise ConfigError("executor.kind is 'serial': there is no Dask cluster to connect to; use "
                          "'local:N', 'dask:tcp://host:port' or 'slurm'.")
    if spec.kind == "local":
        from .._threads import ENV_VAR, resolve_threads

        share = resolve_threads(processes=spec.n_workers).threads  # each worker's cores: N x share <= cores
        cluster = LocalCluster(n_workers=spec.n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0", env={ENV_VAR: str(share)})
        client = Client(cluster)
    elif spec.kind == "dask":
        if security is None:
            security = make_security(executor.security, spec.address)
        warn_if_exposed(spec.address)
        client = _client(spec.address, timeout, security)
    else:
        cluster = slurm_cluster(executor.slurm, timeout=timeout, shared_dir=shared_dir)
        try:
            client = Client(cluster)
        except BaseException:
            close_cluster(cluster)
            raise
    link = dashboard(client)
    logger.info("Dask %s: dashboard %s", spec.kind,
                link or "unavailable (install bokeh>=3.1 to get one)")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            close_cluster(cluster)


def worker_memory(client: Any, executor: ExecutorConfig | None = None,
                  resource: str | None = None) -> int | None:
    """Memory one task may use on the smallest worker, in bytes.

    A worker's memory limit is shared by the tasks it runs at once: one per thread, or, for
    tasks that each hold one unit of ``resource`` (``"GPU"``), one per unit. Workers that are
    up are asked; for ``slurm`` before any job has started, the configured ``memory`` per job
    over its ``processes``, then over ``cores / processes`` threads (or ``gpus``). None when
    no worker has a limit and none is configured.
    """
    per_task = []
    for info in client.scheduler_info(n_workers=-1).get("workers", {}).values():
        limit = info.get("memory_limit") or 0
        slots = (info.get("resources") or {}).get(resource) if resource else info.get("nthreads")
        if limit and slots:
            per_task.append(int(limit) // max(int(slots), 1))
    if per_task:
        return min(per_task)
    if executor is not None and executor.kind == "slurm":
        from dask.utils import parse_bytes

        opts, _ = check_slurm_options(executor.slurm)
        processes = int(opts.get("processes", 1))
        if resource == "GPU" and executor.slurm.get("gpus"):
            slots = int(executor.slurm["gpus"])
        else:
            slots = max(int(opts["cores"]) // processes, 1)
        return parse_bytes(str(opts["memory"])) // processes // slots
    return None


__all__ = ["ClusterError", "ExecutorSpec", "check_slurm_options", "close_cluster", "connect", "dashboard",
           "make_security", "parse_executor", "require_sbatch", "slurm_cluster", "slurm_parameters",
           "warn_if_exposed", "worker_memory"]
