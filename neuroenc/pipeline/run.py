"""``neuroenc run``: extract → align → fit → map → report, from a run config.

The serial path calls the tasks of :mod:`neuroenc.pipeline.tasks` in order, in this process,
loading the model once. Every task's output is cached (features per run, results per subject),
so a second run reuses everything that is complete.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

from .._logging import show_progress
from .config import RunConfig, apply_overrides, config_from_dict, load_config, resolve_kind
from .loaders import load_dataset
from .optin import code_allowed
from .output import RunOutput, finish_run
from .preflight import check_run_folders
from .tasks import (
    extract_run,
    fit_subject,
    make_extractor,
    noise_ceilings,
    output_dir,
)
from .trust import check_trust

logger = logging.getLogger(__name__)


def run_pipeline(
    config: RunConfig | str | os.PathLike,
    *,
    executor: str | None = None,
    overrides: dict[str, Any] | None = None,
    verbose: bool | str | int | None = None,
    allow_code: bool | None = None,
) -> RunOutput:
    """Run a config end to end: extract features, fit every subject, map layers, write the report.

    Parameters
    ----------
    config : RunConfig | path
        A config object or a YAML file.
    executor : str | None
        Override ``executor.kind`` (``"serial"``, ``"local:N"``, ``"dask:tcp://..."``,
        ``"slurm"``).
    overrides : dict | None
        Dotted-key overrides (``{"output.dir": "out"}``), applied to a copy.
    verbose : bool | str | int | None
        Progress bars and info messages (mne's convention,
        :func:`neuroenc._logging.verbose_level`: None follows the ``neuroenc`` logger's level,
        True is ``INFO``, False ``WARNING``; bars show at ``INFO`` and below).
    allow_code : bool | None
        The opt-in to what a config file may not do alone (a loader named as
        ``"module:function"``, SLURM shell code, a scheduler on another machine: see
        :mod:`neuroenc.pipeline.trust`); ``None``: the environment variable
        ``NEUROENC_ALLOW_CODE``. The executor and overrides given here are the caller's.

    Returns
    -------
    output : RunOutput

    Raises
    ------
    ConfigError
        For a bad config, or one that asks for what needs the opt-in (before anything is
        loaded).
    """
    if not isinstance(config, RunConfig):
        config = load_config(config, overrides=overrides, allow_code=code_allowed(allow_code))
    elif overrides:
        config = config_from_dict(apply_overrides(config.to_dict(), overrides), source=config.source,
                                  caller_keys=config.caller_keys | set(overrides),
                                  allow_code=config.allow_code)
    config = copy.deepcopy(config)  # the caller's config is left as it was
    config.allow_code = code_allowed(allow_code or config.allow_code)
    if executor is not None:
        config.executor.kind = executor
        config.caller_keys = config.caller_keys | {"executor.kind"}
        config.validate()
    check_trust(config)
    config = resolve_kind(config)  # a custom loader's kind of data set, once it may be imported
    check_run_folders(config)  # an unwritable output or cache folder, before hours of work
    from .stimuli_run import is_stimulus_config, run_stimulus_pipeline

    if is_stimulus_config(config):  # stimulus-level data sets: no time, no runs
        return run_stimulus_pipeline(config, verbose=verbose)
    if config.executor.kind != "serial":
        from .distributed import run_distributed

        return run_distributed(config, verbose=verbose)
    timings: dict[str, float] = {}
    t0 = time.time()
    dataset = load_dataset(config.dataset, allow_code=config.allow_code)
    timings["load"] = time.time() - t0
    logger.info("data set %r: %d subjects, %d runs", dataset.name, len(dataset.subjects), len(dataset.runs))
    out_dir = output_dir(config)
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    extractor = make_extractor(config, verbose=verbose)
    runs = sorted({r for rs in dataset.responses.values() for r in rs}) or dataset.runs
    features = {run: extract_run(config, dataset.transcripts[run], extractor) for run in runs}
    timings["extract"] = time.time() - t0

    t0 = time.time()
    ceilings = noise_ceilings(config, dataset)
    results: dict[str, Path] = {}
    subjects = list(dataset.responses)
    try:
        from tqdm.auto import tqdm

        iterator = tqdm(subjects, desc="fit subjects", unit="subject", disable=not show_progress(verbose))
    except ImportError:  # pragma: no cover
        iterator = subjects
    for subject in iterator:
        results[subject] = fit_subject(config, subject, features, dataset=dataset,
                                       noise_ceiling=ceilings.get(subject))
    timings["fit"] = time.time() - t0
    return finish_run(config, features, results, timings)


__all__ = ["run_pipeline"]
