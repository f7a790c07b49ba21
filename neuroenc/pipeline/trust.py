"""What a run config may do: configs are shared between labs like data, so a config file never
runs code, reaches a remote machine or writes outside its output folder unless the user says so.
The user's guide is ``docs/security.md``.

A config file (YAML) may:

- name a registered data-set loader (:data:`~neuroenc.pipeline.loaders.LOADERS`) or one that an
  installed package declares in the entry-point group ``neuroenc.loaders``;
- select rows of an events table with a query (``dataset.args.query``) in neuroenc's filter
  language (:mod:`neuroenc.stimuli.filters`: ``column op value``, ``in``/``not in`` lists,
  ``and``/``or``/``not``), which is parsed, never evaluated as Python;
- run on this machine (``serial``, ``local:N``), on a Dask scheduler on this machine
  (``dask:tcp://127.0.0.1:8786``), or on SLURM with the plain resources of its jobs
  (:data:`SLURM_DATA_KEYS`: ``cores``, ``memory``, ``processes``, ``gpus``, ``jobs``,
  ``queue``, ``account``, ``walltime``...: scalars of their type, strings of plain characters).
  A SLURM run's scheduler and workers always talk over TLS, with certificates made for the run
  (the scheduler listens on the node's network address: without them, anyone who reaches its
  port could run code on the workers);
- write inside ``output.dir`` (results, tables, the report) and, for the features cache, below
  its own folder.

It may not, unless the user opts in with ``neuroenc run --allow-code`` (``allow_code=True``
in Python, or the environment variable ``NEUROENC_ALLOW_CODE=1``), which is then logged:

- name a loader as ``"package.module:function"`` (that imports and runs any function);
- give SLURM shell code (``executor.slurm.job_script_prologue``, ``python``,
  ``worker_command``, ``shebang``) or option values with shell metacharacters;
- give any other ``executor.slurm`` option: ``scheduler_options`` (its ``preload`` runs a
  Python file in the user's process), ``worker_extra_args`` (``--preload`` runs a file or URL
  in every worker), ``local_directory``, ``log_directory``, ``job_extra_directives`` (they
  write anywhere), ``protocol`` (it can turn TLS off)... These may also come from the caller
  (``--set executor.slurm.KEY=VALUE``);
- name a Dask scheduler on another machine (a Dask client unpickles what its scheduler sends):
  give that address on the command line (``--executor dask:tls://host:8786``) instead.

Output paths (:func:`output_dir`, :func:`report_path`, :func:`cache_dir`), opt-in or not: from
a config file, ``output.dir`` is relative and stays below the working directory or the config
file's folder (links followed); ``output.report`` stays inside ``output.dir``; ``output.cache_dir``
below the config's folder; none of them names ``~`` or a ``$VARIABLE``. Absolute paths, ``~``
and ``$VARS``, and relative ones that leave their folder, are accepted only from the command line
or the caller (``--out``, ``--set``, ``overrides=``), never from the config file. Values given
by the caller rather than read from the file are listed in :attr:`RunConfig.caller_keys`
(:func:`from_caller`); a config built in Python (no source file) is the caller's.

Wherever the path came from, a run never replaces a file that neuroenc did not write
(:mod:`neuroenc._owned`: a report by its generator meta tag, HDF5 files by their ``format``
attribute, tables by the folder's manifest ``.neuroenc-files.json``); :func:`check_outputs`
checks the report and tables before the run starts, and each writer checks its file.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from .._owned import MANIFEST, check_replace
from .config import ConfigError, RunConfig
from .dask_cluster import is_loopback, parse_executor, slurm_parameters
from .loaders import check_loader
from .optin import OPT_IN, code_allowed

logger = logging.getLogger(__name__)

#: The summary tables a run may write (``<output.dir>/tables/<name>.csv``), checked before a
#: run starts (:func:`check_outputs`).
TABLES = ("best_layers", "best_layers_per_subject", "best_layer_stability", "group_mean_best_layers")
#: ``executor.slurm`` options that are shell code run in every job.
SLURM_SHELL_KEYS = ("job_script_prologue", "python", "worker_command", "shebang")
#: Characters that end a line of a job script or start another shell command.
_SHELL_META = re.compile(r"[\n\r;&|`<>]|\$\(")
#: ``executor.slurm`` options a config file may give without the opt-in: plain resources of
#: each job (:class:`dask_jobqueue.SLURMCluster`'s parameters), and the types of their values.
#: Every other option can run code or write files (see :data:`_SLURM_RISKS`).
SLURM_DATA_KEYS: dict[str, tuple[type, ...]] = {
    "cores": (int,), "memory": (str, int), "processes": (int,), "gpus": (int,), "jobs": (int,),
    "minimum_jobs": (int,), "maximum_jobs": (int,), "queue": (str,), "account": (str,),
    "walltime": (str,), "job_cpu": (int,), "job_mem": (str, int), "job_name": (str,),
    "interface": (str,), "death_timeout": (int, float), "nanny": (bool,),
}
#: What the options a config file may not give can do, for messages.
_SLURM_RISKS = {
    "scheduler_options": "the scheduler runs in this process, and its options run Python files here "
                         "(preload) or open it to the network (host, port, dashboard_address)",
    "worker_extra_args": "its arguments go to every worker (--preload runs a Python file or URL there)",
    "local_directory": "every worker writes its files there",
    "log_directory": "every job writes its log there",
    "shared_temp_directory": "this process writes the workers' certificates there",
    "job_extra_directives": "its #SBATCH directives can write anywhere (--output, --chdir) or run "
                            "programs (--wrap)",
    "job_directives_skip": "it drops #SBATCH directives of the job script",
    "header_skip": "it drops #SBATCH directives of the job script",
    "protocol": "it can turn off the encryption of the scheduler's connections (tls://)",
    "dashboard_address": "it opens the scheduler's dashboard to the network",
    "host": "it opens the scheduler to the network",
}
#: A plain option value: no spaces, quotes, $ or shell characters, and not an option (-x).
_PLAIN = re.compile(r"^[A-Za-z0-9_.:@%+,=/][A-Za-z0-9_.:@%+,=/-]*$")


def from_caller(config: RunConfig, key: str) -> bool:
    """Whether the dotted ``key`` was given by the caller (command line, overrides, a config
    built in Python) rather than read from the config file."""
    if config.source is None:
        return True
    return any(key == k or key.startswith(k + ".") for k in config.caller_keys)


def _where(config: RunConfig) -> str:
    return f" in {config.source!r}" if config.source else ""


# ---------------------------------------------------------------------- output paths
def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or inside it, links followed."""
    path = Path(os.path.realpath(path))
    folder = Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def _below(path: Path, folder: Path) -> bool:
    """Whether ``path`` is strictly below ``folder``, links followed (a link inside the folder
    to another place leaves it)."""
    path = Path(os.path.realpath(path))
    folder = Path(os.path.realpath(folder))
    return folder in path.parents


def _user_path(value: Any) -> Path:
    return Path(os.path.expandvars(str(value))).expanduser()


def _check_plain(config: RunConfig, key: str, value: Any, example: str, option: str) -> None:
    """A path from the config file names no home folder (``~``) and no environment variable."""
    text = str(value)
    if text.startswith("~") or "$" in text:
        raise ConfigError(
            f"{key}{_where(config)} is {text!r}: a config file cannot name the home folder (~) or "
            f"environment variables ($...), which would write outside its output folder. Give a "
            f"relative path ({key.split('.')[-1]}: {example}), or pass the path on the command line "
            f"({option})."
        )


def output_dir(config: RunConfig) -> Path:
    """The run's output folder (``output.dir``, relative to the working directory).

    From a config file it must be relative and stay below the working directory or the config
    file's folder; absolute paths, ``~`` and ``$VARS`` are taken only from the caller (``--out``,
    ``--set output.dir=...``, ``overrides=``, a config built in Python).

    Raises
    ------
    ConfigError
        For a folder from the config file that is absolute, names ``~`` or a variable, or is not
        below the working directory or the config file's folder.
    """
    value = config.output.dir
    if from_caller(config, "output.dir"):
        return _user_path(value)
    fix = "--out /path/to/results"
    _check_plain(config, "output.dir", value, "results", fix)
    path = Path(str(value))
    if path.is_absolute():
        raise ConfigError(
            f"output.dir{_where(config)} is the absolute path {str(value)!r}: a config file writes only "
            "below the working directory or its own folder. Give a relative folder (dir: results), or "
            f"pass the folder on the command line ({fix})."
        )
    base = Path(config.source).parent
    if not (_below(path, Path.cwd()) or _below(path, base)):
        raise ConfigError(
            f"output.dir{_where(config)} is {str(value)!r}, which is not below the working directory "
            f"{os.getcwd()!r} or the config file's folder {str(base.resolve())!r}: a config file writes "
            f"only into a folder below them. Give a folder such as results, or pass the folder on the "
            f"command line ({fix})."
        )
    return path


def report_path(config: RunConfig) -> Path | None:
    """Where the report goes: ``output.report`` inside ``output.dir`` (None: no report).

    Raises
    ------
    ConfigError
        For a path that leaves ``output.dir``, or an absolute one that the config file gave.
    """
    value = config.output.report
    if value is None:
        return None
    out = output_dir(config)
    if not from_caller(config, "output.report"):
        _check_plain(config, "output.report", value, "report.html", "--set output.report=/path/report.html")
    path = _user_path(value)
    if path.is_absolute():
        if from_caller(config, "output.report"):
            return path
        raise ConfigError(
            f"output.report{_where(config)} is the absolute path {str(value)!r}: a config file writes "
            "only inside output.dir. Give a file name relative to output.dir (report: report.html), "
            "or pass the absolute path on the command line (--set output.report=/path/report.html)."
        )
    full = out / path
    if not _inside(full, out) or os.path.normpath(full) == os.path.normpath(out):
        raise ConfigError(
            f"output.report{_where(config)} is {str(value)!r}, which leaves the output folder "
            f"{str(out)!r}: a report is written inside output.dir. Give a file name such as "
            "report.html (or an absolute path on the command line: --set output.report=/path/x.html)."
        )
    return full


def cache_dir(config: RunConfig) -> Path:
    """The features cache: ``output.cache_dir`` (relative to the config file's folder), default
    ``<output.dir>/cache``.

    Raises
    ------
    ConfigError
        For a path from the config file that is absolute or leaves the config file's folder.
    """
    value = config.output.cache_dir
    if not value:
        return output_dir(config) / "cache"
    path = config.resolve(value)
    if from_caller(config, "output.cache_dir"):
        return path
    _check_plain(config, "output.cache_dir", value, "feature-cache", "--set output.cache_dir=/path/cache")
    base = Path(config.source).parent
    if _user_path(value).is_absolute() or not _inside(path, base):
        raise ConfigError(
            f"output.cache_dir{_where(config)} is {str(value)!r}, outside the config file's folder "
            f"{str(base)!r}: a config file writes its features cache only below its own folder "
            "(e.g. cache_dir: feature-cache, shared by the configs beside it). Pass another folder on "
            "the command line (--set output.cache_dir=/path/cache)."
        )
    return path


def check_outputs(config: RunConfig) -> None:
    """Check, before a run starts, that the files it will write at names known in advance (the
    report, ``tables/*.csv``) replace no file that neuroenc did not write.

    Raises
    ------
    ForeignFileError
        Naming the file and the fix (another name, or remove it).
    """
    report = report_path(config)
    if report is not None:
        check_replace(report, "report")
    tables = output_dir(config) / "tables"
    for name in (*TABLES, MANIFEST):
        check_replace(tables / (name if name == MANIFEST else f"{name}.csv"), "table")


def check_run_folders(config: RunConfig) -> None:
    """Raise a ValueError, before anything is loaded, when a run config's output folder
    (``output.dir``) or feature cache (``output.cache_dir``) cannot be written
    (:func:`~neuroenc.pipeline.preflight.check_writable`)."""
    from .preflight import check_writable

    check_writable(output_dir(config), "output.dir")
    check_writable(cache_dir(config), "output.cache_dir")


# ---------------------------------------------------------------------- executors
def _check_executor(config: RunConfig) -> None:
    ex = config.executor
    spec = parse_executor(ex.kind, ex.address)
    if spec.kind == "dask" and not is_loopback(spec.address):
        key = "executor.address" if ex.address else "executor.kind"
        if not from_caller(config, key):
            if not code_allowed(config.allow_code):
                raise ConfigError(
                    f"{key}{_where(config)} names the Dask scheduler {spec.address!r} on another "
                    "machine. A Dask client runs what its scheduler sends (pickled tasks and "
                    "results), so a config file may only name a scheduler on this machine "
                    "(tcp://127.0.0.1:PORT). Give the address on the command line instead "
                    f"(neuroenc run CONFIG --executor dask:{spec.address}), or {OPT_IN} to accept "
                    "the config's."
                )
            logger.warning("using the Dask scheduler %s named by %s (code allowed by the opt-in)",
                           spec.address, config.source)
    if spec.kind == "slurm":
        _check_slurm(config)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _check_slurm(config: RunConfig) -> None:
    allowed = code_allowed(config.allow_code)
    options = config.executor.slurm or {}
    if not isinstance(options, dict):
        raise ConfigError(f"executor.slurm{_where(config)} must be a mapping of options, e.g. {{cores: 8, "
                          f"memory: 32GB, jobs: 4}}, got {options!r}.")
    for key, value in options.items():
        if from_caller(config, f"executor.slurm.{key}"):
            continue
        if key in SLURM_SHELL_KEYS:
            if not allowed:
                raise ConfigError(
                    f"executor.slurm.{key}{_where(config)} is shell code that every SLURM job would "
                    f"run ({value!r}). A config file cannot run code unless you opt in: read it, "
                    f"then {OPT_IN}."
                )
            logger.warning("executor.slurm.%s from %s is shell code run in every SLURM job "
                           "(allowed by the opt-in): %r", key, config.source, value)
            continue
        bad = next((s for s in _strings(value) if _SHELL_META.search(s)), None)
        if bad is not None and not allowed:
            char = _SHELL_META.search(bad).group(0)
            raise ConfigError(
                f"executor.slurm.{key}{_where(config)} is {bad!r}: its {char!r} would end the job "
                "script's line and run what follows as shell code. Fix the value; if it is meant, "
                f"{OPT_IN}."
            )
        if key in SLURM_DATA_KEYS:
            if not allowed:
                _check_slurm_value(config, key, value)
            continue
        if key not in slurm_parameters():
            continue  # a typo: check_slurm_options names it, with a "did you mean"
        if not allowed:
            raise ConfigError(
                f"executor.slurm.{key}{_where(config)} is {value!r}, which a config file may not give: "
                f"{_SLURM_RISKS.get(key, 'it is not a plain resource of the jobs')}. A config file gives "
                f"only the jobs' resources ({', '.join(SLURM_DATA_KEYS)}). Give {key} on the command line "
                f"(--set executor.slurm.{key}=VALUE), or, if you trust this config, {OPT_IN}."
            )
        logger.warning("executor.slurm.%s from %s is not a plain resource of the jobs (allowed by the "
                       "opt-in): %r", key, config.source, value)


def _check_slurm_value(config: RunConfig, key: str, value: Any) -> None:
    """A plain resource from the config file: a scalar of its type; a string of plain characters."""
    types = SLURM_DATA_KEYS[key]
    if isinstance(value, bool) != (types == (bool,)) or not isinstance(value, types):
        words = " or ".join({int: "a whole number", float: "a number", str: "a string",
                             bool: "true or false"}[t] for t in types)
        hint = (" (quote it: YAML reads an unquoted 4:00:00 as a number of seconds)"
                if key == "walltime" and isinstance(value, int) else "")
        raise ConfigError(f"executor.slurm.{key}{_where(config)} must be {words}, got {value!r}{hint}.")
    if isinstance(value, str) and not _PLAIN.match(value):
        raise ConfigError(
            f"executor.slurm.{key}{_where(config)} is {value!r}: a config file gives plain values (letters, "
            "digits and . _ - : @ % + , = /, not starting with -), as they go into the job script and the "
            f"workers' command line. Fix the value, give it on the command line (--set executor.slurm.{key}="
            f"VALUE), or, if you trust this config, {OPT_IN}."
        )


# ---------------------------------------------------------------------- everything
def check_trust(config: RunConfig) -> None:
    """Check what the config file asks for against what a config file may do (see the module
    docstring): the loader, the executor (scheduler address, SLURM shell code) and the output
    paths. Called by :func:`~neuroenc.pipeline.run_pipeline` before anything is loaded.

    Raises
    ------
    ConfigError
        Naming the value, the file, and how to give it instead (command line, or the opt-in).
    """
    _check_executor(config)
    check_loader(config.dataset.loader, allow_code=config.allow_code, where=_where(config))
    report_path(config)
    cache_dir(config)
    check_outputs(config)


__all__ = ["TABLES", "cache_dir", "check_outputs", "check_run_folders", "check_trust", "from_caller",
           "output_dir", "report_path"]
