"""``neuroenc run``: extract → align → fit → map → report, from a run config.

One runner for every kind of data set (word-timed stories, stimulus-level sets) and every
executor: the config is set up once here (overrides, the opt-in, trust checks, the kind of
data set), then its task graph runs (:func:`~neuroenc.pipeline.distributed.execute`): in
this process for ``executor.kind: serial`` (loading the model once), on a Dask cluster
otherwise. Every task's output is cached (features per run, results per subject), so a second
run reuses everything that is complete.
"""
from __future__ import annotations

import copy
import logging
import os
from typing import Any

from .config import RunConfig, apply_overrides, config_from_dict, load_config, resolve_kind
from .optin import code_allowed
from .output import RunOutput
from .trust import check_run_folders, check_trust

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
    from .._threads import thread_limits
    from .distributed import execute

    with thread_limits():  # the command's --threads, else NEUROENC_THREADS, else the cores this process may use
        return execute(config, verbose=verbose)


__all__ = ["run_pipeline"]
