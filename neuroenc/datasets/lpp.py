"""Le Petit Prince multilingual fMRI (Li et al. 2022; ds003643): EN, CN and FR, 9 sections, TR 2 s.

Runs and sections. The ``run-RR`` labels are the scanner's series numbers (EN 06-23, CN 03-17,
FR 01-09), not the section numbers: sections 1-9 follow the runs in sort order. The preprocessed
data (``derivatives/sub-*/func/*_space-MNIColin27_desc-preproc_bold.nii.gz``) have exactly 9 runs
per subject. The raw multi-echo data have extra, aborted runs for two subjects (sub-CN032: 10,
sub-EN059: 11); they are told apart by their number of volumes (README table ``scan_raw``).

Timing. Word onsets come from ``annotation/<L>/lpp<L>_section<k>.TextGrid`` (seconds from the
start of the section's audio). The README's notes on extra scans fix where the audio starts:
the preprocessed data of every language start at the audio onset (EN raw data have 4 extra scans,
8 s, before it, which preprocessing removed), so their row 0 is stimulus time 0; the raw EN runs
start at -8 s, the raw CN and FR runs at 0. Extra scans after the audio are kept (they hold the
hemodynamic response to the last words).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._validation import DatasetError, _check_option
from ..responses import Response
from ..responses.bold import n_volumes, read_subject_bold
from ..stimuli.textgrid import read_textgrid
from ..stimuli.transcript import Transcript
from ._base import EncodingDataset, check_transcript
from .bids import check_tr, dataset_root, find_subjects, index_runs, normalize_subject

logger = logging.getLogger(__name__)

LPP_DIRNAME = "ds003643"
LPP_TR = 2.0
LPP_LANGUAGES = ("EN", "CN", "FR")
#: README "Notes for number of fMRI scans and audio length": audio length (s) per section.
LPP_AUDIO = {
    "CN": (564.9, 642.6, 643.7, 612.2, 584.5, 782.9, 726.6, 585.2, 801.1),
    "EN": (554.7, 587.8, 671.4, 598.2, 522.2, 678.1, 642.0, 575.8, 727.1),
    "FR": (613.5, 647.0, 702.2, 624.5, 580.8, 750.4, 658.5, 583.2, 667.9),
}
#: Volumes of the raw runs per section.
LPP_SCAN_RAW = {
    "CN": (287, 326, 326, 311, 297, 396, 368, 297, 405),
    "EN": (286, 302, 344, 307, 269, 347, 329, 296, 372),
    "FR": (309, 326, 354, 315, 293, 378, 332, 294, 336),
}
#: Volumes of the preprocessed runs per section.
LPP_SCAN_PREPROC = {
    "CN": (283, 322, 322, 307, 293, 392, 364, 293, 401),
    "EN": (282, 298, 340, 303, 265, 343, 325, 292, 368),
    "FR": (309, 326, 354, 315, 293, 378, 332, 294, 336),
}
#: Stimulus time of row 0 of the raw runs (EN: 4 extra scans before the audio).
LPP_RAW_START = {"EN": -8.0, "CN": 0.0, "FR": 0.0}
LPP_CITATION = (
    "Li, J., Bhattasali, S., Zhang, S., Franzluebbers, B., Luh, W.-M., Spreng, R. N., Brennan, "
    "J. R., Yang, Y., Pallier, C., & Hale, J. (2022). Le Petit Prince multilingual naturalistic "
    "fMRI corpus. Scientific Data, 9, 530. https://doi.org/10.1038/s41597-022-01625-7"
)
LPP_URL = "https://openneuro.org/datasets/ds003643"


def read_lpp_transcript(root: str | os.PathLike, language: str, section: int, tier: str | None = None) -> Transcript:
    """The words of one section: ``annotation/<L>/lpp<L>_section<k>.TextGrid``."""
    path = check_transcript(
        Path(root) / "annotation" / language / f"lpp{language}_section{section}.TextGrid",
        f"section-{section}",
        f"Fetch it ('datalad get annotation/{language}') or leave the section out.",
        what="TextGrid",
    )
    return read_textgrid(path, tier=tier, name=f"section-{section}", fix_inverted=True)


def _map_raw_runs(paths: list[Path], runs: list[str], language: str, subject: str,
                  check_lengths: bool) -> dict[int, int]:
    """Section -> index into ``runs``, skipping aborted runs by their number of volumes."""
    expected = LPP_SCAN_RAW[language]
    counts = [n_volumes(p) for p in paths]
    out, k, skipped = {}, 0, []
    for i, n in enumerate(counts):
        if k < 9 and ((n == expected[k]) if check_lengths else (n >= 0.5 * min(expected))):
            out[k + 1] = i
            k += 1
        else:
            skipped.append(f"run-{runs[i]} ({n} volumes)")
    if k != 9:
        raise DatasetError(
            f"sub-{subject}: could not match the raw runs {[f'run-{r} ({n})' for r, n in zip(runs, counts)]} "
            f"to the 9 sections (expected {list(expected)} volumes, README 'scan_raw'). Pass "
            "check_lengths=False to map runs by order, skipping short ones."
        )
    if skipped:
        logger.info("LPP sub-%s: skipped raw run(s) %s (aborted: not a section).", subject, skipped)
    return out


def load_lpp(
    root: str | os.PathLike | None = None,
    language: str = "EN",
    subjects: Iterable[str] | None = None,
    sections: Iterable[int] | None = None,
    source: str = "preproc",
    echo: int = 2,
    mask: Any = None,
    check_lengths: bool = True,
    tier: str | None = None,
) -> EncodingDataset:
    """Load Le Petit Prince (ds003643): 9 sections per subject, word TextGrids, TR 2 s.

    Parameters
    ----------
    root : path-like | None
        The ds003643 folder; default ``<data dir>/ds003643``.
    language : {"EN", "CN", "FR"}
        Which cohort (``task-lppEN``...).
    subjects : iterable of str | None
        Labels such as ``"EN057"`` (``sub-`` optional); default every subject of the language.
    sections : iterable of int | None
        Sections 1-9 to load; default all.
    source : {"preproc", "raw"}
        ``"preproc"``: the authors' preprocessed runs (ME-ICA denoised, MNI Colin27).
        ``"raw"``: one echo of the raw multi-echo runs.
    echo : int
        The echo of the raw runs (1, 2 or 3).
    mask : path-like | array | None
        Voxels to keep. ``None``: the voxels whose time course varies in every loaded section
        of the subject, so that all its sections share one set of targets (the number dropped
        is logged; see :func:`neuroenc.responses.bold.read_subject_bold`).
    check_lengths : bool
        Check each run's number of volumes against the README table (and, for raw runs, use
        them to recognise aborted runs). ``False`` maps runs to sections by order only.
    tier : str | None
        TextGrid tier with the words; default the tier named ``word(s)`` or the only tier.

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts["section-<k>"]``; ``responses[subject]["section-<k>"]`` with the TR of the
        run's sidecar (checked against the NIfTI header) and ``start`` 0.0 (preprocessed; raw CN,
        FR) or -8.0 (raw EN). ``info["run_map"][subject][section]`` is the run label used.
    """
    _check_option("language", language, LPP_LANGUAGES)
    _check_option("source", source, ("preproc", "raw"))
    root = dataset_root(
        root, LPP_DIRNAME,
        "Get it with 'datalad install https://github.com/OpenNeuroDatasets/ds003643.git'",
    )
    wanted = list(range(1, 10)) if sections is None else sorted({int(s) for s in sections})
    bad = [s for s in wanted if not 1 <= s <= 9]
    if bad:
        raise ValueError(f"LPP sections are 1-9, got {bad}.")
    task = f"lpp{language}"
    deriv = root / "derivatives"
    folder = deriv if source == "preproc" else root
    subs = (find_subjects(folder, label_start=language,
                          hint="Fetch the subjects' runs ('datalad get') or pass subjects=.")
            if subjects is None else [normalize_subject(s) for s in subjects])
    wrong = [s for s in subs if not s.startswith(language)]
    if wrong:
        raise ValueError(f"subject(s) {wrong} are not in the {language} cohort (labels start with {language!r}).")
    if source == "preproc":
        table = index_runs(root, subjects=subs, tasks=[task], derivatives=deriv,
                           filters={"space": "MNIColin27", "desc": "preproc"})
    else:
        table = index_runs(root, subjects=subs, tasks=[task], filters={"echo": int(echo)})
    transcripts = {f"section-{k}": read_lpp_transcript(root, language, k, tier=tier) for k in wanted}
    responses: dict[str, dict[str, Response]] = {}
    run_map: dict[str, dict[int, str]] = {}
    for sub in subs:
        rows = table[table["subject"] == sub]
        if not len(rows):
            raise FileNotFoundError(
                f"no {'preprocessed' if source == 'preproc' else 'raw echo-' + str(echo)} runs for "
                f"sub-{sub} under {str(folder)!r}."
            )
        runs = list(rows["run"])
        paths = list(rows["path"])
        if source == "preproc":
            if len(rows) != 9:
                raise DatasetError(
                    f"sub-{sub} has {len(rows)} preprocessed runs ({['run-' + r for r in runs]}); "
                    "expected 9, one per section."
                )
            mapping = {k: k - 1 for k in range(1, 10)}
        else:
            mapping = _map_raw_runs(paths, runs, language, sub, check_lengths)
        run_map[sub] = {k: runs[i] for k, i in mapping.items()}
        bold = read_subject_bold([paths[mapping[k]] for k in wanted], mask=mask, subject=sub)
        out: dict[str, Response] = {}
        for k, (data, header_tr, binfo) in zip(wanted, bold):
            row = rows.iloc[mapping[k]]
            tr = check_tr(row["path"], row["tr"], header_tr, sidecar=f"sidecar of {row['path'].name}")
            if source == "preproc" and check_lengths and data.shape[0] != LPP_SCAN_PREPROC[language][k - 1]:
                raise DatasetError(
                    f"{str(row['path'])!r} (section {k}) has {data.shape[0]} volumes; the README "
                    f"gives {LPP_SCAN_PREPROC[language][k - 1]} for preprocessed {language} section "
                    f"{k}. Check the run-to-section mapping, or pass check_lengths=False."
                )
            start = 0.0 if source == "preproc" else LPP_RAW_START[language]
            key = f"section-{k}"
            out[key] = Response(data, tr=tr, start=start, names=binfo["names"], run=key, subject=sub,
                                info={"source": str(row["path"]), "run_label": row["run"],
                                      "section": k, **binfo}, space=binfo["target_space"])
        responses[sub] = out
    info = {
        "citation": LPP_CITATION,
        "license": "CC0",
        "url": LPP_URL,
        "openneuro": LPP_DIRNAME,
        "language": language,
        "source": source,
        "tr": LPP_TR,
        "run_map": run_map,
        "audio_seconds": dict(zip(range(1, 10), LPP_AUDIO[language])),
        "root": str(root),
    }
    return EncodingDataset("lpp", transcripts, responses, {}, {}, info)
