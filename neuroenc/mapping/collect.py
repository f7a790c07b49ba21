"""Gather results files into one set (one file per subject) and into tidy tables.

A *group* is the results of one model on several subjects: one :class:`EncodingResults` per
subject, with the same layers and the same targets. Everything downstream (best layers,
profiles, group tests, the report) starts from such a group or from its tidy table.
"""
from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._validation import _preview
from ..encoding.results import EncodingResults

logger = logging.getLogger(__name__)

def results_files(source: str | os.PathLike) -> list[Path]:
    """A results path, a folder (its ``*.h5`` files) or a glob pattern, as a sorted list of files."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.glob("*.h5") if p.is_file())
        if not files:
            raise FileNotFoundError(
                f"no results files (*.h5) in folder {text!r}; pass the folder that "
                "`neuroenc fit` wrote to, or the files themselves."
            )
        return files
    if path.exists():
        return [path]
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"no results files match the pattern {text!r}.")
        return files
    raise FileNotFoundError(f"results file not found: {text!r}.")


def load_results(
    sources: str | os.PathLike | EncodingResults | Iterable[str | os.PathLike | EncodingResults],
) -> list[EncodingResults]:
    """Load one group of results: files, folders of ``*.h5`` files, glob patterns or objects.

    Parameters
    ----------
    sources : path | EncodingResults | iterable of these
        Results files (one per subject), folders holding them, glob patterns such as
        ``"results/*.h5"``, or already loaded :class:`EncodingResults`.

    Returns
    -------
    results : list of EncodingResults
        In the order given (files of a folder or pattern sorted by name). Each loaded file's
        folder is kept in ``results.provenance["results_dir"]`` when the provenance has none,
        so that relative paths in it (e.g. a ``"mask"``) can be resolved.
    """
    if isinstance(sources, (str, os.PathLike, EncodingResults)):
        sources = [sources]
    out: list[EncodingResults] = []
    for source in sources:
        if isinstance(source, EncodingResults):
            out.append(source)
            continue
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"results must be paths or EncodingResults, got {type(source).__name__} instead."
            )
        for path in results_files(source):
            res = EncodingResults.load(path)
            res.provenance.setdefault("results_dir", str(path.resolve().parent))
            res.provenance.setdefault("results_file", path.name)
            out.append(res)
    if not out:
        raise ValueError("no results given; pass at least one results file.")
    check_group(out)
    logger.info("loaded %d results (%d layers, %d targets)", len(out), out[0].n_layers, out[0].n_targets)
    return out


def subject_labels(results: Sequence[EncodingResults]) -> list[str]:
    """The subject of each results object; ``"1"``, ``"2"``... where the provenance has none."""
    labels = [str(r.subject) if r.subject is not None else str(i + 1) for i, r in enumerate(results)]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    dups = [k for k, v in seen.items() if v > 1]
    if dups:
        raise ValueError(
            f"several results for subject(s) {_preview(dups)}; pass one results file per subject "
            "(of one model)."
        )
    return labels


def check_group(results: Sequence[EncodingResults]) -> None:
    """Check that results form one group: one model, the same layers and targets, features made
    the same way (:func:`check_same_features`), distinct responses
    (:func:`check_distinct_responses`) and distinct subjects."""
    if not results:
        raise ValueError("no results given; pass at least one results file.")
    first = results[0]
    models = sorted({str(r.model) for r in results})
    if len(models) > 1:
        raise ValueError(
            f"results of several models {_preview(models)}; make one report per model "
            "(pass the results files of one model)."
        )
    for r in results[1:]:
        if not np.array_equal(r.layers, first.layers):
            raise ValueError(
                f"results of subject {r.subject!r} have layers {_preview(r.layers)} but those of "
                f"subject {first.subject!r} have {_preview(first.layers)}; fit every subject on the "
                "same layers."
            )
        if list(r.targets) != list(first.targets):
            raise ValueError(
                f"results of subject {r.subject!r} have targets {_preview(r.targets)} but those of "
                f"subject {first.subject!r} have {_preview(first.targets)}; the group needs the same "
                "targets in the same order (ROIs, or voxels of one mask)."
            )
    check_same_features(results)
    check_distinct_responses(results)
    subject_labels(results)


def _source(res: EncodingResults, i: int) -> str:
    """The results file of ``res`` (as :func:`load_results` records it), for messages."""
    prov = res.provenance
    if prov.get("results_file"):
        return repr(str(Path(prov.get("results_dir") or "") / prov["results_file"]))
    return f"results {i + 1} (subject {res.subject!r})"


def features_provenance(res: EncodingResults) -> dict | None:
    """What made the features of a fit (:func:`~neuroenc.features.featureset.extraction_provenance`,
    as the design recorded it in the provenance), or None for results that do not record it."""
    design = res.provenance.get("design")
    found = design.get("features") if isinstance(design, dict) else None
    return found if isinstance(found, dict) else None


def check_same_features(results: Sequence[EncodingResults]) -> None:
    """Raise if results were fitted on features made differently (another context, pooling,
    model revision...): the fields that :func:`~neuroenc.features.featureset.check_compatible_features`
    compares between the runs of one design, compared between the results of one group. Results
    that do not record their features' provenance are not compared."""
    from ..features.featureset import provenance_difference

    known = [(i, r, features_provenance(r)) for i, r in enumerate(results)]
    known = [(i, r, p) for i, r, p in known if p is not None]
    if len(known) < 2:
        return
    i0, first, theirs = known[0]
    for i, res, mine in known[1:]:
        differ = provenance_difference(mine, theirs)
        if differ is not None:
            field, a, b = differ
            raise ValueError(
                f"results {_source(first, i0)} and {_source(res, i)} were fitted on features made "
                f"differently: {field}={b!r} for the first but {field}={a!r} for the second. Their "
                "scores are not comparable, so they cannot be pooled as subjects of one group; fit "
                "every subject on features extracted with the same settings (or make one report per "
                "setting)."
            )


def _response_hashes(res: EncodingResults) -> set[str]:
    value = res.provenance.get("responses_sha256")
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, str):
        value = [value]
    return {str(v) for v in value or [] if v}


def check_distinct_responses(results: Sequence[EncodingResults]) -> None:
    """Raise if two results fit the same responses (the same ``responses_sha256`` in their
    provenance): one subject's data fitted twice would count as two subjects."""
    seen: dict[str, int] = {}
    for i, res in enumerate(results):
        for digest in sorted(_response_hashes(res)):
            if digest in seen and seen[digest] != i:
                j = seen[digest]
                raise ValueError(
                    f"results {_source(results[j], j)} and {_source(res, i)} are fits of the same responses "
                    f"(responses_sha256 {digest[:12]}...): they would count as two subjects. Give each "
                    "subject's results once (keep one of the two fits)."
                )
            seen.setdefault(digest, i)


def scores_table(results: EncodingResults | Sequence[EncodingResults]) -> pd.DataFrame:
    """The tidy scores table: one row per (subject, layer, target).

    Columns: ``subject, model, layer, relative_depth, target, r, r2, p, q, alpha`` and, where the
    results have them, ``baseline_r`` and ``noise_ceiling`` (see
    :meth:`EncodingResults.to_frame`). Subjects without a name in the provenance are numbered.
    """
    if isinstance(results, EncodingResults):
        results = [results]
    check_group(results)
    frames = []
    for label, res in zip(subject_labels(results), results):
        df = res.to_frame()
        df["subject"] = label
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def fold_table(results: EncodingResults | Sequence[EncodingResults]) -> pd.DataFrame:
    """The tidy per-fold table: one row per (subject, fold, layer, target) with ``r`` and ``r2``.

    Raises a ValueError when a results object has no fold scores.
    """
    if isinstance(results, EncodingResults):
        results = [results]
    check_group(results)
    frames = []
    for label, res in zip(subject_labels(results), results):
        if res.fold_r is None:
            raise ValueError(
                f"results of subject {label!r} have no fold scores (/fold_scores/r); bootstrap over "
                "subjects instead (unit='subject')."
            )
        n_f, n_l, n_t = res.fold_r.shape
        r2 = res.fold_r2 if res.fold_r2 is not None else np.full(res.fold_r.shape, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "subject": label,
                    "model": res.model,
                    "fold": np.repeat(np.arange(n_f), n_l * n_t),
                    "layer": np.tile(np.repeat(res.layers, n_t), n_f),
                    "relative_depth": np.tile(np.repeat(res.relative_depth, n_t), n_f),
                    "target": np.tile(np.asarray(res.targets, dtype=object), n_f * n_l),
                    "r": res.fold_r.ravel(),
                    "r2": r2.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
