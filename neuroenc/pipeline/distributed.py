"""The task graph of ``neuroenc run``, for every kind of data and every executor.

:func:`execute` plans, submits and follows three kinds of tasks
(:mod:`neuroenc.pipeline.dask_worker`), on a Dask cluster (``executor.kind`` ``local:N``,
``dask:...``, ``slurm``) or, for ``serial``, on a synchronous client that runs each task in
this process as it is submitted (:class:`SyncClient`: the same graph, the same task
functions, one model load, the data set loaded once). Story runs and stimulus-level runs are
the same graph: a stimulus set is one run, ``"stimuli"``, of its data set
(:meth:`~neuroenc.datasets.StimulusDataset.as_encoding_dataset`).

1. **extract**, one per run: the run's features with the config's model, into the same
   content-hashed cache file as the serial path. Every worker keeps its loaded model between
   tasks (:class:`~neuroenc.pipeline.dask_worker.WorkerCache`): one model load per worker.
2. **fit**, one per (subject, layer band, target chunk): :func:`~neuroenc.pipeline.tasks.fit_subject`
   on a subset of layers and a chunk of targets. Band and chunk sizes come from the workers'
   memory and the design's size (:func:`~neuroenc.encoding.memory.partition_fit`); a
   subject that fits in one task is written straight to its results file.
3. **merge**, one per subject cut into parts: the parts, merged exactly
   (:func:`~neuroenc.encoding.merge.merge_results`; q-values recomputed) into the subject's
   results file, written atomically by that task alone; the parts are then deleted.

The layer mapping, the report and the tables are made at the end, in this process
(:func:`~neuroenc.pipeline.output.finish_run`).

Fault tolerance: every task is retried ``executor.retries`` times (a task lost with a killed
worker is rescheduled by Dask); every output is written to a temporary file and moved into
place, and is reused only when complete and made with the same settings (features: the
cache's ``complete`` flag; results: the config hash in their provenance). So a rerun after an
interruption submits only what is missing: ``RunOutput.tasks`` counts the tasks skipped,
submitted and computed.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._logging import show_progress
from .._validation import NeuroencError
from ..encoding import make_cv
from ..encoding.cv import resolve_cv
from ..encoding.memory import FitShape, partition_fit
from ..features.cache import read_feature_info
from .config import ConfigError, RunConfig, resolve_kind
from .dask_cluster import (
    check_slurm_options,
    connect,
    make_security,
    parse_executor,
    require_sbatch,
    worker_memory,
)
from .dask_worker import PLUGIN_NAME, WorkerCache, extract_task, fit_task, local_worker, merge_task
from .loaders import GROUP, load_dataset
from .optin import code_allowed
from .output import RunOutput, finish_run
from .tasks import (
    check_baseline,
    make_extractor,
    noise_ceilings,
    output_dir,
    results_current,
    results_key,
    results_path,
    subject_data_hash,
)
from .trust import check_trust

logger = logging.getLogger(__name__)


class TaskError(NeuroencError, RuntimeError):
    """A task failed on the cluster after all its retries."""


class _Done:
    """A task run at once by :class:`SyncClient`: its result, as a finished future."""

    status = "finished"

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self._value = value

    def result(self) -> Any:
        return self._value

    def done(self) -> bool:
        return True


class SyncClient:
    """The serial executor: runs each submitted task at once, in this process.

    The tasks see ``cache`` as their worker's :class:`~neuroenc.pipeline.dask_worker.WorkerCache`
    (one model load; the data set loaded once, in ``cache.preload``). An exception propagates
    as it is (no retries: a serial run stops at the first error, with that error).
    """

    def __init__(self, cache: WorkerCache) -> None:
        self.cache = cache

    def submit(self, fn: Callable, *args: Any, key: str, pure: bool = False, retries: int = 0,
               resources: Any = None, **kwargs: Any) -> _Done:
        with local_worker(self.cache):
            return _Done(key, fn(*args, **kwargs))

    def cancel(self, futures: list) -> None:
        """Nothing to cancel: every task has run."""


class _Tracker:
    """Submits tasks, follows them as they finish (progress bar, callback) and counts them."""

    def __init__(self, client: Any, retries: int, verbose: bool | str | int | None, callback: Callable | None):
        self.client = client
        self.retries = retries
        self.verbose = verbose
        self.callback = callback
        self.labels: dict[Any, str] = {}
        self.counts = {"skipped": 0, "submitted": 0, "computed": 0}

    def skip(self, kind: str) -> None:
        self.counts["skipped"] += 1
        self.counts[f"{kind}_skipped"] = self.counts.get(f"{kind}_skipped", 0) + 1

    def submit(self, kind: str, label: str, fn: Callable, *args: Any, resources: dict | None = None,
               **kwargs: Any) -> Any:
        key = f"neuroenc-{kind}-{label}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(fn, *args, key=key, pure=False, retries=self.retries,
                                    resources=resources, **kwargs)
        self.labels[future.key] = f"{kind} {label}"
        self.counts["submitted"] += 1
        return future

    def wait(self, futures: list, desc: str) -> list[dict]:
        """Wait for ``futures``; raise :class:`TaskError` (cancelling the rest) if one fails."""
        from distributed import as_completed
        from tqdm.auto import tqdm

        records = []
        bar = tqdm(total=len(futures), desc=desc, unit="task", disable=not show_progress(self.verbose))
        done = all(isinstance(f, _Done) for f in futures)
        try:
            for future in (futures if done else as_completed(futures)):
                if future.status != "finished":
                    err = future.exception() if future.status == "error" else None
                    raise TaskError(
                        f"task {self.labels.get(future.key, future.key)!r} failed after "
                        f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}: "
                        + (f"{type(err).__name__}: {err}" if err is not None else future.status)
                    ) from err
                record = future.result()
                records.append(record)
                if record["computed"]:
                    self.counts["computed"] += 1
                    k = f"{record['task']}_computed"
                    self.counts[k] = self.counts.get(k, 0) + 1
                bar.update(1)
                logger.debug("done: %s (%s, %.1f s, %s)", self.labels.get(future.key), record["output"],
                             record["seconds"], record["worker"])
                if self.callback is not None:
                    self.callback(record)
        except BaseException:
            self.client.cancel([f for f in futures if not f.done()])
            raise
        finally:
            bar.close()
        return records


def _features_layout(path: Path) -> tuple[list[int], int, int]:
    """(layer indices, words, hidden size) of a features file, from its metadata."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = [int(i) for i in f.attrs["layer_indices"]]
        return layers, int(read_feature_info(path)["n_words"]), int(f["layers"][str(layers[0])].shape[1])


def _n_lags(config: RunConfig, response: Any) -> int:
    """Column blocks of a design (delays or lags), as the align functions make them (1 for rows
    that are stimuli: no delays)."""
    from ..align.events import lag_samples
    from ..align.fmri import fmri_delays

    a = config.alignment
    if response.rows == "stimuli":
        return 1
    if response.kind == "meg":
        rate = a.sfreq if a.sfreq is not None else response.sfreq / a.decim
        return len(lag_samples(a.tmin, a.tmax, rate))
    return len(fmri_delays(a.delays, a.hrf))


def _subject_sizes(config: RunConfig, dataset: Any) -> dict[str, dict[str, Any]]:
    """Per subject: runs, samples, targets, bytes of responses as loaded, response kind."""
    everyone = sum(r.data.nbytes for rs in dataset.responses.values() for r in rs.values() if rs)
    out = {}
    for subject, responses in dataset.responses.items():
        first = next(iter(responses.values()))
        nbytes = sum(r.data.nbytes for r in responses.values())
        nbytes += sum(c.data.nbytes for c in dataset.confounds.get(subject, {}).values())
        out[subject] = {
            "runs": list(responses),
            "n_samples": sum(r.n_samples for r in responses.values()),
            "groups": np.repeat([str(run) for run in responses], [r.n_samples for r in responses.values()]),
            "n_targets": first.n_targets,
            "response_bytes": everyone if subject == GROUP else nbytes,
            "first": first,
            "data_hash": subject_data_hash(dataset, subject),
        }
    return out


def _fit_shape(config: RunConfig, size: dict[str, Any], layouts: dict[str, tuple]) -> tuple[FitShape, list[int]]:
    runs = size["runs"]
    layers, _, hidden = layouts[runs[0]]
    enc = config.encoding
    cv, scheme = resolve_cv(enc.cv, size["first"].rows)
    n_folds = scheme[1] if scheme is not None else \
        len(make_cv(cv, size["groups"], size["n_samples"], n_blocks=getattr(enc, "n_blocks", 5)))
    inner = enc.inner_cv if isinstance(enc.inner_cv, int) and enc.inner_cv > 1 else 5
    shape = FitShape(
        n_samples=size["n_samples"], n_features=hidden * _n_lags(config, size["first"]),
        n_targets=size["n_targets"], n_layers=len(layers),
        n_words=sum(layouts[r][1] for r in runs), hidden_size=hidden,
        response_bytes=int(size["response_bytes"]), n_alphas=len(enc.alpha_grid()),
        n_folds=max(int(n_folds), 2), inner_cv=int(inner), n_permutations=int(enc.n_permutations),
        permutation=enc.permutation,
    )
    return shape, layers


def _band_name(band: list[int], all_layers: list[int]) -> str:
    if band == all_layers:
        return "all"
    if band == list(range(band[0], band[-1] + 1)):
        return f"l{band[0]}-{band[-1]}"
    import hashlib

    return "l" + hashlib.sha256(",".join(map(str, band)).encode()).hexdigest()[:8]


def _submit_subject(tracker: _Tracker, config: RunConfig, subject: str, size: dict[str, Any],
                    features: dict[str, Path], noise_ceiling: np.ndarray | None, sizing: dict[str, Any],
                    resources: dict | None) -> list:
    """Submit the fit tasks of one subject (one task, or parts and their merge); returns their
    futures (none when its results file is complete)."""
    key = results_key(config, features, noise_ceiling, data_hash=size["data_hash"])
    final = results_path(config, subject)
    if results_current(final, key):
        tracker.skip("fit")
        return []
    layouts = {run: _features_layout(features[run]) for run in size["runs"]}
    files = {run: str(path) for run, path in features.items()}
    shape, layers = _fit_shape(config, size, layouts)
    if sizing["memory"] is None:  # serial: one task per subject, unless the executor section cuts them
        per_band = sizing["layers_per_task"] or len(layers)
        chunk = sizing["target_chunk"] or shape.n_targets
    else:
        per_band, chunk = partition_fit(shape, sizing["memory"], layers_per_task=sizing["layers_per_task"],
                                        target_chunk=sizing["target_chunk"], fraction=sizing["fraction"])
    bands = [layers[i:i + per_band] for i in range(0, len(layers), per_band)]
    spans = [(a, min(a + chunk, shape.n_targets)) for a in range(0, shape.n_targets, chunk)]
    common = dict(noise_ceiling=noise_ceiling, resources=resources, results_key=key)
    if len(bands) == 1 and len(spans) == 1:
        return [tracker.submit("fit", subject, fit_task, config, subject, files, out=str(final), **common)]
    logger.info("subject %s: %d layer band(s) x %d target chunk(s) of <= %d targets", subject,
                len(bands), len(spans), chunk)
    grid, parts = [], []
    for band in bands:
        name = _band_name(band, layers)
        row = []
        for start, stop in spans:
            out = results_path(config, subject, part=f"{name}_t{start}-{stop}")
            row.append(str(out))
            if results_current(out, key):
                tracker.skip("fit")
                continue
            parts.append(tracker.submit("fit", f"{subject}-{name}-t{start}-{stop}", fit_task, config, subject,
                                        files, out=str(out), layers=None if name == "all" else band,
                                        targets=(start, stop), **common))
        grid.append(row)
    merge = tracker.submit("merge", subject, merge_task, config, subject, grid, str(final), key, after=parts)
    return [*parts, merge]


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"executor.retries must be a whole number >= 0, got {retries!r}.")
    return retries


def run_distributed(
    config: RunConfig,
    *,
    verbose: bool | str | int | None = None,
    client: Any = None,
    layers_per_task: int | None = None,
    target_chunk: int | None = None,
    memory_fraction: float | None = None,
    timeout: float | None = None,
    callback: Callable[[dict], None] | None = None,
) -> RunOutput:
    """Run a config on a Dask cluster (``executor.kind``: ``local:N``, ``dask:...``, ``slurm``).

    The set-up of :func:`~neuroenc.pipeline.run_pipeline` (the opt-in, the trust checks, the
    kind of data set), then :func:`execute`.

    Parameters
    ----------
    config : RunConfig
        The run; ``executor.kind`` picks the cluster and ``executor.retries`` the retries of
        each task.
    verbose : bool | str | int | None
        Progress bars (tasks as they finish) and info messages (the dashboard link); mne's
        convention, as :func:`~neuroenc.pipeline.run_pipeline`'s.
    client : distributed.Client | None
        Run on this client's cluster instead of the one ``executor.kind`` names (left open).
    layers_per_task, target_chunk : int | None
        Layers and targets per fit task; default ``executor.layers_per_task`` /
        ``executor.target_chunk``, else from the workers' memory
        (:func:`~neuroenc.encoding.memory.partition_fit`).
    memory_fraction : float | None
        Share of a worker's memory (per thread) one fit task may plan to use; default
        ``executor.memory_fraction``.
    timeout : float | None
        Seconds to wait for the scheduler of ``dask:tcp://...`` and for its first worker;
        default ``executor.timeout``.
    callback : callable | None
        Called in this process with each task's record (``task``, ``output``, ``computed``,
        ``seconds``, ``worker``...) as it finishes.

    Returns
    -------
    output : RunOutput
        As :func:`~neuroenc.pipeline.run_pipeline`'s, with ``tasks`` holding the counts of
        tasks ``skipped`` (output already complete), ``submitted`` and ``computed`` (also per
        kind: ``extract_computed``, ``fit_computed``, ``merge_computed``...).

    Raises
    ------
    ConfigError
        For a bad executor or SLURM options (before any data is loaded).
    ConnectionError
        When a ``dask:`` scheduler cannot be reached.
    TaskError
        When a task still fails after its retries.
    """
    import copy

    config = copy.copy(config)  # the opt-in travels to the workers with the config
    config.allow_code = code_allowed(config.allow_code)
    check_trust(config)
    config = resolve_kind(config)  # a custom loader's kind of data set, once it may be imported
    if client is None and parse_executor(config.executor.kind, config.executor.address).kind == "serial":
        raise ConfigError("run_distributed needs a Dask executor ('local:N', 'dask:tcp://host:port' "
                          "or 'slurm'), got executor.kind 'serial'; use run_pipeline for a serial run.")
    return execute(config, verbose=verbose, client=client, layers_per_task=layers_per_task,
                   target_chunk=target_chunk, memory_fraction=memory_fraction, timeout=timeout, callback=callback)


def execute(
    config: RunConfig,
    *,
    verbose: bool | str | int | None = None,
    client: Any = None,
    layers_per_task: int | None = None,
    target_chunk: int | None = None,
    memory_fraction: float | None = None,
    timeout: float | None = None,
    callback: Callable[[dict], None] | None = None,
) -> RunOutput:
    """Run a prepared config's task graph: load → extract per run → fit per subject × part →
    merge → group → map → report (see the module docstring).

    ``config`` has been through the set-up (:func:`~neuroenc.pipeline.run_pipeline`: the
    opt-in, the trust checks, the kind of data set). ``executor.kind`` ``serial`` runs the graph
    on a :class:`SyncClient` in this process; any other kind on a Dask cluster (or ``client``).
    The other parameters are :func:`run_distributed`'s.
    """
    spec = None
    security = None
    serial = client is None and parse_executor(config.executor.kind, config.executor.address).kind == "serial"
    if client is None and not serial:
        spec = parse_executor(config.executor.kind, config.executor.address)
        if spec.kind == "slurm":
            check_slurm_options(config.executor.slurm)
            require_sbatch()
        if spec.kind == "dask":
            security = make_security(config.executor.security, spec.address, resolve=config.resolve)
        elif config.executor.security:
            raise ConfigError(f"executor.security applies to a dask: tls:// scheduler; executor.kind is "
                              f"{config.executor.kind!r}. Remove the security section.")
    retries = _check_retries(config.executor.retries)
    ex = config.executor
    layers_per_task = ex.layers_per_task if layers_per_task is None else layers_per_task
    target_chunk = ex.target_chunk if target_chunk is None else target_chunk
    memory_fraction = ex.memory_fraction if memory_fraction is None else memory_fraction
    timeout = ex.timeout if timeout is None else timeout
    if not 0 < memory_fraction <= 1:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}.")
    timings: dict[str, float] = {}

    # the cluster first (a scheduler that cannot be reached fails before any data is read)
    shared_dir = None
    if spec is not None and spec.kind == "slurm":  # the workers' TLS certificate, where the jobs see it
        shared_dir = output_dir(config)
        shared_dir.mkdir(parents=True, exist_ok=True)
    cache = WorkerCache() if serial else None
    context: Any = contextlib.nullcontext(SyncClient(cache)) if serial else \
        connect(config.executor, client=client, timeout=timeout, security=security, shared_dir=shared_dir)
    with context as client:
        if not serial:
            client.register_plugin(WorkerCache(), name=PLUGIN_NAME)
            if spec is not None and spec.kind == "dask":
                try:
                    client.wait_for_workers(1, timeout=timeout)
                except TimeoutError as err:
                    raise ConnectionError(
                        f"the Dask scheduler at {spec.address!r} has no workers after {timeout:g} s; start "
                        f"some with 'dask worker {spec.address}'."
                    ) from err

        t0 = time.time()
        dataset = load_dataset(config.dataset, allow_code=config.allow_code)
        check_baseline(config, dataset)  # an unknown regressor is an error before anything runs
        logger.info("data set %r: %d subjects, %d runs", dataset.name, len(dataset.subjects), len(dataset.runs))
        output_dir(config).mkdir(parents=True, exist_ok=True)
        runs = sorted({r for rs in dataset.responses.values() for r in rs}) or dataset.runs
        transcripts = {run: dataset.transcripts[run] for run in runs}
        ceilings = noise_ceilings(config, dataset)
        sizes = _subject_sizes(config, dataset)
        if serial:
            cache.preload(config, dataset)  # the tasks read it instead of loading their subject's data
        del dataset  # workers load their subject's data themselves
        timings["load"] = time.time() - t0
        extractor = client.cache.extractor(config) if serial else make_extractor(config, verbose="warning")
        cached = {run: extractor.cached_path(t) for run, t in transcripts.items()}
        features = {run: Path(cached[run] or extractor.cache_path(t)) for run, t in transcripts.items()}

        tracker = _Tracker(client, retries, verbose, callback)
        # with GPUs, every extraction and fit task holds one: one model, one fit per GPU at a time
        gpu = bool(spec is not None and spec.kind == "slurm" and config.executor.slurm.get("gpus"))
        resources = {"GPU": 1} if gpu else None

        # 1. features, one task per run
        t0 = time.time()
        pending = []
        for run, transcript in transcripts.items():
            if cached[run] is not None:
                tracker.skip("extract")
            else:
                pending.append(tracker.submit("extract", run, extract_task, config, transcript, run=run,
                                              resources=resources))
        for record in tracker.wait(pending, "extract"):
            # the worker's path: its device may give another dtype, hence another cache key
            features[record["run"]] = Path(record["output"])
        timings["extract"] = time.time() - t0

        # 2. fits (and merges), sized to the workers' memory (serial: one task per subject)
        t0 = time.time()
        memory = None
        if not serial:
            memory = worker_memory(client, config.executor, resource="GPU" if gpu else None)
            if memory is None:
                import psutil

                memory = int(psutil.virtual_memory().total)
                logger.info("workers report no memory limit; sizing fit tasks for %.1f GiB", memory / 2**30)
        sizing = dict(memory=memory, layers_per_task=layers_per_task, target_chunk=target_chunk,
                      fraction=memory_fraction)
        results: dict[str, Path] = {}
        pending = []
        for subject, size in sizes.items():
            results[subject] = results_path(config, subject)
            pending.extend(_submit_subject(tracker, config, subject, size, features, ceilings.get(subject),
                                           sizing, resources))
        tracker.wait(pending, "fit")
        timings["fit"] = time.time() - t0

    # 3. group, mapping, report and tables, in this process
    output = finish_run(config, features, results, timings)
    output.tasks = dict(tracker.counts)
    logger.info("tasks: %s", ", ".join(f"{k} {v}" for k, v in output.tasks.items()))
    return output


__all__ = ["SyncClient", "TaskError", "execute", "run_distributed"]
