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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..encoding.results import EncodingResults
from ..encoding.stats import describe_null
from .config import RunConfig, apply_overrides, config_from_dict, load_config
from .loaders import GROUP, load_dataset
from .trust import check_trust, code_allowed
from .tasks import (
    extract_run,
    fit_subject,
    make_extractor,
    noise_ceilings,
    output_dir,
    results_path,
    write_report,
)

logger = logging.getLogger(__name__)


@dataclass
class RunOutput:
    """What :func:`run_pipeline` made: file paths, the mapping, timings and a summary."""

    config: RunConfig
    features: dict[str, Path]
    results: dict[str, Path]
    report: Path | None
    mapping: Any = None
    group_table: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: Task counts of a distributed run (see :func:`neuroenc.pipeline.distributed.run_distributed`):
    #: ``skipped`` (outputs already complete), ``submitted``, ``computed``; empty when serial.
    tasks: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph: best layer per target, its r and p (group-mean fit when there is one)."""
        lines = []
        if self.group_table is not None and len(self.group_table):
            parts = [
                f"{row.target}: layer {int(row.best_layer)} (depth {row.depth:.2f}), r = {row.r:.3f}"
                + (f" vs baseline {row.baseline_r:.3f}" if np.isfinite(row.baseline_r) else "")
                + (f", p = {row.p:.3g}" if np.isfinite(row.p) else "")
                for row in self.group_table.itertuples()
            ]
            lines.append("Group-mean response, best layer per target: " + "; ".join(parts) + ".")
        if self.mapping is not None:
            lines.append(self.mapping.summary())
        return "\n\n".join(lines)


def group_best_table(results: EncodingResults) -> pd.DataFrame:
    """Best layer per target of one results file (e.g. the group-mean fit), with r, p, baseline.

    ``p`` and ``q`` are the permutation p- and q-values of the best layer's r corrected for
    choosing the best of the layers (``results.pvalues_best``: max over layers of the null) when
    the results have them, else the best layer's own (uncorrected) values; ``p_method`` says
    which (``"max over layers"`` or ``"best layer only"``), ``p_layer`` and ``q_layer`` are the
    best layer's own. The best-layer ``r`` is a maximum over layers, so it is optimistically
    biased.
    """
    from ..mapping.layers import P_BEST_LAYER_ONLY, P_MAX_OVER_LAYERS

    n_t = results.n_targets
    finite = np.isfinite(results.r)
    best = np.argmax(np.where(finite, results.r, -np.inf), axis=0)
    valid = finite.any(0)
    idx = np.arange(n_t)
    nan = np.full(n_t, np.nan)
    base = results.baseline.get("r")
    p_layer = np.where(valid, results.pvalues[best, idx], np.nan) if results.pvalues is not None else nan
    q_layer = np.where(valid, results.qvalues[best, idx], np.nan) if results.qvalues is not None else nan
    p_best = results.pvalues_best if results.pvalues_best is not None else nan
    q_best = results.qvalues_best if results.qvalues_best is not None else nan
    corrected = valid & np.isfinite(p_best)
    return pd.DataFrame({
        "target": results.targets,
        "best_layer": results.layers[best],
        "depth": results.relative_depth[best],
        "r": results.r[best, idx],
        "r_last_layer": results.r[-1],
        "baseline_r": base if base is not None else nan,
        "p": np.where(corrected, p_best, p_layer),
        "q": np.where(corrected, q_best, q_layer),
        "p_method": np.where(corrected, P_MAX_OVER_LAYERS, P_BEST_LAYER_ONLY).astype(object),
        "p_layer": p_layer,
        "q_layer": q_layer,
        "noise_ceiling": results.noise_ceiling if results.noise_ceiling is not None else nan,
    })


def _group_section(results: EncodingResults, random_state: int = 0):
    """A report section for the group-mean fit: profiles with CIs over CV folds, best layers."""
    from ..mapping import map_layers
    from ..mapping.layers import P_MAX_OVER_LAYERS
    from ..report import ReportSection, plot_layer_profiles

    table = group_best_table(results)
    members = results.provenance.get("group_members") or []
    corrected = bool((table["p_method"] == P_MAX_OVER_LAYERS).any())
    if corrected:
        p_text = (
            f"p, q (max over layers): the permutation p-value of the best layer's r against the "
            f"maximum over all {results.n_layers} layers of the permutation null (the same "
            "permutations for every layer), so it is corrected for choosing the best layer, and "
            "its Benjamini-Hochberg q-value across targets; p_layer, q_layer: that layer's own, "
            "uncorrected values."
        )
        table = table.rename(columns={"p": "p_max", "q": "q_max"})
    else:
        p_text = (
            "p, q: the best layer's own permutation p-value and its q-value, not corrected for "
            f"choosing the best of the {results.n_layers} layers (these results have no "
            "max-over-layers p-values), so they are optimistic."
        )
    text = (
        f"The mean of the {len(members)} subjects' z-scored responses, fitted as one more "
        "subject (same features, delays, cross-validation and permutation test). Averaging "
        "removes most subject-specific noise, so its scores are higher than a single "
        "subject's; its noise ceiling is that of the group mean. Bands: 95% bootstrap "
        "intervals over the outer CV folds. The best-layer r is the maximum over layers, so it "
        f"is optimistically biased. {p_text} {describe_null(results.settings)}"
    ).strip()
    mapping = map_layers(results, profile_unit="fold" if results.fold_r is not None else "auto",
                         random_state=random_state)
    figure = plot_layer_profiles(mapping.profiles, title="Group-mean response: held-out r per layer")
    return ReportSection("Group-mean response", text, figures=[("Layer profiles of the group-mean fit", figure)],
                         tables=[("Best layer per target (group-mean fit)", table)])


def run_pipeline(
    config: RunConfig | str | os.PathLike,
    *,
    executor: str | None = None,
    overrides: dict[str, Any] | None = None,
    verbose: bool = True,
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
    verbose : bool
        Progress bars and info messages.
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
        config = load_config(config, overrides=overrides)
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
    extractor = make_extractor(config, verbose=None if verbose else "warning")
    runs = sorted({r for rs in dataset.responses.values() for r in rs}) or dataset.runs
    features = {run: extract_run(config, dataset.transcripts[run], extractor) for run in runs}
    timings["extract"] = time.time() - t0

    t0 = time.time()
    ceilings = noise_ceilings(config, dataset)
    results: dict[str, Path] = {}
    subjects = list(dataset.responses)
    try:
        from tqdm.auto import tqdm

        iterator = tqdm(subjects, desc="fit subjects", unit="subject", disable=not verbose)
    except ImportError:  # pragma: no cover
        iterator = subjects
    for subject in iterator:
        results[subject] = fit_subject(config, subject, features, dataset=dataset,
                                       noise_ceiling=ceilings.get(subject))
    timings["fit"] = time.time() - t0
    return _finish_run(config, features, results, timings)


def _finish_run(config: RunConfig, features: dict[str, Path], results: dict[str, Path],
                timings: dict[str, float]) -> RunOutput:
    """Map layers and write the report from the results files (the serial and distributed
    runners' common end)."""
    report = None
    mapping = None
    group_table = None
    if GROUP in results:
        group_table = group_best_table(EncodingResults.load(results[GROUP]))
    if config.output.report:
        t0 = time.time()
        sections = ([_group_section(EncodingResults.load(results[GROUP]), config.encoding.random_state)]
                    if GROUP in results else [])
        report, mapping = write_report(config, list(results.values()), sections=sections)
        timings["report"] = time.time() - t0
    return RunOutput(config, features, results, report, mapping, group_table, timings)


__all__ = ["RunOutput", "group_best_table", "results_path", "run_pipeline"]
