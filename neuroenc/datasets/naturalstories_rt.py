"""Natural Stories self-paced reading times (Futrell et al. 2021) as a stimulus-level data set."""
from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from ..stimuli.responses import StimulusResponses
from ..stimuli.stimulus_set import StimulusSet
from ._base import fetch_files, get_data_dir, read_checksums
from .naturalstories import NATURALSTORIES_CITATION, NATURALSTORIES_DIRNAME, NATURALSTORIES_URL
from .stimuli import StimulusDataset

RT_FILE = "naturalstories_RTS/processed_wordinfo.tsv"
#: The per-word measures of ``processed_wordinfo.tsv``.
RT_MEASURES = ("meanItemRT", "gmeanItemRT", "sdItemRT", "gsdItemRT")


def load_naturalstories_rt(data_dir: str | os.PathLike | None = None, stories: Iterable[int] | None = None,
                           measure: str = "meanItemRT", download: bool = True,
                           base_url: str | None = NATURALSTORIES_URL, verify: bool = False) -> StimulusDataset:
    """Per-word self-paced reading times of the 10 Natural Stories, one stimulus per word.

    Parameters
    ----------
    data_dir : path-like | None
        Folder holding ``naturalstories/`` (default ``$NEUROENC_DATA`` or ``~/neuroenc_data``).
    stories : iterable of int | None
        Story numbers (1-10); default all.
    measure : str
        The response: ``meanItemRT`` (default: the word's mean reading time in ms over the
        readers who read it, ~83 per word), ``gmeanItemRT`` (geometric mean), or their SDs.
    download, base_url, verify
        As :func:`~neuroenc.datasets.load_naturalstories`.

    Returns
    -------
    dataset : StimulusDataset
        Stimuli: the words as the readers saw them (punctuation attached), id ``"N.K"`` (story
        N, token K: the corpus's token code), group ``"story-N"``, in reading order (story, then
        token). Responses: one subject ``"readers"`` with one target, ``measure``. Regressors:
        ``position`` (the token's number in its story) and ``n_readers``.
    """
    from .._validation import _check_option

    _check_option("measure", measure, RT_MEASURES)
    root = get_data_dir(data_dir) / NATURALSTORIES_DIRNAME
    stories = list(range(1, 11)) if stories is None else [int(s) for s in stories]
    bad = [s for s in stories if not 1 <= s <= 10]
    if bad:
        raise ValueError(f"Natural Stories has stories 1-10; got {bad}.")
    (path,) = fetch_files(root, [RT_FILE], read_checksums(NATURALSTORIES_DIRNAME), base_url, download=download,
                          verify=verify, dataset="naturalstories")
    table = pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False)
    table = table[table["item"].isin(stories)].sort_values(["item", "zone"], kind="stable")
    ids = [f"{i}.{z}" for i, z in zip(table["item"], table["zone"])]
    stimuli = StimulusSet(ids, table["word"].astype(str).tolist(), [f"story-{i}" for i in table["item"]],
                          name="naturalstories-words", source=str(path))
    rt = StimulusResponses(table[measure].to_numpy(dtype=float), ids, [measure], "readers",
                           {"source": str(path), "measure": measure})
    regressors = {"position": table["zone"].to_numpy(dtype=float),
                  "n_readers": table["nItem"].to_numpy(dtype=float)}
    info = {"citation": NATURALSTORIES_CITATION, "license": "CC BY-NC-SA 4.0", "url": NATURALSTORIES_URL,
            "root": str(root), "measure": measure, "stories": stories}
    return StimulusDataset("naturalstories_rt", stimuli, {"readers": rt}, regressors, info)
load_naturalstories_rt.stimulus_level = True  # its data set is one run, "stimuli" (as_encoding_dataset)
