"""The pipeline's tasks: pure functions of the config and their inputs, each writing one file.

Every task is idempotent and cacheable: its output path is a function of its inputs, it is
written atomically, and a complete output is reused. The serial runner calls them in order;
a Dask executor submits the same functions (see :mod:`neuroenc.pipeline.run`).

- :func:`extract_run`: features of one run with one model → a features HDF5 file;
- :func:`fit_subject`: the encoding models of one subject (optionally a chunk of its targets
  and a subset of layers) → a results HDF5 file;
- :func:`merge_parts`: target chunks / layer subsets of one subject → its results file;
- :func:`write_report`: every subject's results → the HTML report.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .._logging import logs_subject
from .._validation import _sha256_file
from ..encoding.results import EncodingResults
from .config import RunConfig
from .loaders import GROUP, load_dataset
from .trust import cache_dir, output_dir, report_path

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- paths
# output_dir, cache_dir and report_path (from .trust) confine the paths a config file gives to
# its output folder; see neuroenc.pipeline.trust.


def results_path(config: RunConfig, subject: str, part: str | None = None) -> Path:
    """Where the results of ``subject`` (or one part of them) are written."""
    folder = output_dir(config) / "results"
    if part is None:
        return folder / f"sub-{subject}.h5"
    return folder / "parts" / f"sub-{subject}_{part}.h5"


def extractor_params(config: RunConfig) -> dict[str, Any]:
    """The parameters the config gives to the extractor of its kind of data set
    (:func:`~neuroenc.features.kinds.extractor_class`): the ``model`` section's,
    ``alignment.reference``, and ``surprisal`` when ``encoding.baseline`` asks for it and the
    extractor computes it; the extractor's defaults apply to the rest."""
    import inspect

    from ..features.kinds import extractor_class

    cls = extractor_class(config.kind)
    params = config.model.kwargs(cls)
    accepted = inspect.signature(cls).parameters
    if "reference" in accepted and config.alignment.reference is not None:
        params["reference"] = config.alignment.reference
    if "surprisal" in accepted and "surprisal" in (config.encoding.baseline or []):
        params["surprisal"] = True
    return params


def mapping_params(config: RunConfig) -> dict[str, Any]:
    """The :func:`~neuroenc.mapping.map_layers` parameters of a config: its seed,
    ``encoding.random_state``, when the config gives one (else map_layers' own default)."""
    if "random_state" in config.encoding.given:
        return {"random_state": config.encoding.random_state}
    return {}


def make_extractor(config: RunConfig, model: Any = None, verbose: bool | str | int | None = None):
    """A :class:`~neuroenc.features.FeatureExtractor` for the config (``model``: a loaded
    model to reuse, else the config's model name, loaded on first use).

    A local model folder is checked first (:func:`~neuroenc.pipeline.preflight.check_model_source`:
    a tokenizer, complete weights)."""
    from ..features.kinds import extractor_class
    from .preflight import check_model_source

    if model is None:
        check_model_source(config.model.name, config.model.gguf_file)

    return extractor_class(config.kind)(model if model is not None else config.model.name,
                                        cache_dir=cache_dir(config), verbose=verbose, **extractor_params(config))


# ---------------------------------------------------------------------- extraction
def extract_run(config: RunConfig, transcript: Any, extractor: Any = None) -> Path:
    """Features of one run (cached): returns the features file.

    ``extractor`` is reused across runs (one model load); without it one is made.
    """
    from .preflight import check_device

    extractor = extractor if extractor is not None else make_extractor(config)
    if extractor.cached_path(transcript) is None:  # the model will run here: is its device?
        check_device(config.model.device)
    extractor.transform(transcript)
    # the file that holds them: this setting's, or an all-layers file that serves a subset
    return Path(extractor.cached_path(transcript))


# ---------------------------------------------------------------------- noise ceilings
def noise_ceilings(config: RunConfig, dataset: Any) -> dict[str, np.ndarray]:
    """The noise ceiling of the group-mean response (``group_mean: true``), from inter-subject
    agreement.

    Responses whose rows are stimuli (one response per stimulus) get the split-half ceiling of
    the subjects (:func:`~neuroenc.encoding.noise_ceiling_split_half`, seeded by
    ``encoding.random_state``; at least 2 subjects). Responses on a time grid get the
    following.

    The subjects' responses (z-scored per run, runs concatenated) give, per target, the
    reliability of one subject from the mean leave-one-subject-out correlation, and the
    Spearman-Brown reliability of the mean of all N subjects; its square root bounds the r of
    any model of the group mean (:func:`~neuroenc.encoding.stats.noise_ceiling_intersubject`).
    Needs ≥ 3 subjects with the same fMRI runs on the same grid; otherwise an empty dict.

    Individual subjects get no ceiling: inter-subject agreement only measures the signal
    subjects share, and a per-subject model with FIR delays also captures a subject's own
    response shape, so its r can exceed such a "ceiling" (with repeated presentations, use
    :func:`~neuroenc.encoding.noise_ceiling_repeats` instead).
    """
    from ..encoding import noise_ceiling_split_half
    from ..encoding.stats import noise_ceiling_intersubject

    if GROUP not in dataset.responses:
        return {}
    subjects = [s for s in dataset.responses if s != GROUP]
    runs = sorted(set.intersection(*(set(dataset.responses[s]) for s in subjects)))
    kinds = {dataset.responses[s][r].kind for s in subjects for r in runs}
    exchangeable = kinds == {"stimuli"}
    if len(subjects) < (2 if exchangeable else 3) or not runs or kinds not in ({"fmri"}, {"stimuli"}):
        return {}
    stacks = []
    for s in subjects:
        parts = []
        for run in runs:
            data = dataset.responses[s][run].data
            std = data.std(0)
            parts.append((data - data.mean(0)) / np.where(std > 0, std, 1.0))
        stacks.append(np.concatenate(parts))
    if len({a.shape for a in stacks}) != 1:
        return {}
    if exchangeable:
        return {GROUP: noise_ceiling_split_half(np.stack(stacks), n_splits=100,
                                                random_state=config.encoding.random_state)}
    return {GROUP: noise_ceiling_intersubject(np.stack(stacks), "group")}


def holdout_ceiling(config: RunConfig, design: Any,
                    targets: slice | None = None) -> tuple[np.ndarray | None, int | None]:
    """The noise ceiling of a ``cv: holdout:<run>`` fit from the held-out run's repeats, and
    their number.

    When the held-out run's response carries its repeated presentations
    (``Response.info["repeats"]``, as :func:`~neuroenc.datasets.load_lebel2023` gives for
    ``wheretheressmoke``: the response is their mean), the ceiling is Schoppe et al. 2016's
    ``CC_max`` of the rows the design keeps (:func:`~neuroenc.encoding.noise_ceiling_repeats`),
    so that ``r / ceiling`` is their ``CC_norm``. ``(None, None)`` otherwise.
    """
    from ..encoding import noise_ceiling_repeats
    from ..encoding.cv import parse_holdout_cv

    run = parse_holdout_cv(config.encoding.cv)
    plans = [p for p in getattr(design, "_runs", []) if p.name == run]  # the design's own run plans
    if run is None or not plans:
        return None, None
    plan = plans[0]
    repeats = plan.response.info.get("repeats")
    if repeats is None:
        return None, None
    repeats = np.asarray(repeats)
    if targets is not None:
        repeats = repeats[:, :, targets]
    if repeats.shape[1:] != plan.response.data.shape:
        raise ValueError(
            f"the repeats of run {run!r} have shape {repeats.shape[1:]} (rows, targets) but its response has "
            f"{plan.response.data.shape}; the repeats must be on the response's grid (check the loader).")
    return noise_ceiling_repeats(repeats[:, plan.resp_keep]), int(repeats.shape[0])


def results_current(path: str | os.PathLike, key: str) -> bool:
    """Whether ``path`` is a complete results file with :func:`results_key` ``key``.

    Reads the file's attributes and the shapes of its scores only. A missing, truncated or
    foreign file, or one made with other settings, is not current.
    """
    import h5py

    from ..encoding.results import RESULTS_FORMAT

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != RESULTS_FORMAT:
                return False
            provenance = json.loads(f.attrs["provenance"])
            shape = (f["layers"].shape[0], f["targets"].shape[0])
            if f["scores/r"].shape != shape or f["scores/r2"].shape != shape:
                return False
    except (OSError, KeyError, ValueError, TypeError) as err:
        logger.warning("results file %s is unreadable (%s); it will be recomputed", path, err)
        return False
    return provenance.get("results_key") == key


# ---------------------------------------------------------------------- fitting
@contextlib.contextmanager
def blas_threads(n: int | None):
    """Limit BLAS (and OpenMP) threads in a ``with`` block; ``None`` leaves them alone."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n)):
        yield


def _design(config: RunConfig, features: dict[str, Any], responses: dict[str, Any]):
    """The subject's design, made by the design maker of its responses' kind
    (:data:`DESIGNS`: :func:`~neuroenc.align.make_fmri_design`,
    :func:`~neuroenc.align.make_meg_design` or :func:`~neuroenc.align.make_stimulus_design`)
    with the ``alignment`` settings the config gives; those that do not apply to that kind of
    response are logged as ignored."""
    from .. import align

    kinds = {r.kind for r in responses.values()}
    kind = kinds.pop() if len(kinds) == 1 else "fmri"
    make = getattr(align, DESIGNS[kind])
    kwargs = config.alignment.kwargs(make)
    if kind == "stimuli":  # the design's spill-over is an encoding setting of stimulus-level data sets
        kwargs.update(config.encoding.kwargs(make, exclude=("layers",)))
    ignored = sorted(set(config.alignment.given) - set(kwargs))
    if ignored:
        logger.warning("alignment.%s do(es) not apply to %s responses (%s); ignored",
                       ", alignment.".join(ignored), kind, make.__name__)
    return make(features, responses, **kwargs)


#: The design maker of each kind of response.
DESIGNS = {"fmri": "make_fmri_design", "meg": "make_meg_design", "stimuli": "make_stimulus_design"}


def _computes_transcript_regressors(design: Any, confounds: dict, responses: dict, names: Any) -> bool:
    """Whether the baseline ``names`` of a story design ask for regressors computed from the words
    (:data:`~neuroenc.align.regressors.TRANSCRIPT_REGRESSORS` that the data set's confounds do not
    have); then every band is made by :func:`~neuroenc.align.regressors.baseline_bands`."""
    from ..align.regressors import TRANSCRIPT_REGRESSORS

    if getattr(design, "rows", None) != "samples":
        return False
    given = set(confounds[next(iter(responses))].names) if all(r in confounds for r in responses) else set()
    return any(n in TRANSCRIPT_REGRESSORS and n not in given for n in names)


def check_baseline(config: RunConfig, dataset: Any) -> list[str]:
    """Check ``encoding.baseline`` against the data set's regressors; returns the warnings of
    those left out (a regressor the data set cannot compute here, with why).

    The regressors are the columns of the data set's confounds and those its features carry
    (``dataset.info["feature_regressors"]``, e.g. stimulus-level surprisal).

    Raises
    ------
    ConfigError
        For a name that is none of them.
    """
    from .config import ConfigError

    names = list(config.encoding.baseline or [])
    if not names:
        return []
    available = {n for runs in dataset.confounds.values() for c in runs.values() for n in c.names}
    available |= set(dataset.info.get("feature_regressors") or [])
    if config.kind != "stimuli":  # stories: the regressors computed from the words too
        from ..align.regressors import TRANSCRIPT_REGRESSORS

        available |= set(TRANSCRIPT_REGRESSORS)
    left_out = dict(dataset.info.get("unavailable_regressors") or {})
    unknown = [n for n in names if n not in available and n not in left_out]
    if unknown and (available or left_out):
        raise ConfigError(f"encoding.baseline names unknown regressor(s) {unknown}: use those of the data set "
                          f"{sorted(available | set(left_out))}.")
    messages = [left_out[n] for n in names if n in left_out]
    for message in messages:
        logger.warning(message)
    return messages


def _permutation_scheme(config: RunConfig, design: Any, features: dict[str, Any],
                        n_targets: int) -> tuple[str, list[str]]:
    """The permutation scheme of a subject's fit, resolved for the whole fit (all targets, all
    layers), so that target chunks and layer subsets fitted apart use the same one."""
    import warnings

    from ..encoding import make_cv
    from ..encoding.cv import resolve_cv
    from ..encoding.sweep import resolve_permutation
    from ..features.cache import read_feature_info

    enc = config.encoding
    if enc.permutation != "auto" or not enc.n_permutations:
        return enc.permutation, []
    n_layers = len(read_feature_info(next(iter(features.values())))["layer_indices"])
    cv, _ = resolve_cv(enc.cv, design.rows, design.groups)
    n_folds = len(make_cv(cv, design.groups, design.n_samples, n_blocks=getattr(enc, "n_blocks", 5),
                         random_state=0))
    n_columns = design.n_delays * design.n_features(design.layers[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheme = resolve_permutation("auto", design.n_samples, n_columns, n_targets, n_layers,
                                     enc.n_permutations, n_folds, len(enc.alpha_grid()), rows=design.rows)
    messages = [str(w.message) for w in caught]
    for message in messages:
        logger.warning(message)
    return scheme, messages


def comparison_mode(config: RunConfig, subject: str, dataset: Any) -> str:
    """How a subject's fit compares its layers (``compare`` of :func:`~neuroenc.encoding.fit_encoding`).

    When several subjects are fitted, the layers are compared across subjects (sign flips, in
    the mapping), so an individual subject's own comparison uses the permutation null's draws
    (``"null"``: free, conservative); the group-mean response and a lone subject get the
    residual draws (``"auto"``), which cost about as much as the permutation null again.
    A config that gives ``encoding.compare`` chooses for every subject (:func:`fit_subject`).
    """
    several = bool(config.dataset.group_mean) or len(getattr(dataset, "subjects", ())) > 1
    return "null" if subject != GROUP and several else "auto"


def _read_features(path: str | Path, layers: Sequence[int] | None, store: Any = None) -> tuple[Any, str]:
    """A features file (:func:`~neuroenc.features.kinds.load_feature_file`) and its sha256.

    With the worker's ``store`` (:class:`~neuroenc.encoding.spectra.SpectrumStore`), both are
    kept there for the next subject of the same story, under the file's path, size,
    modification time and inode (within its memory budget): the file is read and hashed once
    per worker, not once per subject (features files are written once, by an atomic
    replace, so a changed file has a new modification time and inode)."""
    from ..features.kinds import load_feature_file

    if store is None:
        return load_feature_file(path, layers=layers), _sha256_file(path)
    st = os.stat(path)
    layer_key = None if layers is None else [int(x) if isinstance(x, (int, np.integer)) else x for x in layers]
    part = repr((os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, layer_key)).encode()
    kept = store.get(b"features-file", part)
    if kept is None:
        fs = load_feature_file(path, layers=layers)
        kept = (fs, _sha256_file(path))
        arrays = getattr(fs, "_layers", {}).values()  # every kind's layers (features.layers.Layered)
        store.put(b"features-file", part, kept, nbytes=sum(int(getattr(a, "nbytes", 0)) for a in arrays))
    return kept


@logs_subject  # its warnings name the subject (printed once across subjects by the CLI)
def fit_subject(
    config: RunConfig,
    subject: str,
    features: dict[str, str | Path],
    *,
    layers: Sequence[int] | None = None,
    targets: slice | None = None,
    noise_ceiling: np.ndarray | None = None,
    out: str | Path | None = None,
    dataset: Any = None,
    verbose: bool | str | int | None = False,
    spectra: Any = None,
) -> Path:
    """Fit the encoding models of one subject and write its results file.

    Parameters
    ----------
    config : RunConfig
    subject : str
        The subject (or ``"group"``).
    features : dict of run -> path
        The features file of each run (from :func:`extract_run`).
    layers : sequence of int | None
        Fit only these layers (default: every layer in the features files).
    targets : slice | None
        Fit only this chunk of the targets (for large voxel sets split across workers).
    noise_ceiling : ndarray | None
        Ceiling per target (all targets; the chunk is taken here).
    out : path | None
        The results file (default :func:`results_path`). Reused when complete.
    dataset : EncodingDataset | None
        The loaded data set (default: loaded here for this subject only).
    spectra : SpectrumStore | None
        Eigendecompositions shared with the other subjects of the same design (the worker's
        :class:`~neuroenc.encoding.spectra.SpectrumStore`); the results are the same without.
    """
    from ..encoding import fit_encoding

    out = Path(out) if out is not None else results_path(config, subject)
    started = time.time()
    if dataset is None:
        dataset = load_dataset(config.dataset, subjects=[subject], allow_code=config.allow_code)
    if subject not in dataset.responses:
        raise ValueError(f"data set {dataset.name!r} has no subject {subject!r}; it has {dataset.subjects}.")
    key = results_key(config, features, noise_ceiling, data_hash=subject_data_hash(dataset, subject))
    if results_current(out, key):
        logger.info("results of %s already complete: %s", subject, out)
        return out
    responses = dataset.responses[subject]
    missing = [r for r in responses if r not in features]
    if missing:
        raise ValueError(f"no features for run(s) {missing} of subject {subject!r}; extract them first.")
    n_targets_all = next(iter(responses.values())).n_targets
    # each run's whole response (every target: the same in every target chunk of the subject)
    responses_sha256 = {run: _array_sha256(resp.data) for run, resp in responses.items()}
    if targets is not None:
        responses = {r: resp.select(np.arange(resp.n_targets)[targets]) for r, resp in responses.items()}
        if noise_ceiling is not None:
            noise_ceiling = np.asarray(noise_ceiling)[targets]
    read = {run: _read_features(features[run], layers, spectra) for run in responses}
    feats = {run: fs for run, (fs, _) in read.items()}
    design = _design(config, feats, responses)
    from ..align.design import Design
    from ..align.shared_designs import share_layers

    if spectra is not None and isinstance(design, Design):  # the next subject of the story reuses its layers
        share_layers(design, spectra, {run: digest for run, (_, digest) in read.items()})
    n_repeats = None
    if noise_ceiling is None and subject != GROUP:
        noise_ceiling, n_repeats = holdout_ceiling(config, design, targets)
    nuisance = None
    baseline_names = config.encoding.baseline
    confounds = dataset.confounds.get(subject, {})
    baseline_messages: list[str] = []
    baseline_sources: dict[str, str] = {}
    if baseline_names and _computes_transcript_regressors(design, confounds, responses, baseline_names):
        from ..align.regressors import baseline_bands

        have = confounds if all(r in confounds for r in responses) else None
        nuisance, baseline_messages, baseline_sources = baseline_bands(
            design, feats, baseline_names, confounds={r: have[r] for r in responses} if have else None,
            phones=dataset.info.get("phones"))  # a loader's {run: phone onsets}, for phoneme_rate
        nuisance = nuisance or None
    elif baseline_names and all(r in confounds for r in responses):
        available = set(next(iter(confounds.values())).names) | set(getattr(design, "feature_regressors", {}))
        use = [n for n in baseline_names if n in available]
        if use:
            nuisance = design.nuisance({r: confounds[r] for r in responses}, columns=use)
    enc = config.encoding
    first_fs = next(iter(feats.values()))
    provenance = {
        "dataset": dataset.name,
        "subject": subject,
        "model": config.model.name,
        "n_model_layers": first_fs.n_model_layers,
        "runs": list(responses),
        "features_sha256": {run: digest for run, (_, digest) in read.items()},
        "features_files": {run: str(features[run]) for run in responses},
        # each run's response as fitted: the mapping refuses two results of the same responses
        "responses_sha256": responses_sha256,
        "config": config.to_dict(effective=True),
        "config_file": config.source,
        "results_key": key,
        "neuroenc_version": __version__,
    }
    if baseline_sources:
        provenance["baseline_sources"] = baseline_sources
    if n_repeats is not None:  # cv: holdout:<run>, whose response is the mean of its repeats
        provenance["holdout_repeats"] = n_repeats
    info = next(iter(responses.values())).info
    for name in ("mask", "affine", "shape", "space", "mesh"):
        if name in info:
            provenance[name] = info[name]
    if subject == GROUP:
        provenance["group_members"] = dataset.info.get("group_members")
    settings = {"alignment": design.settings, "baseline": baseline_names if nuisance is not None else None}
    permutation, messages = _permutation_scheme(config, design, features, n_targets_all)
    messages = [m for n, m in (dataset.info.get("unavailable_regressors") or {}).items()
                if n in (baseline_names or [])] + baseline_messages + messages
    kwargs = enc.kwargs(fit_encoding)
    if permutation != enc.permutation:  # "auto", resolved for the whole subject
        kwargs["permutation"] = permutation
    if "compare" not in kwargs:  # the config's own choice, else the mode for this subject
        kwargs["compare"] = comparison_mode(config, subject, dataset)
    settings["layer_comparisons"] = kwargs["compare"]
    with blas_threads(enc.blas_threads):
        results = fit_encoding(design, nuisance=nuisance, noise_ceiling=noise_ceiling, baseline_models=True,
                               provenance=provenance, settings=settings, verbose=verbose, spectra=spectra,
                               **kwargs)
    results.warnings = list(dict.fromkeys(list(design.warnings) + messages + list(results.warnings)))
    results.provenance["wall_seconds"] = time.time() - started
    results.save(out)
    logger.info("fitted %s: %d layers x %d targets in %.1f s -> %s", subject, results.n_layers,
                results.n_targets, time.time() - started, out)
    if results.weights is not None:
        from ..encoding.weights import format_bytes

        logger.info("saved the weights of %s: %s in %s", subject, format_bytes(results.weights.nbytes), out)
    return out


def merge_parts(parts: Sequence[str | Path], out: str | Path, axis: str = "targets") -> Path:
    """Merge results parts (target chunks or layer subsets) of one subject, atomically."""
    merged = merge_part_results([EncodingResults.load(p) for p in parts], axis=axis)
    return merged.save(out)


def merge_part_results(parts: Sequence[EncodingResults], axis: str = "targets") -> EncodingResults:
    """:func:`~neuroenc.encoding.merge.merge_results` for parts written by :func:`fit_subject`.

    Each part records its own wall time (provenance ``wall_seconds``), which differs between
    parts: it is summed rather than required to agree. The parts are not modified.
    """
    import dataclasses

    from ..encoding.merge import merge_results

    wall = sum(float(p.provenance.get("wall_seconds", 0.0)) for p in parts)
    parts = [dataclasses.replace(p, provenance={k: v for k, v in p.provenance.items() if k != "wall_seconds"})
             for p in parts]
    merged = merge_results(parts, axis=axis)
    merged.provenance["wall_seconds"] = wall
    return merged


# ---------------------------------------------------------------------- report
def write_report(config: RunConfig, results: Sequence[str | Path], out: str | Path | None = None,
                 sections: Sequence[Any] = (), metrics: Any = None, interventions: Any = None,
                 mapping: Any = None):
    """Map layers across subjects and write the HTML report; returns ``(path, mapping)``.

    ``mapping``: the subjects' :class:`~neuroenc.mapping.LayerMapping` when already computed.

    The layer-science tables of ``analyses/alice_metrics_vs_brain.py`` and
    ``analyses/alice_interventions.py`` (``<output.dir>/layer-science/metrics.csv`` and
    ``interventions.csv``) become a section of the report when they are there.
    """
    from ..mapping import map_layers
    from ..report import make_report

    out = Path(out) if out is not None else (report_path(config) or output_dir(config) / "report.html")
    science = output_dir(config) / "layer-science"
    if metrics is None and (science / "metrics.csv").exists():
        metrics = pd.read_csv(science / "metrics.csv")
    if interventions is None and (science / "interventions.csv").exists():
        interventions = pd.read_csv(science / "interventions.csv")
    individual = [p for p in results if not Path(p).name.startswith(f"sub-{GROUP}.")]
    if mapping is None:
        mapping = map_layers(individual or list(results), **mapping_params(config))
    title = f"neuroenc: {config.model.name} on {config.dataset.loader} ({config.name})"
    path = make_report(mapping, out, title=title, sections=sections, metrics=metrics,
                       interventions=interventions)
    return Path(path), mapping


def _little_endian(data: Any) -> np.ndarray:
    """An array's values as contiguous little-endian bytes (what the hashes read)."""
    data = np.ascontiguousarray(data)
    return data.astype(data.dtype.newbyteorder("<")) if data.dtype.byteorder == ">" else data


def _array_sha256(data: Any) -> str:
    """The sha256 of an array's values (little-endian bytes), shape and dtype."""
    data = _little_endian(data)
    h = hashlib.sha256(json.dumps([list(data.shape), data.dtype.str]).encode())
    h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def subject_data_hash(dataset: Any, subject: str) -> str:
    """The sha256 of a subject's responses and confounds as loaded (every run of the subject).

    What is hashed is what the fit reads: each response's and confound's values (their bytes,
    little-endian float64 or as stored), shape, dtype, target names, grid (kind, period,
    start), per run in name order. Replacing a subject's response file (or its motion file)
    changes it; re-reading the same file does not. It is computed from the arrays in memory,
    which the run loads anyway, so nothing is cached on disk: a cache keyed by a file's path,
    size and mtime could not see the other files a loader combines into one response (a
    mask, confound files), and hashing is fast next to loading (about 1 GB/s).
    """
    h = hashlib.sha256()
    responses = dataset.responses[subject]
    confounds = dataset.confounds.get(subject, {}) if getattr(dataset, "confounds", None) else {}
    for part, items in (("responses", responses), ("confounds", confounds)):
        for run in sorted(items):
            if part == "confounds" and run not in responses:
                continue
            item = items[run]
            data = _little_endian(item.data)
            meta = [part, str(run), list(map(str, item.names)), item.kind, list(item.grid),
                    list(data.shape), data.dtype.str]
            h.update(json.dumps(meta).encode())
            h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def results_key(config: RunConfig, features: dict[str, str | Path],
                noise_ceiling: np.ndarray | None = None, *, data_hash: str) -> str:
    """The key that says whether a results file is current.

    It covers everything that changes the results: the config's effective values (the
    library's defaults where the config gives none; data-set arguments with their environment
    variables expanded; not the output or executor sections), the features files
    (their names are content hashes of the model identity, transcript and extraction
    settings), the subject's data (``data_hash``: :func:`subject_data_hash` of its responses
    and confounds), the noise ceiling given, and the neuroenc version.
    """
    from ..features.cache import cache_key

    d = config.to_dict(effective=True)
    d.pop("output", None)
    d.pop("executor", None)
    d["dataset"]["args"] = {k: os.path.expandvars(v) if isinstance(v, str) else v
                            for k, v in d["dataset"]["args"].items()}
    payload = {
        "config": d,
        "features": {str(run): Path(path).name for run, path in sorted(features.items())},
        "data": str(data_hash),
        "noise_ceiling": None if noise_ceiling is None else hashlib.sha256(
            np.ascontiguousarray(noise_ceiling, dtype="<f8").tobytes()).hexdigest(),
        "version": __version__,
    }
    return cache_key(payload)[:20]
