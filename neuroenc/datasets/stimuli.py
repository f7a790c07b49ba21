"""Stimulus-level data sets: a stimulus set and one response per stimulus (per subject).

What the stimulus loaders return (:class:`StimulusDataset`), and the generic loader of a
stimulus table and its responses (:func:`load_stimuli`, ``dataset: {loader: stimuli}`` in a run
config).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..stimuli.filters import parse_filter
from ..stimuli.responses import STIMULI_RUN, add_subject, read_stimulus_responses, subject_keys
from ..stimuli.stimulus_set import StimulusSet, read_stimuli, read_stimuli_events

logger = logging.getLogger(__name__)

#: Baseline regressors computed from the stimuli (beside those a data set provides): ``length``
#: (letters and digits of the text), ``n_words``, ``position`` (index in its group) and
#: ``log_frequency`` (mean over the stimulus's words of the Zipf frequency, log10 per billion
#: words, from the ``wordfreq`` package when it is installed).
COMPUTED_REGRESSORS = ("length", "n_words", "position", "log_frequency")
#: Baseline regressors the stimulus features carry (the model's own surprisal, extracted with
#: ``surprisal=True``; see :class:`~neuroenc.align.stimuli.StimulusDesign`).
FEATURE_REGRESSORS = ("surprisal",)


def _log_frequency(texts: list[str], lang: str = "en") -> np.ndarray | None:
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        return None
    return np.asarray([np.mean([zipf_frequency(w, lang) for w in t.split()]) for t in texts])


def stimulus_regressors(stimuli: StimulusSet, provided: dict[str, Any] | None = None
                        ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The baseline regressors of a stimulus set: those ``provided`` (by the data set; they take
    precedence) and the :data:`COMPUTED_REGRESSORS`; returns them and the ones left out, with why."""
    out = {name: np.asarray(v, dtype=float) for name, v in (provided or {}).items()}
    left_out: dict[str, str] = {}
    if "length" not in out:
        out["length"] = np.asarray([sum(c.isalnum() for c in t) for t in stimuli.texts], dtype=float)
    if "n_words" not in out:
        out["n_words"] = np.asarray([len(t.split()) for t in stimuli.texts], dtype=float)
    if "position" not in out:
        pos = np.zeros(len(stimuli))
        for idx in stimuli.group_indices():
            pos[idx] = np.arange(idx.size)
        out["position"] = pos
    if "log_frequency" not in out:
        values = _log_frequency(stimuli.texts)
        if values is None:
            left_out["log_frequency"] = ("encoding.baseline log_frequency left out: the 'wordfreq' package (an "
                                         "offline frequency list) is not installed; pip install wordfreq to "
                                         "include it.")
        else:
            out["log_frequency"] = values
    return out, left_out


@dataclass
class StimulusDataset:
    """Stimuli (sentences, passages, words) and their responses, without time.

    Attributes
    ----------
    name : str
    stimuli : StimulusSet
        Ids, texts and groups, in reading order.
    responses : dict of str -> Response
        ``responses[subject]``: stimulus-level :class:`~neuroenc.responses.Response` objects
        (rows are stimuli), in the stimuli's order (matched by id).
    regressors : dict of str -> ndarray (n_stimuli,)
        Per-stimulus regressors the data set provides (e.g. a word's length), usable as
        baseline regressors by name.
    info : dict
        Citation, licence, source, notes.
    """

    name: str
    stimuli: StimulusSet
    responses: dict[str, Any]
    regressors: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.responses = {str(s): r.match(self.stimuli.ids) for s, r in self.responses.items()}

    @property
    def subjects(self) -> list[str]:
        """The subjects with responses."""
        return list(self.responses)

    @property
    def target_names(self) -> list[str]:
        """Target names of the first subject."""
        for r in self.responses.values():
            return list(r.names)
        return []

    def as_encoding_dataset(self) -> Any:
        """The same data in the layout every run has: an :class:`~neuroenc.datasets._base.EncodingDataset`
        with one run, ``"stimuli"``, whose "transcript" is the stimulus set and whose responses
        are the subjects' stimulus-level :class:`~neuroenc.responses.Response` objects.

        ``confounds[subject]["stimuli"]`` holds the baseline regressors (the data set's and
        :data:`COMPUTED_REGRESSORS`) as a stimulus-level Response; ``info["feature_regressors"]``
        names those the features carry (surprisal) and ``info["unavailable_regressors"]`` those
        left out, with why.
        """
        from ..responses import Response
        from ._base import EncodingDataset

        values, left_out = stimulus_regressors(self.stimuli, self.regressors)
        names = list(values)
        regressors = Response(np.column_stack([values[n] for n in names]), ids=self.stimuli.ids, names=names,
                              run=STIMULI_RUN, info={"source": "stimulus regressors"})
        info = dict(self.info, feature_regressors=list(FEATURE_REGRESSORS), unavailable_regressors=left_out)
        return EncodingDataset(self.name, {STIMULI_RUN: self.stimuli},
                               {s: {STIMULI_RUN: r} for s, r in self.responses.items()},
                               {s: {STIMULI_RUN: regressors.copy(subject=s)} for s in self.responses}, info=info)

    def __repr__(self) -> str:
        return (f"<StimulusDataset {self.name!r} | {len(self.stimuli)} stimuli, {len(self.subjects)} subject(s), "
                f"{len(self.target_names)} target(s)>")


def load_stimuli(path: str | os.PathLike, text_column: str, responses: Any, *, id_column: str = "id",
                 group_column: str | None = None, query: str | None = None,
                 response_columns: Any = "all", response_id_column: str | None = None,
                 subject_column: str | None = None, row_ids: Any = None, mask: Any = None,
                 name: str | None = None) -> StimulusDataset:
    """A stimulus table and its responses as a :class:`StimulusDataset` (``loader: stimuli``).

    Parameters
    ----------
    path : path-like
        The stimuli: a ``.csv``/``.tsv`` table, or a BIDS ``*_events.tsv`` whose rows carry text.
    text_column, id_column, group_column, query
        Its columns (see :func:`~neuroenc.stimuli.read_stimuli`). ``query``, for events files
        only: a row filter such as ``"trial_type == 'sentence'"`` (see
        :mod:`neuroenc.stimuli.filters`; parsed by neuroenc, never evaluated as Python).
    responses : path | list of paths | dict of subject -> path
        Response files (see :func:`~neuroenc.stimuli.responses.read_stimulus_responses`); several files
        are several subjects (named by the dict keys, else the file names, or where file names
        repeat by the shortest ends of their paths that differ: ``subA_bold.csv``; see
        :func:`~neuroenc.stimuli.responses.subject_keys`).
    response_columns : "all" | list of str
        The response columns of tables.
    response_id_column : str | None
        The id column of the response tables (default ``id_column``).
    subject_column : str | None
        Long response tables: the column naming the subject of each row.
    row_ids : path | list | None
        The ids of the rows of ``.npy`` / 4-D NIfTI responses (default: the stimuli's order).
    mask : path | None
        Brain mask of NIfTI responses.
    name : str | None
        The data set's name (default: the stimuli file's stem).
    """
    path = Path(path)
    if query is not None:
        parse_filter(query)  # a bad query is an error before any file is read
    if path.name.lower().endswith("_events.tsv"):
        stimuli = read_stimuli_events(path, text_column, id_column=id_column, group_column=group_column,
                                      query=query)
    else:
        if query is not None:
            raise ValueError(f"query applies to BIDS *_events.tsv stimuli, not {str(path)!r}.")
        stimuli = read_stimuli(path, text_column, id_column=id_column, group_column=group_column)
    if isinstance(responses, dict):
        files = {str(k): v for k, v in responses.items()}
    elif isinstance(responses, (list, tuple)):
        files = dict(zip(subject_keys(responses), responses))
    else:
        files = {None: responses}
    out: dict[str, Any] = {}
    ids = row_ids if row_ids is not None else stimuli.ids
    for subject, file in files.items():
        read = read_stimulus_responses(file, id_column=response_id_column or id_column, columns=response_columns,
                                       subject_column=subject_column, ids=ids, mask=mask, subject=subject)
        for key, one in (read.items() if isinstance(read, dict) else [(subject or "all", read)]):
            add_subject(out, key, one)
    return StimulusDataset(name or path.stem, stimuli, out, info={"source": str(path)})
load_stimuli.stimulus_level = True  # its data set is one run, "stimuli" (as_encoding_dataset)
