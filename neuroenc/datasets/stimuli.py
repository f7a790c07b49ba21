"""Stimulus-level data sets: a stimulus set and one response per stimulus (per subject).

What the stimulus loaders return (:class:`StimulusDataset`), and the generic loader of a
stimulus table and its responses (:func:`load_stimuli`, ``dataset: {loader: stimuli}`` in a run
config).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..stimuli.filters import parse_filter
from ..stimuli.responses import StimulusResponses, add_subject, read_stimulus_responses, subject_keys
from ..stimuli.stimulus_set import StimulusSet, read_stimuli, read_stimuli_events


@dataclass
class StimulusDataset:
    """Stimuli (sentences, passages, words) and their responses, without time.

    Attributes
    ----------
    name : str
    stimuli : StimulusSet
        Ids, texts and groups, in reading order.
    responses : dict of str -> StimulusResponses
        ``responses[subject]``, rows in the stimuli's order (matched by id).
    regressors : dict of str -> ndarray (n_stimuli,)
        Per-stimulus regressors the data set provides (e.g. a word's length), usable as
        baseline regressors by name.
    info : dict
        Citation, licence, source, notes.
    """

    name: str
    stimuli: StimulusSet
    responses: dict[str, StimulusResponses]
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
        Response files (see :func:`~neuroenc.stimuli.read_stimulus_responses`); several files
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
    out: dict[str, StimulusResponses] = {}
    ids = row_ids if row_ids is not None else stimuli.ids
    for subject, file in files.items():
        read = read_stimulus_responses(file, id_column=response_id_column or id_column, columns=response_columns,
                                       subject_column=subject_column, ids=ids, mask=mask, subject=subject)
        for key, one in (read.items() if isinstance(read, dict) else [(subject or "all", read)]):
            add_subject(out, key, one)
    return StimulusDataset(name or path.stem, stimuli, out, info={"source": str(path)})
load_stimuli.stimulus_level = True  # neuroenc run takes the stimulus path
