"""The Natural Stories corpus (Futrell et al. 2021): 10 spoken stories with aligned words."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import pandas as pd

from ..stimuli.textgrid import SILENCE_MARKS, read_textgrid
from ..stimuli.transcript import Transcript
from ._base import EncodingDataset, fetch_files, get_data_dir, read_checksums

logger = logging.getLogger(__name__)

NATURALSTORIES_DIRNAME = "naturalstories"
#: Public source (the corpus repository's default branch).
NATURALSTORIES_URL = "https://raw.githubusercontent.com/languageMIT/naturalstories/master"
NATURALSTORIES_CITATION = (
    "Futrell, R., Gibson, E., Tily, H. J., Blank, I., Vishnevetsky, A., Piantadosi, S. T., & "
    "Fedorenko, E. (2021). The Natural Stories corpus: a reading-time corpus of English texts "
    "containing rare syntactic constructions. Language Resources and Evaluation, 55(1), 63-77."
)
#: The aligned TextGrids also mark sentence starts (``<s>``, once ``<s``).
NATURALSTORIES_SILENCE = tuple(SILENCE_MARKS) + ("<s",)


def _token_code(code: str | None) -> str | None:
    """A label's code as ``N.K`` (story, token): ``"1.229.word"`` -> ``"1.229"``."""
    parts = [] if code is None else code.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else None


def load_naturalstories(
    data_dir: str | os.PathLike | None = None,
    stories: Iterable[int] | None = None,
    download: bool = True,
    base_url: str | None = NATURALSTORIES_URL,
    verify: bool = False,
) -> EncodingDataset:
    """Load the 10 Natural Stories with forced-aligned word timings and reading times.

    Parameters
    ----------
    data_dir : path-like | None
        Folder holding ``naturalstories/``; default ``$NEUROENC_DATA`` or ``~/neuroenc_data``.
    stories : iterable of int | None
        Story numbers (1-10); default all.
    download : bool
        Fetch missing files from ``base_url`` (verifying sha256).
    base_url : str | None
        Where to fetch from; default the corpus repository.
    verify : bool
        Verify the sha256 of files already on disk too.

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts["story-N"]``: one word per aligned interval of ``audio/N_aligned.TextGrid``
        (tier ``words``; silences and ``<s>`` marks dropped; the few intervals that end
        before they start get a zero duration, with a warning). Each interval is labelled
        ``"WORD / N.K"``; the word's text is taken from ``words.tsv`` (``N.K.whole``, the
        original case and attached punctuation), falling back to the TextGrid's label.
        There are no brain responses (``responses == {}``). ``info["codes"]["story-N"]``: the
        ``N.K`` token code of each word; ``info["reading_times"]``: the per-word self-paced
        reading times (``processed_wordinfo.tsv``; ``item`` = story, ``zone`` = token number).
    """
    root = get_data_dir(data_dir) / NATURALSTORIES_DIRNAME
    checksums = read_checksums(NATURALSTORIES_DIRNAME)
    stories = list(range(1, 11)) if stories is None else [int(s) for s in stories]
    bad = [s for s in stories if not 1 <= s <= 10]
    if bad:
        raise ValueError(f"Natural Stories has stories 1-10; got {bad}.")
    grids = [f"audio/{s}_aligned.TextGrid" for s in stories]
    fetch_files(root, grids + ["words.tsv", "naturalstories_RTS/processed_wordinfo.tsv"],
                checksums, base_url, download=download, verify=verify, dataset="naturalstories")
    whole = pd.read_csv(root / "words.tsv", sep="\t", header=None, names=["code", "token"],
                        dtype=str, keep_default_na=False, quoting=3)
    whole = whole[whole["code"].str.endswith(".whole")]
    text_of = dict(zip(whole["code"].str.removesuffix(".whole"), whole["token"].str.replace(" ", "")))
    transcripts: dict[str, Transcript] = {}
    codes: dict[str, list[str | None]] = {}
    for story, rel in zip(stories, grids):
        raw = read_textgrid(root / rel, tier="words", name=f"story-{story}",
                            silence=NATURALSTORIES_SILENCE, fix_inverted=True, strip_codes=False)
        story_codes = [_token_code(code) for code in raw.codes()]
        plain = raw.strip_codes()
        words = [text_of.get(code, word) if code else word for word, code in zip(plain.words, story_codes)]
        transcripts[raw.name] = Transcript(words, raw.onsets, raw.offsets, name=raw.name,
                                           source=raw.source, rows=raw.rows)
        codes[raw.name] = story_codes
    reading_times = pd.read_csv(root / "naturalstories_RTS/processed_wordinfo.tsv", sep="\t")
    info = {
        "citation": NATURALSTORIES_CITATION,
        "license": "CC BY-NC-SA 4.0",
        "url": NATURALSTORIES_URL,
        "codes": codes,
        "reading_times": reading_times,
        "root": str(root),
    }
    return EncodingDataset("naturalstories", transcripts, {}, {}, {}, info)
