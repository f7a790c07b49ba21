"""``neuroenc run`` for stimulus-level data sets: extract → fit → map → report, without time.

A config whose ``dataset.loader`` is stimulus-level (``stimuli``, ``naturalstories_rt``, or a
custom loader with ``stimulus_level = True``) runs here: the stimuli's features with
:class:`~neuroenc.features.StimulusExtractor` (cached as the story path's features are), one
:func:`~neuroenc.encoding.fit_stimuli` per subject (and the subjects' mean with a split-half
noise ceiling when ``group_mean: true``), then the shared mapping and report, with one more
section: the layers' ``r`` beside ``r_pooled`` and the baseline models.

Baseline regressors (``encoding.baseline``) are names: a regressor the data set provides
(e.g. ``position`` for Natural Stories), or one computed from the stimuli: ``length`` (letters
and digits of the text), ``n_words``, ``position`` (index in its group), ``log_frequency`` (mean
over the stimulus's words of the Zipf frequency, log10 per billion words, from the ``wordfreq``
package when it is installed; left out with a warning otherwise) and ``surprisal`` (the model's
own, :func:`~neuroenc.features.stimulus_surprisal`, read with the features' context). The
main fit's baseline holds them all; the report also scores each alone.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .._owned import check_replace, record_written
from .._validation import _sha256_file
from .config import ConfigError, RunConfig
from .loaders import GROUP, is_stimulus_loader, load_dataset
from .output import RunOutput
from .tasks import (
    blas_threads,
    cache_dir,
    mapping_params,
    output_dir,
    results_current,
    results_key,
    results_path,
    write_report,
)

logger = logging.getLogger(__name__)

#: Baseline regressors computed from the stimuli (beside those a data set provides).
COMPUTED_REGRESSORS = ("length", "n_words", "position", "log_frequency", "surprisal")


def is_stimulus_config(config: RunConfig) -> bool:
    """Whether the config's data set is stimulus-level."""
    return is_stimulus_loader(config.dataset.loader, allow_code=config.allow_code)


def make_stimulus_extractor(config: RunConfig, verbose: bool | str | int | None = None, surprisal: bool = False):
    """The :class:`~neuroenc.features.StimulusExtractor` of a config's ``model`` section.

    The section is StimulusExtractor's (:func:`~neuroenc.pipeline.config.section_settings`):
    only the values it gives are passed, so the extractor's defaults apply to the rest, and
    the extractor checks them together (e.g. ``context_tokens`` with ``context: none``) when
    the config is read. ``surprisal`` is asked for by ``encoding.baseline``.
    """
    from ..features.stimuli import StimulusExtractor

    if config.kind != "stimuli":
        raise ConfigError(f"the config's model section is that of {config.kind!r} data sets, not of a "
                          f"stimulus-level one (dataset.loader {config.dataset.loader!r}).")
    return StimulusExtractor(config.model.name, **config.model.kwargs(StimulusExtractor),
                             cache_dir=cache_dir(config), surprisal=surprisal, verbose=verbose)


def _log_frequency(texts: list[str], lang: str = "en") -> np.ndarray | None:
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        return None
    return np.asarray([np.mean([zipf_frequency(w, lang) for w in t.split()]) for t in texts])


def compute_regressors(config: RunConfig, dataset: Any, extractor: Any, names: list[str],
                       features: Any = None) -> tuple[dict, list[str]]:
    """The baseline regressors ``names`` per stimulus, and warnings (a regressor left out).

    ``surprisal`` comes from the features' own forward passes when they carry it
    (``attrs["surprisal"]``), else from :func:`~neuroenc.features.stimulus_surprisal`. Cached in
    ``<output.dir>/regressors/`` under a key of the stimuli, the model's identity, the context
    settings and the names.
    """
    stimuli = dataset.stimuli
    unknown = [n for n in names if n not in dataset.regressors and n not in COMPUTED_REGRESSORS]
    if unknown:
        raise ConfigError(
            f"encoding.baseline names unknown regressor(s) {unknown}: use those of the data set "
            f"{sorted(dataset.regressors)} or computed ones {list(COMPUTED_REGRESSORS)}."
        )
    params = extractor.check_params()
    key_src = {"stimuli": stimuli.sha256(), "names": names, "model": extractor.model_identity(),
               "context": extractor.context, "context_tokens": params["context_tokens"],
               "stride": params["stride"], "prepend_bos": extractor.prepend_bos, "version": __version__}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = output_dir(config) / "regressors" / f"{stimuli.name}_{key}.csv"
    messages: list[str] = []
    if path.exists():
        table = pd.read_csv(path)
        return {c: table[c].to_numpy(dtype=float) for c in table.columns}, messages
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in dataset.regressors:
            out[name] = np.asarray(dataset.regressors[name], dtype=float)
        elif name == "length":
            out[name] = np.asarray([sum(c.isalnum() for c in t) for t in stimuli.texts], dtype=float)
        elif name == "n_words":
            out[name] = np.asarray([len(t.split()) for t in stimuli.texts], dtype=float)
        elif name == "position":
            pos = np.zeros(len(stimuli))
            for idx in stimuli.group_indices():
                pos[idx] = np.arange(idx.size)
            out[name] = pos
        elif name == "log_frequency":
            values = _log_frequency(stimuli.texts)
            if values is None:
                messages.append("encoding.baseline log_frequency left out: the 'wordfreq' package (an offline "
                                "frequency list) is not installed; pip install wordfreq to include it.")
                logger.warning(messages[-1])
                continue
            out[name] = values
        elif name == "surprisal":
            from ..features.surprisal import stimulus_surprisal

            if features is not None and features.attrs.get("surprisal") is not None:
                values = np.asarray(features.attrs["surprisal"], dtype=float)
            else:
                extractor.fit()
                values = stimulus_surprisal(stimuli, extractor.model_, context=extractor.context,
                                            context_tokens=params["context_tokens"], stride=params["stride"],
                                            prepend_bos=extractor.prepend_bos, batch_size=extractor.batch_size)
            if not np.isfinite(values).all():
                raise ConfigError("surprisal is undefined for stimuli that start a sequence with no token before "
                                  "them; set model.prepend_bos: auto (or true).")
            out[name] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(out).to_csv(path, index=False)
    return out, messages


def _stimulus_section(config: RunConfig, results: Any, baselines: pd.DataFrame | None, timings: dict):
    """The report section of a stimulus-level run: data, scores per layer (r, r_pooled), baselines."""
    from ..report import ReportSection

    s = results.settings
    prov = results.provenance
    groups = prov.get("groups") or []
    text = (
        f"{prov.get('n_stimuli')} stimuli ({prov.get('stimuli')}) with one response each, "
        f"{len(groups)} group(s); features pooled over each stimulus's tokens ({prov.get('pooling')}), "
        f"context: {prov.get('context')}. Cross-validation by stimulus: {s.get('cv')} "
        + ("(whole groups held out, so no group is on both sides of a split). " if "group" in str(s.get('cv'))
           else "(stimuli shuffled into folds). ")
        + "Features and responses are z-scored over all stimuli; each target's ridge penalty is chosen by "
        "inner CV of the same kind inside each training set. r: the Pearson r of the held-out predictions "
        "within each fold, mean over folds (as in the other sections); r_pooled: one r over the held-out "
        "predictions of all folds pooled. The permutation null permutes the stimuli"
        + (" within groups" if s.get("null_within_groups") else "")
        + " and refits the model, the same draws for every layer."
    )
    table = pd.DataFrame({"layer": results.layers, "relative_depth": results.relative_depth})
    for j, target in enumerate(results.targets[:6]):
        table[f"r {target}"] = results.r[:, j]
        if results.r_pooled is not None:
            table[f"r_pooled {target}"] = results.r_pooled[:, j]
        if results.pvalues is not None:
            table[f"p {target}"] = results.pvalues[:, j]
    tables = [("Held-out r per layer (mean over folds, and pooled over folds)", table)]
    if baselines is not None and len(baselines):
        tables.append(("Baseline models, fitted with the same folds, penalties and permutations "
                       "(each regressor alone, and all together)", baselines))
    text += "\n\nTimings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + "."
    return ReportSection("Stimulus-level encoding", text, tables=tables)


def stimulus_data_hash(responses: Any) -> str:
    """The sha256 of a subject's stimulus responses as loaded (values, ids, target names), or of
    every subject's for the group mean (a dict of them, in name order): the results key's data part."""
    h = hashlib.sha256()
    items = responses if isinstance(responses, dict) else {"": responses}
    for name in sorted(items):
        item = items[name]
        data = np.ascontiguousarray(np.asarray(item.data, dtype="<f8"))
        h.update(json.dumps([str(name), list(map(str, item.ids)), list(map(str, item.names)),
                             list(data.shape)]).encode())
        h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def run_stimulus_pipeline(config: RunConfig, verbose: bool | str | int | None = None):
    """Run a stimulus-level config end to end (see the module docstring); returns a
    :class:`~neuroenc.pipeline.RunOutput`. ``verbose``: as :func:`~neuroenc.pipeline.run_pipeline`'s."""
    from ..encoding import fit_stimuli
    from ..encoding.stimulus_fit import baseline_scores, stimulus_cv
    from ..mapping import map_layers
    if config.executor.kind != "serial":
        raise ConfigError(
            f"executor.kind {config.executor.kind!r}: stimulus-level runs (loader {config.dataset.loader!r}) run "
            "in one process; use executor.kind: serial."
        )
    timings: dict[str, float] = {}
    t0 = time.time()
    dataset = load_dataset(config.dataset)
    timings["load"] = time.time() - t0
    out_dir = output_dir(config)
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    enc = config.encoding
    names = list(enc.baseline or [])
    extractor = make_stimulus_extractor(config, verbose=verbose,
                                        surprisal="surprisal" in names)
    if extractor.context == "group" and not dataset.stimuli.has_groups:
        raise ConfigError("model.context: group reads each stimulus after its group's earlier stimuli, but the "
                          "stimuli have no groups (dataset.args.group_column).")
    features = extractor.transform(dataset.stimuli)
    features_path = Path(extractor.cached_path(dataset.stimuli))
    timings["extract"] = time.time() - t0

    t0 = time.time()
    regressors, messages = compute_regressors(config, dataset, extractor, names, features) if names else ({}, [])
    timings["regressors"] = time.time() - t0

    t0 = time.time()
    fits: dict[str, Any] = {s: dataset.responses[s] for s in dataset.subjects}
    if config.dataset.group_mean and len(fits) >= 2:
        fits[GROUP] = dict(dataset.responses)
    paths: dict[str, Path] = {}
    base = {"features_files": {"stimuli": str(features_path)},
            "features_sha256": {"stimuli": _sha256_file(features_path)}, "dataset": dataset.name,
            "config": config.to_dict(effective=True), "config_file": config.source,
            "neuroenc_version": __version__}
    for subject, responses in fits.items():
        out = results_path(config, subject)
        paths[subject] = out
        key = results_key(config, {"stimuli": features_path}, data_hash=stimulus_data_hash(responses))
        if results_current(out, key):
            logger.info("results of %s already complete: %s", subject, out)
            continue
        started = time.time()
        with blas_threads(enc.blas_threads):
            results = fit_stimuli(
                features, responses, baseline=regressors or None,
                provenance=dict(base, subject=subject, results_key=key),
                settings={"baseline": list(regressors) or None}, verbose=verbose,
                **enc.kwargs(fit_stimuli, exclude=("baseline",)),  # the config's names, computed above
            )
        results.warnings = list(dict.fromkeys(messages + list(results.warnings)))
        results.provenance["wall_seconds"] = time.time() - started
        results.save(out)
    timings["fit"] = time.time() - t0

    baselines = None
    if len(regressors) >= 2:
        t0 = time.time()
        first = next(iter(fits))
        from ..encoding import EncodingResults, group_responses

        resp = fits[first]
        Y = group_responses(resp, dataset.stimuli.ids)[0].data if isinstance(resp, dict) else resp.data
        sets = {name: {name: regressors[name]} for name in regressors}
        sets["all baseline regressors"] = regressors
        groups = np.asarray(dataset.stimuli.groups) if dataset.stimuli.has_groups else None
        baselines = baseline_scores(sets, Y, groups, cv=stimulus_cv(enc.cv, dataset.stimuli.groups),
                                    alphas=enc.alpha_grid(), inner_cv=enc.inner_cv,
                                    n_permutations=enc.n_permutations, random_state=enc.random_state,
                                    target_names=EncodingResults.load(paths[first]).targets)
        baselines.insert(0, "subject", first)
        check_replace(out_dir / "baselines.csv", "table")  # never over a file neuroenc did not write
        baselines.to_csv(out_dir / "baselines.csv", index=False)
        record_written(out_dir / "baselines.csv")
        timings["baselines"] = time.time() - t0

    report = mapping = None
    if config.output.report:
        from ..encoding import EncodingResults

        t0 = time.time()
        shown = paths.get(GROUP) or next(iter(paths.values()))
        section = _stimulus_section(config, EncodingResults.load(shown), baselines, timings)
        individual = [p for s, p in paths.items() if s != GROUP]
        mapping = map_layers(individual or list(paths.values()), **mapping_params(config))
        report, mapping = write_report(config, list(paths.values()), sections=[section], mapping=mapping)
        timings["report"] = time.time() - t0
    return RunOutput(config, {"stimuli": features_path}, paths, report, mapping, None, timings)
