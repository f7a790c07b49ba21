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

from ..encoding.results import P_MAX_OVER_LAYERS, EncodingResults
from ..encoding.stats import describe_null
from ..mapping import map_layers
from .config import RunConfig, apply_overrides, config_from_dict, load_config, resolve_kind
from .loaders import GROUP, load_dataset
from .trust import check_trust, code_allowed
from .tasks import (
    extract_run,
    fit_subject,
    make_extractor,
    mapping_params,
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
    #: The summary tables written as CSV (:func:`write_tables`), by name.
    tables: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """One block per fit, one line per target: the best layer with the layers the data cannot
        tell apart from it and its margins (group-mean fit, when there is one), then the subjects'."""
        from ..mapping.summary import describe_target

        lines = []
        if self.group_table is not None and len(self.group_table):
            parts = [describe_target(row, "r", 1) for _, row in self.group_table.iterrows()]
            lines.append("\n".join(["Group-mean response:"] + [f"- {p}." for p in parts]))
        if self.mapping is not None:
            lines.append(self.mapping.summary())
        return "\n\n".join(lines)


def group_best_table(results: EncodingResults) -> pd.DataFrame:
    """Best layer per target of one results file (e.g. the group-mean fit): :meth:`EncodingResults.best`.

    ``depth`` repeats ``best_depth`` and ``r_last_layer`` repeats ``r_last`` under the names
    earlier versions of this table used.
    """
    table = results.best()
    table.insert(2, "depth", table["best_depth"])
    table["r_last_layer"] = table["r_last"]
    return table


def _subjects_best(mapping: Any, targets: list[str], best_set: pd.Series | None) -> pd.DataFrame:
    """Per target: the individual subjects' best layers beside the group-mean fit's."""
    best = mapping.best
    rows = []
    for target in targets:
        layers = best.loc[best["target"] == target, "best_layer"].dropna().astype(int).to_numpy()
        if layers.size == 0:
            rows.append({"target": target})
            continue
        q1, med, q3 = np.percentile(layers, [25, 50, 75])
        row = {"target": target, "subjects_best_median": med, "subjects_best_iqr": f"{q1:.0f}–{q3:.0f}",
               "subjects_best": ", ".join(f"{k}×{v}" if v > 1 else str(k)
                                          for k, v in zip(*np.unique(layers, return_counts=True)))}
        if best_set is not None and isinstance(best_set.get(target), str):
            allowed = _set_layers(best_set[target])
            row["subjects_in_group_set"] = f"{np.isin(layers, allowed).sum()} of {layers.size}"
        rows.append(row)
    return pd.DataFrame(rows)


def _set_layers(text: str) -> list[int]:
    """``"3, 12–14"`` -> [3, 12, 13, 14] (the inverse of :func:`~neuroenc.encoding.compare.format_layer_set`)."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("–")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _group_section(results: EncodingResults, random_state: int = 0, mapping: Any = None):
    """A report section for the group-mean fit: profiles with CIs over CV folds and the best-layer
    set, best layers with what each p-value tests, and the subjects' own best layers."""
    from ..encoding.compare import describe_comparison
    from ..mapping import map_layers
    from ..report import ReportSection, plot_layer_profiles

    table = group_best_table(results)
    members = results.provenance.get("group_members") or []
    corrected = bool((table["p_method"] == P_MAX_OVER_LAYERS).any())
    if corrected:
        p_text = (
            f"p, q (against chance, max over layers): the permutation p-value of the best layer's r "
            f"against the maximum over all {results.n_layers} layers of the permutation null (the same "
            "permutations for every layer), so it is corrected for choosing the best layer, and "
            "its Benjamini-Hochberg q-value across targets; p_layer, q_layer: that layer's own, "
            "uncorrected values. They test the best layer against chance, not against the other layers."
        )
        table = table.rename(columns={"p": "p_max", "q": "q_max"})
    else:
        p_text = (
            "p, q: the best layer's own permutation p-value against chance and its q-value, not "
            f"corrected for choosing the best of the {results.n_layers} layers (these results have no "
            "max-over-layers p-values), so they are optimistic."
        )
    comp = results.comparison
    c_text = ""
    if comp is not None:
        c_text = (
            " Against the other layers: " + describe_comparison(comp.source, results.n_layers, comp.n_draws, comp.alpha)
            + " The band on each profile marks that set. delta_last, delta_mid: the best layer's r minus "
            f"the last layer's and minus the best intermediate layer's (depth 1/3–2/3), with {comp.ci:.0%} "
            "intervals from the same draws; the best layer is chosen on these data, so they are optimistic."
        )
    text = (
        f"The mean of the {len(members)} subjects' z-scored responses, fitted as one more "
        "subject (same features, delays, cross-validation and permutation test). Averaging "
        "removes most subject-specific noise, so its scores are higher than a single "
        "subject's; its noise ceiling is that of the group mean. Bands: 95% bootstrap "
        "intervals over the outer CV folds. The best-layer r is the maximum over layers, so it "
        f"is optimistically biased. {p_text}{c_text} {describe_null(results.settings)}"
    ).strip()
    own = map_layers(results, profile_unit="fold" if results.fold_r is not None else "auto",
                     random_state=random_state)
    figure = plot_layer_profiles(own.profiles, own.group, title="Group-mean response: held-out r per layer "
                                 "(band: bootstrap over CV folds; shaded: best-layer set)")
    tables = [("Best layer per target (group-mean fit)", table)]
    if mapping is not None and mapping.n_subjects > 1:
        sets = table.set_index("target")["best_set"] if "best_set" in table else None
        tables.append((
            "The individual subjects' best layers beside the group-mean fit (median, interquartile "
            "range, each layer with its count, and how many fall in the group-mean fit's best-layer set)",
            _subjects_best(mapping, list(results.targets), sets),
        ))
    return ReportSection("Group-mean response", text, figures=[("Layer profiles of the group-mean fit", figure)],
                         tables=tables)


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
        individual = [p for s, p in results.items() if s != GROUP]
        if GROUP in results and individual:
            mapping = map_layers(individual, **mapping_params(config))
        sections = ([_group_section(EncodingResults.load(results[GROUP]), config.encoding.random_state, mapping)]
                    if GROUP in results else [])
        report, mapping = write_report(config, list(results.values()), sections=sections, mapping=mapping)
        timings["report"] = time.time() - t0
    tables = write_tables(output_dir(config) / "tables", mapping, group_table)
    return RunOutput(config, features, results, report, mapping, group_table, timings, tables=tables)


def write_tables(folder: Path, mapping: Any, group_table: pd.DataFrame | None) -> dict[str, Path]:
    """The run's summary tables as CSV files in ``folder``, written atomically.

    ``best_layers.csv`` (the subjects' mapping: per target the best layer, the best-layer set,
    the margins with their intervals, the split-half stability, the group test),
    ``best_layers_per_subject.csv``, ``best_layer_stability.csv`` (share of random halves of the
    subjects whose mean profile is best at each layer) and ``group_mean_best_layers.csv`` (the
    group-mean fit's :meth:`~neuroenc.encoding.EncodingResults.best`), when there is one.
    """
    from .._io import atomic_path

    tables = {}
    if mapping is not None:
        tables["best_layers"] = mapping.group
        tables["best_layers_per_subject"] = mapping.best
        if mapping.stability is not None and len(mapping.stability):
            tables["best_layer_stability"] = mapping.stability
    if group_table is not None:
        tables["group_mean_best_layers"] = group_table
    written = {}
    for name, table in tables.items():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        written[name] = path
    return written


__all__ = ["RunOutput", "group_best_table", "results_path", "run_pipeline"]
