"""LeBel et al. 2023 (ds003020): 9 subjects listening to up to 84 podcast stories, TR 2 s.

Timing conventions (from the authors' code, HuthLab/deep-fMRI-dataset): ``derivative/respdict.json``
gives each story's number of TRs ``n``. The authors build a grid of ``n - 5`` TRs of 2 s whose
first trigger is 10 s before the sound starts (TR ``j`` at audio time ``2 j - 10``), interpolate
the stimulus on it and keep rows ``[5 + trim : -trim]`` with ``trim = 5``: ``n - 20`` rows, the
first at audio time 10 s. The preprocessed responses (``derivative/preprocessed_data/<S>/
<story>.hf5``, key ``resp``) have exactly those ``n - 20`` rows, so their row 0 is stimulus time
10.0 s on the TextGrid clock. The raw BOLD runs have ``n`` volumes; trimming them the same way
drops the first 10 and the last 10 volumes (the 10 s of silence before and after each story
and the first and last 5 TRs of the story).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import DatasetError, _check_option, check_content
from ..responses import Response
from ..responses.bold import read_subject_bold
from ..stimuli.textgrid import read_textgrid
from ..stimuli.transcript import Transcript
from ._base import EncodingDataset, check_transcript
from .bids import check_tr, dataset_root, find_subjects, index_runs, normalize_subject, read_sidecar

logger = logging.getLogger(__name__)

LEBEL_DIRNAME = "ds003020"
LEBEL_TR = 2.0
#: Stimulus time of row 0 of the trimmed responses: 10 TRs after the first trigger, which came
#: 10 s before the sound.
LEBEL_START = 10.0
#: Volumes dropped at each end by the authors' trimming (5 padding + 5 trim TRs).
LEBEL_TRIM = 10
#: Labels the authors drop from the word tier (compared lower-cased, without braces).
LEBEL_BAD_WORDS = ("sentence_start", "sentence_end", "br", "lg", "ls", "ns", "sp", "sil", "")
LEBEL_TEST_STORY = "wheretheressmoke"
LEBEL_CITATION = (
    "LeBel, A., Wagner, L., Jain, S., Adhikari-Desai, A., Gupta, B., Morgenthal, A., Tang, J., "
    "Xu, L., & Huth, A. G. (2023). A natural language fMRI dataset for voxelwise encoding "
    "models. Scientific Data, 10, 555. https://doi.org/10.1038/s41597-023-02437-z"
)
LEBEL_URL = "https://openneuro.org/datasets/ds003020"
#: Published results of the fixed protocol (train on the training stories, test on the mean of
#: the repeated ``wheretheressmoke`` presentations: ``cv: holdout:wheretheressmoke``), as in the
#: data-set card (``datasets/lebel2023.yaml``, ``published``; a test keeps the two equal). A
#: run's report shows an entry's ``values`` beside its own numbers only when the run matches the
#: entry's protocol, subject and model; ``values`` holds only numbers stated in the source's
#: text (``{model: {subject: number}}`` of the entry's ``score``); what is given in figures
#: only is said in ``note``, not read off a plot.
LEBEL_PUBLISHED: tuple[dict[str, Any], ...] = (
    {
        "source": ("Antonello, R. J., Vaidya, A. R., & Huth, A. G. (2023). Scaling laws for language "
                   "encoding models in fMRI. Advances in Neural Information Processing Systems 36. "
                   "arXiv:2305.11863"),
        "url": "https://arxiv.org/abs/2305.11863",
        "code": "https://github.com/HuthLab/encoding-model-scaling-laws",
        "protocol": "holdout:wheretheressmoke",
        "subjects": ["UTS01", "UTS02", "UTS03"],
        "models": ["facebook/opt-125m", "facebook/opt-1.3b", "facebook/opt-13b", "facebook/opt-30b",
                   "llama-7b", "llama-13b", "llama-33b", "llama-65b"],
        "score": "r",
        "values": {},
        "note": ("Stated in the text: encoding performance (correlation with the held-out test story, "
                 "across 3 subjects, about 20 h of podcast stories in all) rises by about 15% from the 125M to "
                 "the 30B-parameter model, log-linearly in model size; a noise-ceiling (cc_norm) analysis "
                 "finds performance near the maximum in precuneus and higher auditory cortex. Per-subject "
                 "r and cc_norm are given in figures only."),
    },
    {
        "source": LEBEL_CITATION,
        "url": "https://doi.org/10.1038/s41597-023-02437-z",
        "code": "https://github.com/HuthLab/deep-fMRI-dataset",
        "protocol": "holdout:wheretheressmoke",
        "subjects": ["UTS01", "UTS02", "UTS03"],
        "models": [],
        "score": "r",
        "values": {},
        "note": ("The data descriptor's technical validation fits encoding models on the training stories "
                 "and tests on wheretheressmoke; its performance is shown in figures, with no number in the "
                 "text that a run could be compared with."),
    },
)


def _subjects(root: Path, subject: str | Sequence[str] | None, source: str) -> list[str]:
    if subject is not None:
        subs = [subject] if isinstance(subject, str) else list(subject)
        return [normalize_subject(s) for s in subs]
    hint = "Is root the ds003020 folder, with the data fetched?"
    if source == "preprocessed":
        return find_subjects(root / "derivative" / "preprocessed_data", prefix="", label_start="UTS",
                             hint=hint)
    return find_subjects(root, hint=hint)


def read_respdict(root: str | os.PathLike) -> dict[str, int]:
    """Story -> number of TRs, from ``derivative/respdict.json``."""
    path = check_content(Path(root) / "derivative" / "respdict.json", "respdict file")
    with open(path, encoding="utf-8") as fid:
        return {str(k): int(v) for k, v in json.load(fid).items()}


def _story_tr(root: Path, story: str) -> float:
    """``RepetitionTime`` of the top-level ``task-<story>_bold.json`` sidecar."""
    path = root / f"task-{story}_bold.json"
    if not path.exists():
        raise FileNotFoundError(
            f"sidecar not found: {str(path)!r}; ds003020 has one top-level sidecar per story with "
            "its RepetitionTime."
        )
    meta = read_sidecar(path)
    if "RepetitionTime" not in meta:
        raise DatasetError(f"sidecar {str(path)!r} has no 'RepetitionTime'.")
    return float(meta["RepetitionTime"])


def read_lebel_transcript(root: str | os.PathLike, story: str, tier: str | None = None) -> Transcript:
    """The words of one story from ``derivative/TextGrids/<story>.TextGrid``.

    Silences and the noise/sentence marks the authors drop (:data:`LEBEL_BAD_WORDS`, e.g.
    ``sp``, ``{LG}``, ``{BR}``) are removed. Any of Praat's text formats is read, including
    the chronological one some of these TextGrids use. Times are seconds from the start of the
    story's audio.
    """
    path = check_transcript(
        Path(root) / "derivative" / "TextGrids" / f"{story}.TextGrid", story,
        f"Fetch it ('datalad get derivative/TextGrids/{story}.TextGrid') or leave the story out.",
        what="TextGrid",
    )
    return read_textgrid(path, tier=tier, name=story, silence=LEBEL_BAD_WORDS, fix_inverted=True,
                         tier_index=1)


def _read_resp(path: Path, n_rows: int, voxels: Any) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The ``resp`` array of an hf5 file: (n_rows, n_vox), the repeats if it holds several, and
    whether a stored mean of the repeats was dropped (see :func:`split_repeats`)."""
    import h5py

    check_content(path, "preprocessed response file")
    with h5py.File(path, "r") as f:
        if "resp" not in f:
            raise DatasetError(
                f"{str(path)!r} has no dataset 'resp' (it has {list(f.keys())}); is it a "
                "ds003020 preprocessed response file?"
            )
        dset = f["resp"]
        shape = dset.shape
        if len(shape) == 2 and shape[0] == n_rows:
            data = dset[:, :] if voxels is None else dset[:, voxels]
            return np.asarray(data), None, False
        blocks = None
        if len(shape) == 2 and shape[0] % n_rows == 0 and shape[0] > n_rows:
            data = dset[:, :] if voxels is None else dset[:, voxels]
            blocks = np.asarray(data).reshape(shape[0] // n_rows, n_rows, -1)
        elif len(shape) == 3 and shape[1] == n_rows:
            data = dset[:, :, :] if voxels is None else dset[:, :, voxels]
            blocks = np.asarray(data)
    if blocks is None:
        raise DatasetError(
            f"{str(path)!r} has 'resp' of shape {shape}; expected {n_rows} rows (respdict.json minus "
            f"the {2 * LEBEL_TRIM} trimmed TRs), or a multiple of it for the repeated test story."
        )
    reps, had_mean = split_repeats(blocks)
    if had_mean:
        logger.info("%s: the last of %d blocks is the mean of the others; keeping %d repeats.",
                    path, blocks.shape[0], reps.shape[0])
    return reps.mean(axis=0), reps, had_mean


def split_repeats(blocks: np.ndarray, rtol: float = 1e-4) -> tuple[np.ndarray, bool]:
    """The repeats of a stacked test story, without their mean if the file stores it last.

    The ``wheretheressmoke.hf5`` files hold 11 (UTS01-03) or 6 (UTS04-09) blocks for 10 or 5
    recorded repeats: the repeats and, it seems, their mean. When the last block equals the
    mean of the others (within ``rtol`` of the data's scale), it is dropped. NaN voxels match
    NaN voxels; with fewer than 3 blocks, or only zeros, nothing is dropped.

    Parameters
    ----------
    blocks : ndarray, shape (n_blocks, n_rows, n_voxels)
    rtol : float
        Tolerance, relative to the largest finite absolute value of the last block and of the
        mean of the others.

    Returns
    -------
    repeats : ndarray, shape (n_repeats, n_rows, n_voxels)
    had_mean : bool
        Whether the last block was the mean (and was dropped).
    """
    if blocks.shape[0] < 3:  # with 2 blocks the "mean" of one block is itself
        return blocks, False
    reps = blocks[:-1]
    mean = reps.mean(axis=0, dtype=np.float64)  # no float64 copy of the repeats
    last = blocks[-1].astype(np.float64)
    finite = np.concatenate([np.abs(mean[np.isfinite(mean)]), np.abs(last[np.isfinite(last)])])
    scale = float(finite.max()) if finite.size else 0.0
    if scale == 0.0:  # all zeros: nothing tells a mean from a repeat
        return blocks, False
    is_mean = bool(np.allclose(last, mean, rtol=0.0, atol=rtol * scale, equal_nan=True))
    return (reps, True) if is_mean else (blocks, False)


def _mean_of_repeats(runs: dict[str, Response], transcripts: dict[str, Transcript],
                     transcript_for: Any) -> dict[str, Response]:
    """The raw runs ``"<story>_run-<N>"`` of each repeated story replaced by one response
    ``"<story>"``, their mean, with the runs in ``info["repeats"]`` (n_repeats, rows, voxels)."""
    groups: dict[str, list[str]] = {}
    for key in runs:
        story, sep, _ = key.rpartition("_run-")
        groups.setdefault(story if sep else key, []).append(key)
    out: dict[str, Response] = {}
    for story, keys in groups.items():
        if len(keys) == 1 and keys[0] == story:
            out[story] = runs[story]
            continue
        if len({runs[k].data.shape for k in keys}) != 1:
            shapes = ", ".join(f"{k}: {runs[k].data.shape}" for k in keys)
            raise DatasetError(
                f"the repeats of story {story!r} differ in shape ({shapes}); their mean needs one grid. "
                "Load them with repeats='runs', or check the runs' volumes."
            )
        stack = np.stack([runs[k].data for k in keys])
        first = runs[keys[0]]
        info = {**first.info, "repeats": stack, "repeat_runs": keys,
                "source": [runs[k].info.get("source") for k in keys]}
        out[story] = first.copy(data=stack.mean(axis=0, dtype=np.float64).astype(stack.dtype), run=story, info=info)
        for k in keys:
            transcripts.pop(k, None)
        transcripts[story] = transcript_for(story)
    return out


def load_lebel2023(
    root: str | os.PathLike | None = None,
    subject: str | Sequence[str] | None = "UTS03",
    stories: Iterable[str] | None = None,
    source: str = "preprocessed",
    trim: bool = True,
    voxels: Any = None,
    mask: Any = None,
    tier: str | None = None,
    repeats: str | None = None,
) -> EncodingDataset:
    """Load LeBel et al. 2023 (ds003020): stories, word TextGrids and BOLD responses (TR 2 s).

    Parameters
    ----------
    root : path-like | None
        The ds003020 folder; default ``<data dir>/ds003020`` (``$NEUROENC_DATA``).
    subject : str | sequence of str | None
        ``"UTS01"`` ... ``"UTS09"`` (``sub-`` prefix optional); ``None`` for all subjects found.
    stories : iterable of str | None
        Stories (task labels); default every story of ``respdict.json`` that the subject has.
        ``"wheretheressmoke"`` is the repeated test story.
    source : {"preprocessed", "bold"}
        ``"preprocessed"``: the authors' responses (``derivative/preprocessed_data``), already
        trimmed. ``"bold"``: the raw BIDS runs (``sub-*/ses-*/func/*_bold.nii.gz``; TR from the
        sidecars, checked against the NIfTI header).
    trim : bool
        Apply the authors' trimming. The preprocessed files are trimmed already (``trim=False``
        is an error there); for raw BOLD, ``True`` drops the first and last 10 volumes
        (``start=10.0``) and ``False`` keeps them (``start=-10.0``: the sound starts 10 s into
        the run).
    voxels : array-like of int | None
        Columns to read from the preprocessed files (all by default: 81,126-98,336 voxels,
        about 1 GB per 10 stories in float32).
    mask : path-like | array | None
        Voxels to keep from raw BOLD. ``None``: the voxels whose time course varies in every
        loaded run of the subject, so that all its runs share one set of targets (see
        :func:`neuroenc.responses.bold.read_subject_bold`; the number dropped is logged).
    tier : str | None
        TextGrid tier holding the words; default the tier named ``word``, else the second one.
    repeats : {None, "runs", "mean"}
        How the raw runs of a repeated story (``wheretheressmoke``) load: ``"runs"``, one response
        per run (``"<story>_run-<N>"``); ``"mean"``, one response ``"<story>"``, their mean, with
        the runs in ``Response.info["repeats"]`` (as the preprocessed file gives them), which is
        what the authors' protocol tests on (``cv: holdout:wheretheressmoke``). ``None``:
        ``"runs"`` for raw BOLD; the preprocessed test story always loads as the mean.

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts[story]`` (seconds from the start of the story audio);
        ``responses[subject][story]`` with ``tr`` from the story's sidecar and ``start=10.0``
        (trimmed; see the module notes). Raw runs of a repeated story are keyed
        ``"<story>_run-<N>"`` (each with the story's transcript). For the preprocessed test
        story, whose file stacks its repeats, the response is their mean and
        ``Response.info["repeats"]`` holds them (n_repeats, n_rows, n_voxels); when the file's
        last block is the mean of the others (11 blocks for 10 repeats, 6 for 5), it is not a
        repeat and is left out (``Response.info["stored_mean_dropped"]`` is then ``True``; see
        :func:`split_repeats`). ``info``: citation, licence, TR, start, ``respdict``, ``trim``,
        ``source``.
    """
    _check_option("source", source, ("preprocessed", "bold"))
    if repeats is not None:
        _check_option("repeats", repeats, ("runs", "mean"))
        if source == "preprocessed" and repeats == "runs":
            raise ValueError(
                "repeats='runs': the preprocessed ds003020 file of the repeated story stacks its repeats and "
                "loads as their mean (Response.info['repeats'] holds them); use source='bold' for one "
                "response per raw run, or drop repeats."
            )
    root = dataset_root(
        root, LEBEL_DIRNAME,
        "Get it with 'datalad install https://github.com/OpenNeuroDatasets/ds003020.git' (or openneuro-py)",
    )
    if source == "preprocessed" and not trim:
        raise ValueError(
            "The preprocessed ds003020 responses are already trimmed (respdict - 20 rows), so "
            "trim=False cannot undo it. Use source='bold' to get every volume of the raw runs."
        )
    respdict = read_respdict(root)
    if voxels is not None:
        voxels = np.asarray(voxels, dtype=int).reshape(-1)
        if voxels.size == 0 or (np.diff(voxels) <= 0).any() or voxels[0] < 0:
            raise ValueError(
                "voxels must be non-negative column indices in increasing order without repeats "
                f"(h5py reads them so), got {voxels[:5].tolist()}...; pass np.unique(voxels)."
            )
    subjects = _subjects(root, subject, source)
    wanted = None if stories is None else [str(s) for s in stories]
    if wanted is not None:
        unknown = [s for s in wanted if s not in respdict]
        if unknown:
            raise ValueError(
                f"ds003020 has no story {unknown[0]!r} in respdict.json; stories are e.g. "
                f"{sorted(respdict)[:5]}."
            )
    transcripts: dict[str, Transcript] = {}
    responses: dict[str, dict[str, Response]] = {}
    base_transcripts: dict[str, Transcript] = {}

    def transcript_for(story: str) -> Transcript:
        if story not in base_transcripts:
            base_transcripts[story] = read_lebel_transcript(root, story, tier=tier)
        return base_transcripts[story]

    for sub in subjects:
        runs: dict[str, Response] = {}
        if source == "preprocessed":
            folder = root / "derivative" / "preprocessed_data" / sub
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"no preprocessed data for subject {sub!r}: {str(folder)!r} is missing."
                )
            available = [s for s in respdict if (folder / f"{s}.hf5").exists()
                         or (folder / f"{s}.hf5").is_symlink()]
            todo = available if wanted is None else wanted
            for story in todo:
                path = folder / f"{story}.hf5"
                n_rows = respdict[story] - 2 * LEBEL_TRIM
                tr = _story_tr(root, story)
                transcript_for(story)
                data, reps, had_mean = _read_resp(path, n_rows, voxels)
                names = ([f"v{i}" for i in range(data.shape[1])] if voxels is None
                         else [f"v{int(i)}" for i in voxels])
                info = {"source": str(path), "space": "subject volume (pycortex)"}
                if reps is not None:
                    info["repeats"] = reps
                    info["stored_mean_dropped"] = had_mean
                runs[story] = Response(data, tr=tr, start=LEBEL_START, names=names, run=story,
                                       subject=sub, info=info)
                transcripts[story] = base_transcripts[story]
        else:
            table = index_runs(root, subjects=[sub], tasks=wanted)
            table = table[table["task"].isin(respdict)]
            if not len(table):
                raise FileNotFoundError(
                    f"no raw BOLD runs of subject {sub!r} found under {str(root)!r} "
                    f"(stories {wanted or 'any'})."
                )
            counts = table["task"].value_counts()
            bold = read_subject_bold(list(table["path"]), mask=mask, subject=sub)
            for row, (data, header_tr, binfo) in zip(table.itertuples(), bold):
                story = row.task
                key = story if counts[story] == 1 else f"{story}_run-{row.run}"
                tr = check_tr(row.path, row.tr, header_tr, sidecar=f"sidecar of {row.path.name}")
                n = respdict[story]
                if trim:
                    if data.shape[0] != n:
                        raise DatasetError(
                            f"{str(row.path)!r} has {data.shape[0]} volumes but respdict.json says "
                            f"{n} for story {story!r}; the authors' trimming assumes the full run. "
                            "Pass trim=False to load the volumes as they are."
                        )
                    data = data[LEBEL_TRIM: n - LEBEL_TRIM]
                    start = LEBEL_START
                else:
                    start = LEBEL_START - LEBEL_TRIM * tr
                transcripts[key] = transcript_for(story).rename(key)
                runs[key] = Response(data, tr=tr, start=start, names=binfo["names"], run=key,
                                     subject=sub, info={"source": str(row.path), **binfo},
                                     space=binfo["target_space"])
        if source == "bold" and repeats == "mean":
            runs = _mean_of_repeats(runs, transcripts, transcript_for)
        if not runs:
            raise DatasetError(f"subject {sub!r}: none of the requested stories has data.")
        responses[sub] = runs
    info = {
        "citation": LEBEL_CITATION,
        "license": "CC0",
        "url": LEBEL_URL,
        "openneuro": LEBEL_DIRNAME,
        "tr": LEBEL_TR,
        "start": LEBEL_START if trim else LEBEL_START - LEBEL_TRIM * LEBEL_TR,
        "trim": trim,
        "source": source,
        "respdict": respdict,
        "test_story": LEBEL_TEST_STORY,
        "root": str(root),
    }
    return EncodingDataset("lebel2023", transcripts, responses, {}, {}, info)
