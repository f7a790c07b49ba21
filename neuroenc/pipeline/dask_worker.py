"""What runs on a Dask worker: a cache of loaded models and data, and the three task functions.

:class:`WorkerCache` is a :class:`distributed.WorkerPlugin` registered on every worker (and
on workers that join or restart later): it keeps one
:class:`~neuroenc.features.FeatureExtractor` per model settings, so the model is loaded once
per worker, not once per task, and the data of the last subject fitted, so the chunks of one
subject that land on the same worker read its responses once.

The tasks wrap :mod:`neuroenc.pipeline.tasks` (same files, same cache keys) and return a
small record: what was made, whether it was computed or found complete, where and how long.
Each task checks its output first, so a retried task, or a task whose earlier attempt
finished on a worker that was then lost, does not redo the work.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoding.spectra import SpectrumStore
from .config import RunConfig
from .tasks import (
    cache_dir,
    extract_run,
    extractor_params,
    fit_subject,
    make_extractor,
    merge_part_results,
    results_current,
)

logger = logging.getLogger(__name__)

#: The name :class:`WorkerCache` is registered under.
PLUGIN_NAME = "neuroenc-cache"

try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object


class WorkerCache(_WorkerPlugin):
    """Per-worker cache of feature extractors (loaded models) and subjects' data.

    Parameters
    ----------
    max_models : int
        Extractors kept (least recently used dropped first; a GPU holds one model well).
    max_datasets : int
        Subjects' data kept.

    Attributes
    ----------
    model_loads : int
        Models this worker has loaded since the plugin was set up.
    spectra : SpectrumStore
        The layers' Grams and eigendecompositions, shared by the fits of subjects with the same
        design (the same story): computed once per worker instead of once per subject.
    """

    name = PLUGIN_NAME

    def __init__(self, max_models: int = 1, max_datasets: int = 1) -> None:
        self.max_models = max_models
        self.max_datasets = max_datasets
        self.model_loads = 0
        self._extractors: OrderedDict[str, Any] = OrderedDict()
        self._datasets: OrderedDict[str, Any] = OrderedDict()
        self.spectra = SpectrumStore()
        self._lock: Any = None  # made in setup: a lock does not travel to the workers

    def setup(self, worker: Any = None) -> None:
        self.model_loads = 0
        self._extractors = OrderedDict()
        self._datasets = OrderedDict()
        # a tenth of the worker's memory limit at most, beside the fits' own (encoding.memory)
        limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
        share = int(0.1 * limit) if isinstance(limit, (int, float)) and limit > 0 else self.spectra.max_bytes
        self.spectra = SpectrumStore(min(self.spectra.max_bytes, share))
        self._lock = threading.RLock()

    @property
    def lock(self) -> Any:
        """Serialises loads between the threads of a worker (one model load, one data load)."""
        if self._lock is None:
            self._lock = threading.RLock()
        return self._lock

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None}

    def teardown(self, worker: Any = None) -> None:
        self.clear()

    def clear(self) -> None:
        """Drop every cached model and data set (and free the GPU's cache)."""
        self._extractors.clear()
        self._datasets.clear()
        self.spectra = SpectrumStore(self.spectra.max_bytes)
        _free_gpu()

    @staticmethod
    def _put(cache: OrderedDict, key: str, value: Any, size: int) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)
            _free_gpu()

    def extractor(self, config: RunConfig) -> Any:
        """The extractor of ``config``'s model settings (its model loads on first use)."""
        key = json.dumps([config.model.name, str(cache_dir(config)), extractor_params(config)],
                         sort_keys=True, default=str)
        with self.lock:
            if key in self._extractors:
                self._extractors.move_to_end(key)
                return self._extractors[key]
            extractor = make_extractor(config, verbose="warning")
            self._put(self._extractors, key, extractor, self.max_models)
            return extractor

    def load_model(self, extractor: Any) -> None:
        """Load ``extractor``'s model unless loaded (once, whatever the threads asking)."""
        with self.lock:
            if not hasattr(extractor, "model_"):
                extractor.fit()
                self.model_loads += 1

    def preload(self, config: RunConfig, dataset: Any) -> None:
        """Serve ``dataset`` (every subject's data, already loaded) for ``config``'s tasks: the
        serial executor loads the data set once (:class:`~neuroenc.pipeline.distributed.SyncClient`)."""
        self._preloaded = (json.dumps(dataclasses.asdict(config.dataset), sort_keys=True, default=str), dataset)

    def dataset(self, config: RunConfig, subject: str) -> Any:
        """The data of ``subject`` (loaded as :func:`fit_subject` would load it)."""
        from .loaders import load_dataset

        preloaded = getattr(self, "_preloaded", None)
        if preloaded is not None and preloaded[0] == json.dumps(dataclasses.asdict(config.dataset), sort_keys=True,
                                                                 default=str):
            return preloaded[1]
        key = json.dumps([dataclasses.asdict(config.dataset), subject], sort_keys=True, default=str)
        with self.lock:
            if key in self._datasets:
                self._datasets.move_to_end(key)
                return self._datasets[key]
            while self._datasets and len(self._datasets) >= self.max_datasets:
                self._datasets.popitem(last=False)  # free a subject before loading the next
            dataset = load_dataset(config.dataset, subjects=[subject], allow_code=config.allow_code)
            self._put(self._datasets, key, dataset, self.max_datasets)
            return dataset


def _free_gpu() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


#: The cache of the serial executor's tasks, while one runs (:func:`local_worker`).
_LOCAL: list[WorkerCache] = []


@contextlib.contextmanager
def local_worker(cache: WorkerCache):
    """Run tasks in this process as if on a worker whose cache is ``cache`` (the serial executor)."""
    _LOCAL.append(cache)
    try:
        yield cache
    finally:
        _LOCAL.pop()


def _worker_cache() -> tuple[WorkerCache | None, str]:
    """This worker's cache and address; the serial executor's cache and "local" in this process
    (:func:`local_worker`); (None, "local") outside both."""
    if _LOCAL:
        return _LOCAL[-1], "local"
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None, "local"
    return worker.plugins.get(PLUGIN_NAME), worker.address


@contextlib.contextmanager
def _task_threads():
    """A Dask task's BLAS/torch threads: the worker's cores over its task slots
    (:func:`~neuroenc._threads.worker_threads`); in this process (the serial executor) the
    command's setting holds."""
    from .._threads import thread_limits, worker_threads

    worker = None
    if not _LOCAL:
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):
            pass
    if worker is None:
        yield
        return
    with thread_limits(worker_threads(getattr(worker, "nthreads", 1)), source="worker"):
        yield


def _record(task: str, output: Any, computed: bool, started: float, worker: str, **extra: Any) -> dict:
    return {"task": task, "output": str(output), "computed": bool(computed),
            "seconds": time.time() - started, "worker": worker, **extra}


# ---------------------------------------------------------------------- tasks
def extract_task(config: RunConfig, transcript: Any, run: str | None = None) -> dict[str, Any]:
    """Extract (or find cached) the features of one run with this worker's model.

    ``run`` labels the record (default the transcript's name).
    """
    started = time.time()
    run = transcript.name if run is None else run
    cache, address = _worker_cache()
    extractor = cache.extractor(config) if cache is not None else make_extractor(config, verbose="warning")
    found = extractor.cached_path(transcript)  # this setting's file, or an all-layers one
    if found is not None:
        return _record("extract", Path(found), False, started, address, run=run,
                       model_loads=cache.model_loads if cache is not None else 0)
    with _task_threads():
        if cache is not None:
            cache.load_model(extractor)
        path = extract_run(config, transcript, extractor)
    return _record("extract", path, True, started, address, run=run,
                   model_loads=cache.model_loads if cache is not None else 1)


def fit_task(config: RunConfig, subject: str, features: dict[str, str], *, out: str, results_key: str,
             layers: Sequence[int] | None = None, targets: tuple[int, int] | None = None,
             noise_ceiling: np.ndarray | None = None) -> dict[str, Any]:
    """Fit one subject (a layer subset × a target chunk ``[start, stop)``) into ``out``.

    ``results_key``: the subject's :func:`~neuroenc.pipeline.tasks.results_key`, as the planner
    computed it from the data it loaded; a complete ``out`` with that key is kept without
    loading anything (:func:`~neuroenc.pipeline.tasks.fit_subject` computes the key again from
    the data this worker reads)."""
    started = time.time()
    cache, address = _worker_cache()
    if results_current(out, results_key):
        return _record("fit", out, False, started, address, subject=subject)
    dataset = cache.dataset(config, subject) if cache is not None else None
    with _task_threads():
        fit_subject(config, subject, features, layers=None if layers is None else list(layers),
                    targets=None if targets is None else slice(*targets), noise_ceiling=noise_ceiling,
                    out=out, dataset=dataset, spectra=cache.spectra if cache is not None else None)
    return _record("fit", out, True, started, address, subject=subject)


def merge_task(config: RunConfig, subject: str, parts: Sequence[Sequence[str]], out: str, key: str,
               keep_parts: bool = False, after: Any = None) -> dict[str, Any]:
    """Merge a subject's parts into its results file, atomically, then delete the parts.

    Parameters
    ----------
    parts : list of list of path
        One list per layer band, each the band's target chunks in target order.
    key : str
        The subject's :func:`~neuroenc.pipeline.tasks.results_key` (a complete, current ``out``
        is kept).
    keep_parts : bool
        Keep the part files after the merge.
    after : any
        Ignored: the part tasks' results, so that Dask runs this task after them.
    """
    from ..encoding.results import EncodingResults

    started = time.time()
    _, address = _worker_cache()
    if results_current(out, key):
        return _record("merge", out, False, started, address, subject=subject)
    bands = [merge_part_results([EncodingResults.load(p) for p in band], axis="targets")
             for band in parts]
    merged = bands[0] if len(bands) == 1 else merge_part_results(bands, axis="layers")
    merged.save(out)
    if not keep_parts:
        for band in parts:
            for p in band:
                Path(p).unlink(missing_ok=True)
    return _record("merge", out, True, started, address, subject=subject,
                   n_parts=sum(len(b) for b in parts))


__all__ = ["PLUGIN_NAME", "WorkerCache", "extract_task", "fit_task", "local_worker", "merge_task"]
