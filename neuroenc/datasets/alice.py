"""Alice in Wonderland fMRI (Brennan et al. 2016): 6 ROI time courses per subject."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np

from .._validation import DatasetError, _check_option
from ..responses import Response
from ..stimuli.textgrid import read_textgrid
from ._base import EncodingDataset, fetch_files, get_data_dir, read_checksums

logger = logging.getLogger(__name__)

ALICE_DIRNAME = "alice-brennan2016"
ALICE_COMMIT = "ec54039b6ac5ad7bf8c81b91768108e5be5c1ce0"
#: Public source of the files (the authors' release in ``daandouwe/Thesis``).
ALICE_URL = (
    f"https://raw.githubusercontent.com/daandouwe/Thesis/{ALICE_COMMIT}/brain-data/syntax-in-rnng"
)
ALICE_ROIS = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")
ALICE_TR = 2.0
#: Stimulus time of row 0: the first 10 volumes (20 s) were discarded by the authors.
ALICE_START = 20.0
ALICE_N_TRS = 362
ALICE_TEXTGRID = "stimuli/DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
ALICE_PREDICTORS = "fmri/sept18-generic-predictors-under-hrf-with-logfrqhal.txt"
ALICE_PREDICTOR_NAMES = (
    "rate_conv", "frq_conv_orth", "break_conv_orth", "tdp_conv_orth", "tdx_conv_orth",
    "bup_conv_orth", "bux_conv_orth", "cfgsurp_conv_orth", "bigramlex_conv_orth",
    "trigramlex_conv_orth", "bigrampos_conv_orth", "trigrampos_conv_orth",
)
#: Split-half group reliability of the 10 mm ROIs (Spearman-Brown), from the data README.
ALICE_RELIABILITY = {"LPTL": 0.85, "LATL": 0.75, "LIPL": 0.73, "LPreM": 0.61, "RATL": 0.51, "LIFG": 0.46}
ALICE_CITATION = (
    "Brennan, J. R., Stabler, E. P., Van Wagenen, S. E., Luh, W.-M., & Hale, J. T. (2016). "
    "Abstract linguistic structure correlates with temporal activity during naturalistic "
    "comprehension. Brain and Language, 157-158, 81-94."
)


def _alice_files(checksums: dict[str, str], resolution: str) -> dict[str, dict[str, str]]:
    """Per subject, the relative paths of its time courses and regressors."""
    subjects: dict[str, dict[str, str]] = {}
    for rel in checksums:
        parts = rel.split("/")
        if len(parts) == 3 and parts[1] == resolution and parts[2].endswith("-timecourses.txt"):
            subjects.setdefault(parts[2].split("-")[0], {})["timecourses"] = rel
        elif len(parts) == 2 and parts[0] == "fmri" and parts[1].startswith("s") and "-" in parts[1]:
            sid, rest = parts[1].split("-", 1)
            key = {"rate.txt": "rate", "sndpwr.txt": "sndpwr"}.get(rest, "motion" if rest.startswith("rp_") else None)
            if key:
                subjects.setdefault(sid, {})[key] = rel
    return dict(sorted(subjects.items()))


def _loadtxt(path: os.PathLike) -> np.ndarray:
    """A whitespace-separated numeric table, with an error naming the file if it is not one."""
    try:
        return np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise DatasetError(
            f"{str(path)!r} is not a numeric table ({err}). The file is corrupt or another "
            "version; delete it and load again with download=True to fetch it."
        ) from err


def _load_rows(path: os.PathLike, n_rows: int, n_discarded: int) -> np.ndarray:
    """Load a regressor file, dropping the discarded volumes if it still has them."""
    arr = _loadtxt(path)
    if arr.shape[0] == n_rows + n_discarded:
        arr = arr[n_discarded:]
    if arr.shape[0] != n_rows:
        raise DatasetError(
            f"{str(path)!r} has {arr.shape[0]} rows; expected {n_rows} (or {n_rows + n_discarded} "
            f"with the {n_discarded} discarded volumes)."
        )
    return arr


def load_alice(
    data_dir: str | os.PathLike | None = None,
    resolution: str = "10mm",
    subjects: Iterable[str] | None = None,
    download: bool = True,
    base_url: str | None = ALICE_URL,
    verify: bool = False,
) -> EncodingDataset:
    """Load the Alice fMRI data set (Brennan et al. 2016): 6 ROIs, TR 2 s, one 12-min story.

    Parameters
    ----------
    data_dir : path-like | None
        Folder holding ``alice-brennan2016/``; default ``$NEUROENC_DATA`` or ``~/neuroenc_data``.
    resolution : {"10mm", "6mm"}
        Radius of the spherical ROIs.
    subjects : iterable of str | None
        Subject ids (``"s18"``...); default all.
    download : bool
        Fetch missing files from ``base_url`` (verifying sha256). Nothing is downloaded when the
        files are on disk.
    base_url : str | None
        Where to fetch from; default the authors' public release.
    verify : bool
        Verify the sha256 of files already on disk too.

    Returns
    -------
    dataset : EncodingDataset
        ``transcripts["alice"]``: the words of the TextGrid (tier ``word``, silences ``sp``
        dropped), on the audio clock. ``responses[subject]["alice"]``: 362 × 6 ROI time courses,
        TR 2.0 s, ``start=20.0`` (row 0 is stimulus time 20 s: the first 10 volumes were
        discarded). ``confounds[subject]["alice"]``: word rate, sound power and the 6 SPM motion
        parameters on the same grid. Subjects whose time courses are constant or not finite
        (s33 is all zeros) are listed in ``excluded`` with the reason, and logged.
        ``info["predictors"]``: the authors' 12 HRF-convolved linguistic predictors.

    Raises
    ------
    ValueError
        For bad arguments (an unknown subject or resolution).
    DatasetError
        For data problems: missing files that cannot be fetched, checksum mismatches,
        files of the wrong shape or not numeric, every requested subject excluded.
    """
    _check_option("resolution", resolution, ("10mm", "6mm"))
    root = get_data_dir(data_dir) / ALICE_DIRNAME
    checksums = read_checksums(ALICE_DIRNAME)
    per_subject = _alice_files(checksums, resolution)
    if subjects is not None:
        subjects = [str(s) for s in subjects]
        unknown = [s for s in subjects if s not in per_subject]
        if unknown:
            raise ValueError(f"Alice has no subject(s) {unknown}; subjects are {list(per_subject)}.")
        per_subject = {s: per_subject[s] for s in subjects}
    needed = [ALICE_TEXTGRID, ALICE_PREDICTORS] + [rel for f in per_subject.values() for rel in f.values()]
    fetch_files(root, needed, checksums, base_url, download=download, verify=verify, dataset="alice")

    transcript = read_textgrid(root / ALICE_TEXTGRID, tier="word", name="alice")
    n_discarded = int(round(ALICE_START / ALICE_TR))
    responses: dict[str, dict[str, Response]] = {}
    confounds: dict[str, dict[str, Response]] = {}
    excluded: dict[str, str] = {}
    for sid, files in per_subject.items():
        path = root / files["timecourses"]
        data = _loadtxt(path)
        if data.shape != (ALICE_N_TRS, len(ALICE_ROIS)):
            raise DatasetError(
                f"{str(path)!r} has shape {data.shape}; expected ({ALICE_N_TRS}, {len(ALICE_ROIS)})."
            )
        reason = _rejection_reason(data)
        if reason:
            excluded[sid] = f"{files['timecourses']}: {reason}"
            logger.warning("Alice: excluding subject %s: %s", sid, excluded[sid])
            continue
        responses[sid] = {
            "alice": Response(data, tr=ALICE_TR, start=ALICE_START, names=ALICE_ROIS, run="alice",
                              subject=sid, info={"resolution": resolution, "source": str(path)})
        }
        columns = [_load_rows(root / files["rate"], ALICE_N_TRS, n_discarded),
                   _load_rows(root / files["sndpwr"], ALICE_N_TRS, n_discarded),
                   _load_rows(root / files["motion"], ALICE_N_TRS, n_discarded)]
        names = ["word_rate", "sound_power"] + [f"motion_{i}" for i in range(1, columns[2].shape[1] + 1)]
        confounds[sid] = {
            "alice": Response(np.hstack(columns), tr=ALICE_TR, start=ALICE_START, names=names,
                              run="alice", subject=sid)
        }
    if not responses:
        raise DatasetError(f"Alice: every requested subject was excluded: {excluded}.")
    predictors = Response(
        _load_rows(root / ALICE_PREDICTORS, ALICE_N_TRS, n_discarded), tr=ALICE_TR,
        start=ALICE_START, names=ALICE_PREDICTOR_NAMES, run="alice",
    )
    info = {
        "citation": ALICE_CITATION,
        "license": "CC BY 4.0",
        "url": ALICE_URL,
        "tr": ALICE_TR,
        "start": ALICE_START,
        "resolution": resolution,
        "rois": list(ALICE_ROIS),
        "reliability": dict(ALICE_RELIABILITY),
        "predictors": predictors,
        "root": str(root),
    }
    return EncodingDataset("alice", {"alice": transcript}, responses, confounds, excluded, info)


def _rejection_reason(data: np.ndarray) -> str:
    """Why a subject's time courses are unusable ('' if they are fine)."""
    if not np.isfinite(data).all():
        return f"{int((~np.isfinite(data)).sum())} non-finite values"
    if not np.any(data):
        return "all values are zero"
    const = np.flatnonzero(np.ptp(data, axis=0) == 0)
    if const.size:
        return f"constant column(s) {[ALICE_ROIS[i] for i in const]}"
    return ""
