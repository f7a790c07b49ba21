"""Baseline regressors from a story's words, on the design's grid (:func:`baseline_bands`).

Each regressor is one value per word (word rate: 1; ``length``: letters and digits;
``log_frequency``: Zipf frequency from ``wordfreq``; ``position``: index in its sentence;
``story_position``: index in the story; ``surprisal``: the model's own, when the features file
carries it per word), made a one-column :class:`~neuroenc.features.featureset.FeatureSet` at the
words' times and passed through :meth:`Design.nuisance`: resampled to the TR grid, z-scored,
HRF-convolved and delayed (MEG/EEG: put on the sample grid and lagged) exactly as a one-column
layer of the features is. The word rate so made equals :func:`~neuroenc.align.word_rate`'s.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..features.featureset import FeatureSet

logger = logging.getLogger(__name__)

#: The regressors computed from the words of a story (beside a data set's own confounds);
#: ``phoneme_rate`` needs the phones of a TextGrid's phone tier (:func:`phone_onsets`).
TRANSCRIPT_REGRESSORS = ("word_rate", "length", "log_frequency", "position", "story_position", "surprisal",
                         "phoneme_rate")
#: Interval labels of a phone tier that are silences or noise, not phones.
SILENCES = frozenset({"", "sp", "sil", "spn", "<sil>", "<sp>", "silence", "pau", "#"})

#: A word that ends a sentence: ``.``, ``!``, ``?`` or ``…``, possibly followed by closing quotes
#: or brackets.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def _wordfreq_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("wordfreq")
    except Exception:  # noqa: BLE001 - not installed, or no metadata
        return None


def log_frequency(words: Sequence[str], lang: str = "en") -> np.ndarray | None:
    """Zipf frequency (log10 of the frequency per billion words) of each word, from ``wordfreq``
    (offline); None when ``wordfreq`` is not installed. Words it does not know get 0."""
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        return None
    return np.asarray([zipf_frequency(w, lang) for w in words], dtype=np.float64)


def phone_onsets(path: Any, tier: str | None = None) -> np.ndarray:
    """The onsets (s) of the phones of a Praat TextGrid's phone tier, silences (:data:`SILENCES`)
    left out.

    Parameters
    ----------
    path : path-like
        The TextGrid (see :func:`~neuroenc.stimuli.textgrid.read_textgrid_tiers`).
    tier : str | None
        The tier; default the one tier whose name starts with ``phone`` (any case).
    """
    from ..stimuli.textgrid import read_textgrid_tiers

    tiers = read_textgrid_tiers(path)
    if tier is None:
        found = [name for name in tiers if name.lower().startswith("phone")]
        if len(found) != 1:
            which = "no phone tier" if not found else f"{len(found)} phone tiers {found}"
            raise ValueError(f"TextGrid {str(path)!r} has {which} among its tiers {list(tiers)}; pass tier= to "
                             "name the phones' tier.")
        tier = found[0]
    elif tier not in tiers:
        raise ValueError(f"TextGrid {str(path)!r} has no tier {tier!r}; it has {list(tiers)}.")
    return np.asarray([start for start, _, text in tiers[tier] if text.strip().lower() not in SILENCES],
                      dtype=np.float64)


def word_length(words: Sequence[str]) -> np.ndarray:
    """Letters and digits of each word (punctuation does not count)."""
    return np.asarray([sum(c.isalnum() for c in w) for w in words], dtype=np.float64)


def sentence_positions(words: Sequence[str]) -> np.ndarray | None:
    """Index of each word in its sentence (0 for the first), sentences ending at a word that ends
    with ``.``, ``!``, ``?`` or ``…``; None when no word ends a sentence (a transcript without
    punctuation, e.g. a forced alignment's words)."""
    ends = np.array([bool(_SENTENCE_END.search(w.strip())) for w in words], dtype=bool)
    if not ends.any():
        return None
    out = np.zeros(len(words))
    k = 0
    for i, end in enumerate(ends):
        out[i] = k
        k = 0 if end else k + 1
    return out


def word_regressors(features: FeatureSet, names: Sequence[str]
                    ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Per-word values of the regressors ``names`` (of :data:`TRANSCRIPT_REGRESSORS`) for the
    words of one run's features.

    Returns
    -------
    values : dict of str -> ndarray (n_words,)
    left_out : dict of str -> str
        The regressors that cannot be computed here, with why and the fix.
    sources : dict of str -> str
        What made each regressor (its source and version), for the results' provenance.
    """
    allowed = [n for n in TRANSCRIPT_REGRESSORS if n != "phoneme_rate"]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"unknown transcript regressor(s) {unknown}; allowed are {allowed} (phoneme_rate: "
                         "baseline_bands with phones=).")
    words = features.words
    values: dict[str, np.ndarray] = {}
    left_out: dict[str, str] = {}
    sources: dict[str, str] = {}
    needs_words = {"length", "log_frequency", "position"}
    if words is None and needs_words & set(names):
        for n in needs_words & set(names):
            left_out[n] = (f"baseline {n} left out: the features of run {features.run!r} carry no words; "
                           "re-extract them with neuroenc extract.")
    n_words = features.n_words
    for name in names:
        if name in left_out:
            continue
        if name == "word_rate":
            values[name] = np.ones(n_words)
            sources[name] = "1 per word at the word times of the features (neuroenc.align.regressors)"
        elif name == "length":
            values[name] = word_length(words)
            sources[name] = "letters and digits of each word (neuroenc.align.regressors.word_length)"
        elif name == "log_frequency":
            freq = log_frequency(words)
            if freq is None:
                left_out[name] = ("baseline log_frequency left out: the 'wordfreq' package (an offline "
                                  "frequency list) is not installed; pip install wordfreq to include it.")
                continue
            values[name] = freq
            sources[name] = f"wordfreq {_wordfreq_version()} zipf_frequency(word, 'en')"
        elif name == "position":
            pos = sentence_positions(words)
            if pos is None:
                left_out[name] = (f"baseline position left out: no word of run {features.run!r} ends a "
                                  "sentence (no '.', '!' or '?'), so positions in the sentence are unknown; "
                                  "use story_position, or a transcript with punctuation.")
                continue
            values[name] = pos
            sources[name] = "index of the word in its sentence (sentence ends: . ! ? … in the words)"
        elif name == "story_position":
            values[name] = np.arange(n_words, dtype=np.float64)
            sources[name] = "index of the word in the story"
        elif name == "surprisal":
            carried = features.attrs.get("surprisal")
            if carried is None or np.size(carried) != n_words:
                left_out[name] = (f"baseline surprisal left out: the features of run {features.run!r} carry "
                                  "no per-word surprisal (attrs['surprisal']); extract them with surprisal=True "
                                  "(neuroenc extract --surprisal true; the pipeline does when encoding.baseline "
                                  "lists surprisal).")
                continue
            value = np.asarray(carried, dtype=np.float64)
            if not np.all(np.isfinite(value)):
                left_out[name] = (f"baseline surprisal left out: {int((~np.isfinite(value)).sum())} word(s) of "
                                  f"run {features.run!r} have no surprisal (no token before them); set "
                                  "model.prepend_bos: auto (or true) and re-extract.")
                continue
            values[name] = value
            context = ", ".join(f"{k} {features.attrs[k]!r}" for k in ("policy", "context_tokens", "stride",
                                                                      "prepend_bos") if k in features.attrs)
            sources[name] = (f"the model's own per-word surprisal (bits) from the features ({features.model}"
                             + (f"; {context}" if context else "") + ")")
    return values, left_out, sources


def regressor_features(features: FeatureSet, values: np.ndarray, name: str) -> FeatureSet:
    """One regressor as a one-column FeatureSet at the words' times of ``features`` (same run,
    onsets, offsets, word reference), for :meth:`Design.nuisance`."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if values.shape[0] != features.n_words:
        raise ValueError(f"regressor {name!r} has {values.shape[0]} values but run {features.run!r} has "
                         f"{features.n_words} words.")
    return FeatureSet({0: values}, features.onsets, features.offsets, features.words, run=features.run,
                      model=f"regressor:{name}", reference=features.reference)


def baseline_bands(design: Any, features: Mapping[str, FeatureSet], names: Sequence[str],
                   confounds: Mapping[str, Any] | None = None, phones: Mapping[str, Any] | None = None
                   ) -> tuple[dict[str, np.ndarray], list[str], dict[str, str]]:
    """The baseline regressors ``names`` of a story design, each on the design's rows.

    A name the data set's ``confounds`` (per run, :class:`~neuroenc.responses.Response` on the
    response grid; e.g. Alice's word rate and sound power) has is taken from them (as given:
    already on the grid, no delays); a name of :data:`TRANSCRIPT_REGRESSORS` is computed from
    the words of ``features`` (:func:`word_regressors`) and aligned as a one-column layer
    (:meth:`Design.nuisance` with a FeatureSet: the design's resampling, z-scoring, HRF and
    delays or lags). ``phoneme_rate``: 1 per phone of ``phones`` (per run, the phone onsets in
    s, e.g. :func:`phone_onsets` of the run's TextGrid), aligned the same way.

    Returns
    -------
    bands : dict of str -> ndarray (n_samples, k)
        In the order of ``names``; those left out are missing.
    left_out : list of str
        Messages for the names that could not be computed (logged as warnings).
    sources : dict of str -> str
        What made each band, for the results' provenance.

    Raises
    ------
    ValueError
        For a name that is neither a confound nor a transcript regressor.
    """
    confounds = dict(confounds or {})
    conf_names = set()
    if confounds and all(r in confounds for r in design.runs):
        conf_names = set(confounds[design.runs[0]].names)
    unknown = [n for n in names if n not in conf_names and n not in TRANSCRIPT_REGRESSORS]
    if unknown:
        conf = f"the data set's confounds {sorted(conf_names)} or " if conf_names else ""
        raise ValueError(f"baseline names unknown regressor(s) {unknown}: use {conf}the transcript regressors "
                         f"{list(TRANSCRIPT_REGRESSORS)}.")
    missing = [r for r in design.runs if r not in features]
    if missing:
        raise ValueError(f"baseline_bands: no features for run(s) {missing}; give one FeatureSet per run.")
    computed = [n for n in names if n not in conf_names and n != "phoneme_rate"]
    per_run = {r: word_regressors(features[r], computed) for r in design.runs}
    bands: dict[str, np.ndarray] = {}
    left: dict[str, str] = {}
    sources: dict[str, str] = {}
    for _, lo, src in per_run.values():
        left.update({k: v for k, v in lo.items() if k not in left})
        sources.update(src)
    if "phoneme_rate" in names and "phoneme_rate" not in conf_names:
        lacking = [r for r in design.runs if phones is None or r not in phones or np.size(phones[r]) == 0]
        if lacking:
            left["phoneme_rate"] = (f"baseline phoneme_rate left out: no phones for run(s) {lacking} (a TextGrid "
                                    "with a phones tier); give them, or drop phoneme_rate.")
    for name in names:
        if name == "phoneme_rate" and name not in conf_names and name not in left:
            items = {}
            for r in design.runs:
                onsets = np.sort(np.asarray(phones[r], dtype=np.float64).reshape(-1))
                items[r] = FeatureSet({0: np.ones((onsets.size, 1))}, onsets, onsets, run=r,
                                      model="regressor:phoneme_rate", reference=features[r].reference)
            bands[name] = design.nuisance(items)
            sources[name] = "1 per phone at the phone onsets of the phone tier"
        elif name in conf_names:
            bands[name] = design.nuisance({r: confounds[r] for r in design.runs}, columns=[name])
            source = confounds[design.runs[0]].info.get("source")
            sources[name] = "the data set's confound" + (f" ({source})" if source else "")
        elif name not in left:
            items = {r: regressor_features(features[r], per_run[r][0][name], name) for r in design.runs}
            bands[name] = design.nuisance(items)
    for message in left.values():
        logger.warning(message)
    return bands, list(left.values()), {n: sources[n] for n in names if n in bands}
