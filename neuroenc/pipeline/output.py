"""What a run makes, and its common end: :class:`RunOutput` and :func:`finish_run`.

Every run (:func:`~neuroenc.pipeline.run_pipeline`, serial or on Dask, of any kind of data
set) returns a :class:`RunOutput` and ends with :func:`finish_run` (mapping, report, CSV tables).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_path
from .._owned import MANIFEST, check_replace, record_written
from ..encoding.results import EncodingResults
from ..mapping import map_layers
from ..mapping.summary import MARGINS_NOTE, describe_target, group_best_table
from .config import RunConfig
from .loaders import GROUP
from .tasks import mapping_params, output_dir, write_report


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
    #: Task counts of the run's graph (see :func:`neuroenc.pipeline.distributed.execute`, serial or
    #: on Dask): ``skipped`` (outputs already complete), ``submitted``, ``computed``, and per kind.
    tasks: dict[str, int] = field(default_factory=dict)
    #: The summary tables written as CSV (:func:`write_tables`), by name.
    tables: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """One block per fit, one line per target: the best layer with the layers the data cannot
        tell apart from it and its margins (group-mean fit, when there is one), then the subjects'."""
        lines = []
        if self.group_table is not None and len(self.group_table):
            parts = [describe_target(row, "r", 1) for _, row in self.group_table.iterrows()]
            note = [MARGINS_NOTE] if "delta_last" in self.group_table else []
            lines.append("\n".join(["Group-mean response:"] + [f"- {p}." for p in parts] + note))
        if self.mapping is not None:
            lines.append(self.mapping.summary())
        return "\n\n".join(lines)


def finish_run(config: RunConfig, features: dict[str, Path], results: dict[str, Path],
               timings: dict[str, float]) -> RunOutput:
    """Map layers and write the report and tables from the results files (the serial and
    distributed runners' common end).

    Parameters
    ----------
    config : RunConfig
    features : dict of str -> Path
        The feature file of each run.
    results : dict of str -> Path
        The results file of each subject (``"group"``: the group-mean fit, when there is one).
    timings : dict of str -> float
        Seconds per stage so far; ``"report"`` is added.

    Returns
    -------
    output : RunOutput
    """
    from ..report.sections import group_mean_section, holdout_section, stimulus_rows_section

    report = None
    mapping = None
    group_table = None
    if GROUP in results:
        group_table = group_best_table(EncodingResults.load(results[GROUP]))
    individual = [p for s, p in results.items() if s != GROUP]
    baselines = baseline_models_table(results)
    if baselines is not None:
        path = output_dir(config) / "baselines.csv"
        check_replace(path, "table")  # never over a file neuroenc did not write
        with atomic_path(path) as tmp:
            baselines.to_csv(tmp, index=False)
        record_written(path)
    if config.output.report:
        t0 = time.time()
        if GROUP in results and individual:
            mapping = map_layers(individual, **mapping_params(config))
        shown = EncodingResults.load(results.get(GROUP) or next(iter(results.values())))
        sections = [s for s in [stimulus_rows_section(shown, baselines, timings)] if s is not None]
        held = holdout_section([EncodingResults.load(p) for p in individual], published_for(config),
                               model=config.model.name)
        sections += [held] if held is not None else []
        sections += ([group_mean_section(EncodingResults.load(results[GROUP]), mapping,
                                         random_state=config.encoding.random_state)]
                     if GROUP in results else [])
        report, mapping = write_report(config, list(results.values()), sections=sections, mapping=mapping)
        timings["report"] = time.time() - t0
    tables = write_tables(output_dir(config) / "tables", mapping, group_table)
    return RunOutput(config, features, results, report, mapping, group_table, timings, tables=tables)


def published_for(config: RunConfig) -> tuple[dict[str, Any], ...]:
    """The published results of the config's data set that its report shows beside the run's
    (LeBel et al. 2023's: :data:`~neuroenc.datasets.lebel2023.LEBEL_PUBLISHED`); none for others."""
    if config.dataset.loader == "lebel2023":
        from ..datasets.lebel2023 import LEBEL_PUBLISHED

        return LEBEL_PUBLISHED
    return ()


def baseline_models_table(results: dict[str, Path]) -> pd.DataFrame | None:
    """The baseline models of the first individual fit (each regressor alone, and all together;
    ``provenance["baseline_models"]``, see :func:`~neuroenc.encoding.fit_encoding`), with its
    subject; None when it has none."""
    subjects = [s for s in results if s != GROUP] or list(results)
    if not subjects:
        return None
    first = EncodingResults.load(results[subjects[0]])
    rows = first.provenance.get("baseline_models")
    if not rows:
        return None
    table = pd.DataFrame(rows)
    table.insert(0, "subject", subjects[0])
    return table


def write_tables(folder: Path, mapping: Any, group_table: pd.DataFrame | None) -> dict[str, Path]:
    """The run's summary tables as CSV files in ``folder``, written atomically.

    ``best_layers.csv`` (the subjects' mapping: per target the best layer, the best-layer set,
    the margins with their intervals, the split-half stability, the group test),
    ``best_layers_per_subject.csv``, ``best_layer_stability.csv`` (share of random halves of the
    subjects whose mean profile is best at each layer) and ``group_mean_best_layers.csv`` (the
    group-mean fit's :meth:`~neuroenc.encoding.EncodingResults.best`), when there is one. When
    the fits have unique contributions beyond a baseline, ``best_layers.csv`` and
    ``group_mean_best_layers.csv`` have the ``unique_*`` columns (the best layer by unique
    contribution, its Δr² with interval and p, its set) and ``unique_layers.csv`` holds, per
    target and layer, the mean Δr² over subjects with its interval, p and set
    (:func:`~neuroenc.mapping.unique.unique_layers`).

    Each file written is listed, with its sha256, in the folder's manifest
    (``.neuroenc-files.json``), so that a later run replaces it; a file of the same name that
    neuroenc did not write is never replaced (:class:`~neuroenc._owned.ForeignFileError`,
    raised before any table is written).
    """
    tables = {}
    if mapping is not None:
        tables["best_layers"] = mapping.group
        tables["best_layers_per_subject"] = mapping.best
        if mapping.stability is not None and len(mapping.stability):
            tables["best_layer_stability"] = mapping.stability
        if getattr(mapping, "unique", None) is not None:
            tables["unique_layers"] = mapping.unique
    if group_table is not None:
        tables["group_mean_best_layers"] = group_table
    written = {}
    if tables:
        check_replace(folder / MANIFEST, "manifest of neuroenc's files")
    for name in tables:
        check_replace(folder / f"{name}.csv", "table")
    for name, table in tables.items():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        record_written(path)
        written[name] = path
    return written


__all__ = ["RunOutput", "baseline_models_table", "finish_run", "write_tables"]
