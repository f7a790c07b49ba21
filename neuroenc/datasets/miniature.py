"""Miniature copies of public data sets, built from their real layouts, for tests and examples.

``bids-layouts/<id>/`` (in the shared data folder) holds, for each of four OpenNeuro/NEMAR data
sets, the complete file tree (``tree.txt``: marker, size, path) and byte-exact copies of the small
text files (sidecars, participants, ``events.tsv``, ``respdict.json``...). :func:`make_miniature`
rebuilds a folder with the same layout: the real files are copied; the brain data, which the
mirrors do not hold, are written as tiny synthetic files with the real names and the real number
of volumes (a handful of voxels, a few MEG channels); timing files that the mirrors lack are
written in the format each data set documents, with plausible words. Loaders are thus tested on
the real folder structure, sidecars and events.

What is synthetic, per data set (everything else in the folder is a real copy):

- ``ds003020`` (LeBel 2023): ``derivative/preprocessed_data/<S>/<story>.hf5`` (key ``resp``,
  ``respdict[story] - 20`` rows; ``wheretheressmoke`` stacks as many blocks as the annex sizes
  imply, 11 or 6: the 10 or 5 repeats of the raw data, then their mean), the raw ``*_bold.nii.gz``
  (``respdict[story]`` volumes, TR 2 s in the header) and ``derivative/TextGrids/<story>.TextGrid``
  (tiers ``phone``, ``word``; silences ``sp`` and the noise marks ``{LG}``/``{BR}``; one story in
  Praat's chronological format).
- ``ds002345`` (Narratives): ``derivatives/afni-nosmooth/...desc-clean_bold.nii.gz`` and
  ``...space-fsaverage6_hemi-{L,R}_desc-clean.func.gii`` (paths of the DataLad release; the
  OpenNeuro mirror has no derivatives), ``stimuli/gentle/<story>/align.json`` and
  ``transcript.txt`` on the audio clock, pieman's brain mask
  (``derivatives/afni-smooth/tpl-MNI152NLin2009cAsym/..._res-pieman_desc-brain_mask.nii.gz``),
  and the per-run ``bold.json``/``events.tsv`` that the
  mirror holds but were not copied, rebuilt from the copied file of the same task (with the
  documented TR of 1.52 s for runs with ``milkywaysynonyms_audio.wav``).
- ``ds003643`` (Le Petit Prince): the preprocessed ``derivatives/...desc-preproc_bold.nii.gz``
  (the README's ``scan_preproc`` volumes per section; runs mapped to sections by sort order), the
  raw echo files (``scan_raw`` volumes; the aborted runs of sub-CN032 and sub-EN059 get 6),
  uncopied echo sidecars (from the language's copied ones) and
  ``annotation/<L>/lpp<L>_section<k>.TextGrid`` spanning the README's audio lengths.
- ``nm000229`` (MEG-MASC): the recordings, as FIF files next to where the ``.con`` files are
  (``..._meg.fif``: KIT files cannot be written), with a few channels at the sidecar's 1000 Hz,
  long enough to cover the real ``events.tsv``; their ``channels.tsv`` lists those channels.
  The channels have sensor positions (the real ones are in the ``.con`` files, which are not in
  the layout): mne's ``KIT-AD`` layout of the same channel names, put on a 10 cm sphere
  (:func:`_kit_sensor_locs`), so that topomaps and channel adjacency work on the miniature.

Synthetic brain signals are noise plus, in half the targets, the word rate convolved with an
HRF (fMRI) or a word-locked transient (MEG), so that an encoding model has something to find.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import DatasetError, _check_option, _check_random_state
from ._base import get_data_dir
from .lpp import LPP_AUDIO, LPP_SCAN_PREPROC, LPP_SCAN_RAW
from .narratives import NARRATIVES_STORY_OFFSETS

logger = logging.getLogger(__name__)

#: The folder (under the data directory) that holds the real layouts.
LAYOUTS_DIRNAME = "bids-layouts"
#: Loader name -> data set id (the folder name).
DATASET_IDS = {"lebel2023": "ds003020", "narratives": "ds002345", "lpp": "ds003643",
               "megmasc": "nm000229"}

#: Default selections: small, yet covering each data set's pitfalls.
DEFAULT_SUBJECTS = {
    "ds003020": ("UTS01", "UTS02"),
    "ds002345": ("001", "016", "023", "034", "038", "105", "115"),
    "ds003643": ("EN057", "EN059", "CN032", "FR001"),
    "nm000229": ("01", "12"),
}
DEFAULT_RUNS: dict[str, tuple[str, ...] | None] = {
    "ds003020": ("adollshouse", "inamoment", "wheretheressmoke"),
    "ds002345": ("pieman", "milkyway", "slumlordreach", "notthefallshortscram", "tunnel"),
    "ds003643": None,  # all 9 sections
    "nm000229": ("0",),
}
#: LeBel stories written in Praat's chronological TextGrid format.
CHRONOLOGICAL_TEXTGRIDS = ("inamoment",)

_VOCAB = {
    "EN": ("the", "little", "prince", "said", "and", "then", "she", "walked", "to", "a", "house",
           "near", "river", "where", "nobody", "had", "ever", "seen", "such", "bright", "stars",
           "I", "was", "thinking", "about", "what", "it", "means", "when", "people", "talk",
           "story", "night", "we", "went", "home", "after", "long", "day", "of", "work", "my",
           "father", "told", "me", "that", "world", "is", "very", "big", "old", "friend",
           "came", "back", "with", "bread", "in", "his", "hands", "morning"),
    "FR": ("le", "petit", "prince", "dit", "et", "puis", "elle", "marcha", "vers", "une",
           "maison", "près", "de", "la", "rivière", "où", "personne", "avait", "vu", "étoiles",
           "je", "pensais", "à", "ce", "que", "cela", "veut", "dire", "quand", "les", "gens",
           "parlent", "nuit", "nous", "sommes", "rentrés", "après", "longue", "journée", "mon",
           "père", "m'a", "monde", "est", "très", "grand", "vieil", "ami", "revint", "avec"),
    "CN": ("小", "王子", "说", "然后", "她", "走", "到", "一个", "房子", "河边", "那里", "从来",
           "没有", "人", "见过", "这样", "明亮", "星星", "我", "在", "想", "什么", "意思", "当",
           "人们", "谈论", "故事", "晚上", "我们", "回家", "之后", "漫长", "一天", "工作", "父亲",
           "告诉", "世界", "很", "大", "老", "朋友", "回来", "带着", "面包", "早上"),
}

#: Narratives stimuli without a Gentle alignment in the miniature (scrambled versions).
NARRATIVES_NO_GENTLE = ("notthefallshortscram", "notthefalllongscram")

#: Runs of the raw data that were aborted (a few MB in the annex: not a section).
LPP_ABORTED_BYTES = 8_000_000


# ----------------------------------------------------------------------------- layouts
def layouts_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder holding the real layouts (``<data dir>/bids-layouts``)."""
    return Path(path) if path is not None else get_data_dir() / LAYOUTS_DIRNAME


def dataset_id(name: str) -> str:
    """``"lebel2023"`` or ``"ds003020"`` -> ``"ds003020"``."""
    allowed = list(DATASET_IDS) + list(DATASET_IDS.values())
    _check_option("dataset", name, allowed)
    return DATASET_IDS.get(name, name)


def read_tree(layout: str | os.PathLike) -> pd.DataFrame:
    """Read a layout's ``tree.txt``: columns ``marker`` (F/A/X/L), ``size`` (bytes) and ``path``."""
    path = Path(layout) / "tree.txt"
    if not path.exists():
        raise FileNotFoundError(
            f"layout tree not found: {str(path)!r}. Point layouts= (or $NEUROENC_DATA) at the "
            f"folder that holds '{LAYOUTS_DIRNAME}/'."
        )
    rows = []
    with open(path, encoding="utf-8") as fid:
        for line in fid:
            if line.startswith("#") or not line.strip():
                continue
            marker, size, rel = line.rstrip("\n").split("\t")
            rows.append((marker, None if size == "-" else int(size), rel))
    return pd.DataFrame(rows, columns=["marker", "size", "path"])


# ----------------------------------------------------------------------------- writers
def _words_timeline(rng: np.random.Generator, start: float, stop: float, language: str = "EN",
                    rate: float = 2.0) -> list[tuple[float, float, str]]:
    """Plausible words from ``start`` to ``stop`` s: (onset, offset, word), with pauses."""
    vocab = _VOCAB[language]
    out = []
    t = float(start)
    mean_step = 1.0 / rate
    while True:
        dur = float(rng.uniform(0.45, 0.8) * mean_step)
        if t + dur > stop:
            break
        out.append((round(t, 3), round(t + dur, 3), str(vocab[int(rng.integers(len(vocab)))])))
        gap = float(rng.uniform(0.0, 0.5) * mean_step)
        if rng.random() < 0.05:
            gap += float(rng.uniform(0.3, 1.0))
        t = round(t + dur + gap, 3)
    return out


def _tile(words: list[tuple[float, float, str]], xmax: float, silence: str = "sp",
          marks: Sequence[str] = (), rng: np.random.Generator | None = None) -> list[tuple[float, float, str]]:
    """Intervals covering 0..xmax: the words, silences between them, some noise marks."""
    out, t = [], 0.0
    for on, off, w in words:
        if on > t + 1e-9:
            label = silence
            if marks and rng is not None and rng.random() < 0.1:
                label = str(marks[int(rng.integers(len(marks)))])
            out.append((t, on, label))
        out.append((on, off, w))
        t = off
    if xmax > t + 1e-9:
        out.append((t, xmax, silence))
    return out


def _phones(intervals: list[tuple[float, float, str]], silence: str = "sp") -> list[tuple[float, float, str]]:
    """A phone tier: each word split into two phones (labels in the ARPAbet style)."""
    out = []
    for on, off, w in intervals:
        if w == silence or w.startswith("{"):
            out.append((on, off, silence))
            continue
        mid = round((on + off) / 2, 3)
        out.append((on, mid, "AH0"))
        out.append((mid, off, "N"))
    return out


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def write_textgrid(path: Path, tiers: dict[str, list[tuple[float, float, str]]], xmax: float,
                   chronological: bool = False) -> Path:
    """Write interval tiers as a Praat TextGrid (long text format, or chronological)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if chronological:
        lines = ['"Praat chronological TextGrid text file"', f"0 {xmax:g}   ! Time domain.",
                 f"{len(tiers)}   ! Number of tiers."]
        for name in tiers:
            lines.append(f'"IntervalTier" {_q(name)} 0 {xmax:g}')
        lines.append("")
        entries = []
        for k, (name, ivs) in enumerate(tiers.items(), start=1):
            for on, off, text in ivs:
                entries.append((on, k, off, text, name))
        entries.sort(key=lambda e: (e[0], e[1]))
        last = None
        for on, k, off, text, name in entries:
            if name != last:
                lines.append(f"! {name}:")
                last = name
            lines.append(f"{k} {on:g} {off:g}")
            lines.append(_q(text))
            lines.append("")
        path.write_text("\n".join(lines), encoding="utf-8")
        return path
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ",
             f"xmax = {xmax:g} ", "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for k, (name, ivs) in enumerate(tiers.items(), start=1):
        lines += [f"    item [{k}]:", '        class = "IntervalTier" ', f"        name = {_q(name)} ",
                  "        xmin = 0 ", f"        xmax = {xmax:g} ",
                  f"        intervals: size = {len(ivs)} "]
        for i, (on, off, text) in enumerate(ivs, start=1):
            lines += [f"        intervals [{i}]:", f"            xmin = {on:g} ",
                      f"            xmax = {off:g} ", f"            text = {_q(text)} "]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_gentle(path: Path, words: list[tuple[float, float, str]], rng: np.random.Generator) -> Path:
    """Write a Gentle ``align.json`` (and ``transcript.txt`` beside it) for ``words``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, entries, pos = [], [], 0
    for i, (on, off, w) in enumerate(words):
        text = w.capitalize() if i == 0 else w
        punct = "," if rng.random() < 0.08 else ("." if rng.random() < 0.06 else "")
        token = text + punct
        start_offset = pos
        end_offset = pos + len(text)
        tokens.append(token)
        pos += len(token) + 1
        entry = {"alignedWord": w.lower(), "case": "success", "end": off,
                 "endOffset": end_offset, "phones": [{"duration": round(off - on, 2),
                                                        "phone": "ah_S"}],
                 "start": on, "startOffset": start_offset, "word": text}
        if i > 0 and rng.random() < 0.01:
            entry = {"case": "not-found-in-audio", "endOffset": end_offset,
                     "startOffset": start_offset, "word": text}
        entries.append(entry)
    transcript = " ".join(tokens)
    path.write_text(json.dumps({"transcript": transcript, "words": entries}, indent=1),
                    encoding="utf-8")
    (path.parent / "transcript.txt").write_text(transcript + "\n", encoding="utf-8")
    return path


def _hrf(tr: float, length: float = 24.0) -> np.ndarray:
    from scipy.stats import gamma

    t = np.arange(0.0, length, tr)
    h = gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6.0
    return h / np.abs(h).sum()


def _bold_signal(onsets: Sequence[float], times: np.ndarray, tr: float, n_targets: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Noise plus, in half the targets, the HRF-convolved word rate on the grid ``times``."""
    counts = np.histogram(np.asarray(onsets, float),
                          bins=np.append(times, times[-1] + tr) if len(times) else [0, 1])[0]
    drive = np.convolve(counts.astype(float), _hrf(tr))[: len(times)]
    if drive.std() > 0:
        drive = (drive - drive.mean()) / drive.std()
    data = rng.standard_normal((len(times), n_targets))
    weights = np.zeros(n_targets)
    weights[: n_targets // 2] = rng.uniform(0.5, 1.5, n_targets // 2)
    return (data + drive[:, None] * weights[None, :]).astype(np.float32)


def write_nifti(path: Path, data: np.ndarray, tr: float, shape: tuple[int, int, int] | None = None) -> Path:
    """Write (n_volumes, n_voxels) as a 4-D NIfTI with the TR in ``pixdim[4]`` (seconds)."""
    import nibabel as nib

    n_vols, n_vox = data.shape
    if shape is None:
        shape = (n_vox, 1, 1)
    vol = data.T.reshape(*shape, n_vols) + 100.0
    img = nib.Nifti1Image(vol.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    zooms = (3.0, 3.0, 3.0, float(tr))
    img.header.set_zooms(zooms)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def write_gifti(path: Path, data: np.ndarray) -> Path:
    """Write (n_volumes, n_vertices) as a GIfTI time series (one data array per volume)."""
    import nibabel as nib

    arrays = [nib.gifti.GiftiDataArray(row.astype(np.float32), intent="NIFTI_INTENT_TIME_SERIES",
                                       datatype="NIFTI_TYPE_FLOAT32") for row in data]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.gifti.GiftiImage(darrays=arrays), str(path))
    return path


# ----------------------------------------------------------------------------- per data set
class _Builder:
    def __init__(self, ds: str, src: Path, dest: Path, subjects: Sequence[str], runs: Sequence[str] | None,
                 n_voxels: int, rng: np.random.Generator, placeholders: bool) -> None:
        self.ds, self.src, self.dest = ds, src, dest
        self.subjects = list(subjects)
        self.runs = None if runs is None else [str(r) for r in runs]
        self.n_voxels = int(n_voxels)
        self.rng = rng
        self.placeholders = placeholders
        self.tree = read_tree(src)
        self.written: set[str] = set()
        self.files = src / "files"

    # helpers
    def out(self, rel: str) -> Path:
        p = self.dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        self.written.add(rel)
        return p

    def copy_real(self) -> None:
        for p in sorted(self.files.rglob("*")):
            if p.is_file():
                rel = p.relative_to(self.files).as_posix()
                shutil.copyfile(p, self.out(rel))

    def finish(self) -> None:
        if not self.placeholders:
            return
        for rel, marker in zip(self.tree["path"], self.tree["marker"]):
            if marker in ("A", "X") and rel not in self.written and not (self.dest / rel).exists():
                self.out(rel).write_bytes(b"")


def _build_lebel(b: _Builder) -> None:
    respdict = json.loads((b.files / "derivative/respdict.json").read_text())
    stories = list(respdict) if b.runs is None else b.runs
    tree = b.tree.set_index("path")
    voxels = {}
    for subject in b.subjects:
        # bytes per row of this subject's responses, from a story stored once
        sizes = [(s, int(tree.loc[f"derivative/preprocessed_data/{subject}/{s}.hf5", "size"]))
                 for s in respdict if s != "wheretheressmoke"
                 and f"derivative/preprocessed_data/{subject}/{s}.hf5" in tree.index]
        if sizes:
            s0, size0 = sizes[0]
            voxels[subject] = (size0 - 2048) / (respdict[s0] - 20) / 8.0
    timelines = {}
    for story in stories:
        if story not in respdict:
            raise DatasetError(f"ds003020 has no story {story!r} in respdict.json.")
        audio = respdict[story] * 2.0 - 20.0
        words = _words_timeline(b.rng, 0.8, audio - 0.5, "EN", rate=2.4)
        timelines[story] = words
        ivs = _tile(words, audio, "sp", ("{LG}", "{BR}", "{NS}"), b.rng)
        tiers = {"phone": _phones(ivs), "word": ivs}
        write_textgrid(b.out(f"derivative/TextGrids/{story}.TextGrid"), tiers, audio,
                       chronological=story in CHRONOLOGICAL_TEXTGRIDS)
    import h5py

    for subject in b.subjects:
        for story in stories:
            rel = f"derivative/preprocessed_data/{subject}/{story}.hf5"
            if rel not in tree.index:
                continue
            n = respdict[story] - 20
            n_rep = 1
            if subject in voxels:
                n_rep = int(round((int(tree.loc[rel, "size"]) - 2048) / (voxels[subject] * 8.0 * n)))
            onsets = [w[0] for w in timelines[story]]
            times = 10.0 + 2.0 * np.arange(n)
            block = _bold_signal(onsets, times, 2.0, b.n_voxels, b.rng)
            reps = [block + 0.3 * b.rng.standard_normal(block.shape).astype(np.float32)
                    for _ in range(max(1, n_rep - 1))]
            if n_rep > 1:  # n - 1 repeats and their mean (11 blocks for the 10 raw repeats)
                reps.append(np.mean(reps, axis=0, dtype=np.float64).astype(np.float32))
            with h5py.File(b.out(rel), "w") as f:
                f.create_dataset("resp", data=np.concatenate(reps, axis=0))
        bids_sub = f"sub-{subject}"
        for rel in b.tree["path"]:
            if not (rel.startswith(bids_sub + "/") and rel.endswith("_bold.nii.gz")):
                continue
            task = rel.split("task-")[1].split("_")[0]
            if task not in stories:
                continue
            n = respdict[task]
            onsets = [w[0] for w in timelines[task]]
            times = -10.0 + 2.0 * np.arange(n)
            write_nifti(b.out(rel), _bold_signal(onsets, times, 2.0, b.n_voxels, b.rng), 2.0)


def _narratives_events(b: _Builder) -> dict[str, Path]:
    """Copied events per task, to rebuild uncopied runs whose task has one distinct content."""
    by_task: dict[str, set[bytes]] = {}
    example: dict[str, Path] = {}
    for p in b.files.rglob("*_events.tsv"):
        task = p.name.split("task-")[1].split("_")[0]
        by_task.setdefault(task, set()).add(p.read_bytes())
        example[task] = p
    return {t: example[t] for t, contents in by_task.items() if len(contents) == 1}


def _build_narratives(b: _Builder) -> None:
    unique_events = _narratives_events(b)
    sidecars = {p.name.split("task-")[1].split("_")[0]: p for p in b.files.rglob("*_bold.json")}
    gentle_done: dict[str, list[tuple[float, float, str]]] = {}
    for rel in b.tree["path"]:
        if not rel.endswith("_bold.nii.gz") or "/func/" not in rel:
            continue
        subject = rel.split("/")[0].removeprefix("sub-")
        task = rel.split("task-")[1].split("_")[0]
        if subject not in b.subjects or (b.runs is not None and task not in b.runs):
            continue
        stem = rel[: -len("_bold.nii.gz")]
        ev_rel = stem + "_events.tsv"
        ev_path = b.dest / ev_rel
        if not ev_path.exists():
            if task not in unique_events:
                logger.info("miniature ds002345: skipping %s (its events.tsv was not copied and "
                            "task %r has several versions)", rel, task)
                continue
            shutil.copyfile(unique_events[task], b.out(ev_rel))
        events = pd.read_csv(ev_path, sep="\t")
        stims = [s for s in events["stim_file"] if isinstance(s, str) and s.endswith("_audio.wav")]
        stim = stims[0].removesuffix("_audio.wav")
        side_rel = stem + "_bold.json"
        if not (b.dest / side_rel).exists():
            meta = json.loads(sidecars[task].read_text())
            meta["RepetitionTime"] = 1.52 if stim == "milkywaysynonyms" else 1.5
            b.out(side_rel).write_text(json.dumps(meta, indent=2))
        tr = float(json.loads((b.dest / side_rel).read_text())["RepetitionTime"])
        end = float((events["onset"] + events["duration"]).max())
        n_vols = int(np.ceil((end + 13.0) / tr))
        story_rows = events[events["trial_type"] == "story"]
        offset = NARRATIVES_STORY_OFFSETS[stim]
        if stim not in gentle_done:
            dur = float(story_rows["duration"].sum())
            first = float(story_rows["onset"].iloc[0])
            if stim == "slumlordreach":  # two stories with music between them
                words = []
                for _, row in story_rows.iterrows():
                    a = offset + float(row["onset"]) - first
                    words += _words_timeline(b.rng, a + 0.5, a + float(row["duration"]) - 0.5)
            else:
                words = _words_timeline(b.rng, offset + 0.4, offset + dur - 0.5)
            gentle_done[stim] = words
            if stim not in NARRATIVES_NO_GENTLE:
                write_gentle(b.out(f"stimuli/gentle/{stim}/align.json"), words, b.rng)
        # audio clock -> this run's scanner clock
        shift = float(story_rows["onset"].iloc[0]) - offset
        onsets = [w[0] + shift for w in gentle_done[stim]]
        times = tr * np.arange(n_vols)
        data = _bold_signal(onsets, times, tr, b.n_voxels, b.rng)
        base = stem.replace(rel.split("/")[0] + "/func/", "")
        sub_dir = f"derivatives/afni-nosmooth/{rel.split('/')[0]}/func/"
        write_nifti(b.out(sub_dir + base + "_space-MNI152NLin2009cAsym_res-native_desc-clean_bold.nii.gz"),
                    data, tr)
        half = b.n_voxels // 2
        write_gifti(b.out(sub_dir + base + "_space-fsaverage6_hemi-L_desc-clean.func.gii"), data[:, :half])
        write_gifti(b.out(sub_dir + base + "_space-fsaverage6_hemi-R_desc-clean.func.gii"), data[:, half:])
        write_nifti(b.out(rel), data, tr)
        mask_rel = (f"derivatives/afni-smooth/tpl-MNI152NLin2009cAsym/"
                    f"tpl-MNI152NLin2009cAsym_res-{task}_desc-brain_mask.nii.gz")
        if task == "pieman" and not (b.dest / mask_rel).exists():
            # the task's brain mask of the release: all but the last quarter of the voxels
            import nibabel as nib

            keep = np.ones((b.n_voxels, 1, 1), dtype=np.uint8)
            keep[-(b.n_voxels // 4):] = 0
            nib.save(nib.Nifti1Image(keep, np.diag([3.0, 3.0, 3.0, 1.0])), str(b.out(mask_rel)))


def _lpp_language(label: str) -> str:
    return label[:2]


def _build_lpp(b: _Builder) -> None:
    sections = range(1, 10) if b.runs is None else [int(r) for r in b.runs]
    languages = sorted({_lpp_language(s) for s in b.subjects})
    timelines = {}
    for lang in languages:
        for k in range(1, 10):
            audio = LPP_AUDIO[lang][k - 1]
            words = _words_timeline(b.rng, 0.6, audio - 0.4, lang, rate=2.2)
            timelines[(lang, k)] = words
            if k in sections:
                write_textgrid(b.out(f"annotation/{lang}/lpp{lang}_section{k}.TextGrid"),
                               {"words": _tile(words, audio, "#")}, audio)
    templates = {}
    for p in b.files.rglob("*_bold.json"):
        lang = p.name.split("task-lpp")[1][:2]
        echo = p.name.split("echo-")[1][0]
        templates[(lang, echo)] = p
    tree = b.tree
    for subject in b.subjects:
        lang = _lpp_language(subject)
        sub = f"sub-{subject}"
        deriv = sorted(r for r in tree["path"] if r.startswith(f"derivatives/{sub}/") and r.endswith("_bold.nii.gz"))
        for k, rel in enumerate(deriv, start=1):
            if k not in sections:
                continue
            n = LPP_SCAN_PREPROC[lang][k - 1]
            onsets = [w[0] for w in timelines[(lang, k)]]
            write_nifti(b.out(rel), _bold_signal(onsets, 2.0 * np.arange(n), 2.0, b.n_voxels, b.rng), 2.0)
        raw = tree[tree["path"].str.startswith(f"{sub}/func/") & tree["path"].str.endswith("_bold.nii.gz")]
        runs = sorted({r.split("_run-")[1].split("_")[0] for r in raw["path"]})
        sizes = {run: int(raw[raw["path"].str.contains(f"_run-{run}_echo-1_")]["size"].iloc[0]) for run in runs}
        k = 0
        for run in runs:
            aborted = sizes[run] < LPP_ABORTED_BYTES
            if not aborted:
                k += 1
            for echo in ("1", "2", "3"):
                rel = f"{sub}/func/{sub}_task-lpp{lang}_run-{run}_echo-{echo}_bold.nii.gz"
                side = rel.replace(".nii.gz", ".json")
                if not (b.dest / side).exists():
                    shutil.copyfile(templates[(lang, echo)], b.out(side))
                if aborted:
                    n, onsets, start = 6, [], 0.0
                elif k in sections:
                    n = LPP_SCAN_RAW[lang][k - 1]
                    onsets = [w[0] for w in timelines[(lang, k)]]
                    start = -8.0 if lang == "EN" else 0.0
                else:
                    continue
                data = _bold_signal(onsets, start + 2.0 * np.arange(n), 2.0, b.n_voxels, b.rng)
                write_nifti(b.out(rel), data, 2.0)


def _kit_sensor_locs(names: Sequence[str]) -> np.ndarray:
    """Sensor ``loc`` vectors (n, 12) for KIT channel names: mne's 2-D ``KIT-AD`` layout put on a
    10 cm sphere (azimuthal projection, the layout's edge at 100 degrees from the vertex), the
    coil normal pointing out. An approximation of a KIT helmet, for synthetic recordings."""
    import mne

    lay = mne.channels.read_layout("KIT-AD")
    xy = lay.pos[:, :2] + lay.pos[:, 2:4] / 2
    xy = xy - xy.mean(axis=0)
    radius = np.linalg.norm(xy, axis=1).max()
    locs = np.zeros((len(names), 12))
    for i, name in enumerate(names):
        x, y = xy[lay.names.index(name)]
        theta, phi = np.deg2rad(100.0) * np.hypot(x, y) / radius, np.arctan2(y, x)
        normal = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
        ex = np.cross([0.0, 0.0, 1.0], normal) if theta > 1e-6 else np.array([1.0, 0.0, 0.0])
        ex /= np.linalg.norm(ex)
        locs[i] = np.concatenate([0.1 * normal + [0.0, 0.0, 0.04], ex, np.cross(normal, ex), normal])
    return locs


def _build_megmasc(b: _Builder) -> None:
    import mne

    tasks = ("0",) if b.runs is None else b.runs
    n_ch = max(2, min(b.n_voxels, 8))
    template_ch = pd.read_csv(b.files / "sub-01/ses-0/meg/sub-01_ses-0_task-0_channels.tsv",
                              sep="\t", encoding="utf-8-sig")
    template_meg = b.files / "sub-01/ses-0/meg/sub-01_ses-0_task-0_meg.json"
    for rel in b.tree["path"]:
        if not rel.endswith("_meg.con"):
            continue
        parts = rel.split("/")
        subject = parts[0].removeprefix("sub-")
        task = rel.split("task-")[1].split("_")[0]
        if subject not in b.subjects or task not in tasks:
            continue
        stem = rel[: -len("_meg.con")]
        ev = b.dest / (stem + "_events.tsv")
        if not ev.exists():
            logger.info("miniature nm000229: no events for %s; no recording written", rel)
            continue
        events = pd.read_csv(ev, sep="\t", usecols=["onset"], encoding="utf-8-sig")
        n_samp = int(np.ceil((float(events["onset"].max()) + 3.0) * 1000.0))
        onsets = np.asarray(events["onset"], float)
        impulses = np.zeros(n_samp)
        idx = np.clip((onsets * 1000).astype(int), 0, n_samp - 1)
        impulses[idx] = 1.0
        kernel = np.sin(np.linspace(0, np.pi, 200)) * 1e-13
        drive = np.convolve(impulses, kernel)[:n_samp]
        data = b.rng.standard_normal((n_ch, n_samp)) * 2e-14
        data[: n_ch // 2] += drive
        names = template_ch["name"].tolist()[:n_ch]
        info = mne.create_info(names, 1000.0, "mag")
        for ch, loc in zip(info["chs"], _kit_sensor_locs(names)):
            ch["loc"][:] = loc
        raw = mne.io.RawArray(data, info, verbose="error")
        raw.save(b.out(stem + "_meg.fif"), overwrite=True, verbose="error")
        ch = template_ch.iloc[:n_ch]
        ch.to_csv(b.out(stem + "_channels.tsv"), sep="\t", index=False)
        side = b.dest / (stem + "_meg.json")
        if not side.exists():
            shutil.copyfile(template_meg, b.out(stem + "_meg.json"))


_BUILDERS = {"ds003020": _build_lebel, "ds002345": _build_narratives, "ds003643": _build_lpp,
             "nm000229": _build_megmasc}


def make_miniature(
    dataset: str,
    dest: str | os.PathLike,
    *,
    subjects: Iterable[str] | None = None,
    runs: Iterable[str] | None = None,
    n_voxels: int = 16,
    placeholders: bool = False,
    random_state: Any = 0,
    layouts: str | os.PathLike | None = None,
) -> Path:
    """Materialise a miniature copy of a public data set from its real layout.

    Parameters
    ----------
    dataset : str
        ``"lebel2023"``/``"ds003020"``, ``"narratives"``/``"ds002345"``, ``"lpp"``/``"ds003643"``
        or ``"megmasc"``/``"nm000229"``.
    dest : path-like
        The folder in which ``<id>/`` is created (replaced if it exists).
    subjects : iterable of str | None
        Subjects that get synthetic brain data (labels without ``sub-``); default a small set
        covering the data set's pitfalls (:data:`DEFAULT_SUBJECTS`).
    runs : iterable of str | None
        What to synthesise per subject: stories (ds003020), tasks (ds002345), sections 1-9
        (ds003643) or task indices (nm000229); default :data:`DEFAULT_RUNS`.
    n_voxels : int
        Voxels (vertices; MEG channels, at most 8) per synthetic run.
    placeholders : bool
        Also create every other annexed path of the tree as an empty file, so that the whole
        folder structure is there (loaders refuse empty files with a clear error).
    random_state : int | numpy Generator | None
        Seed of the synthetic content.
    layouts : path-like | None
        The folder holding the layouts; default ``<data dir>/bids-layouts``.

    Returns
    -------
    root : Path
        ``dest/<id>``, a data set folder that the loaders accept as ``root``.
    """
    ds = dataset_id(dataset)
    src = layouts_dir(layouts) / ds
    if not (src / "tree.txt").exists():
        raise FileNotFoundError(
            f"no layout for {ds!r} under {str(src.parent)!r}: expected {str(src / 'tree.txt')!r}. "
            f"Set $NEUROENC_DATA to the folder holding '{LAYOUTS_DIRNAME}/'."
        )
    root = Path(dest) / ds
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    subs = DEFAULT_SUBJECTS[ds] if subjects is None else tuple(str(s).removeprefix("sub-") for s in subjects)
    sel_runs = DEFAULT_RUNS[ds] if runs is None else tuple(str(r) for r in runs)
    b = _Builder(ds, src, root, subs, sel_runs, n_voxels, _check_random_state(random_state), placeholders)
    b.copy_real()
    _BUILDERS[ds](b)
    b.finish()
    logger.info("Miniature %s written to %s (%d files)", ds, root, len(b.written))
    return root
