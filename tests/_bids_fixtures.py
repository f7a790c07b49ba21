"""Miniature copies of the four public data sets, built once per test session from the real layouts.

Import the fixtures into a test module (``from _bids_fixtures import mini_lebel``); they skip
when the shared layouts (``$NEUROENC_DATA/bids-layouts``) are absent.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from neuroenc.datasets.miniature import LAYOUTS_DIRNAME, make_miniature


def _layouts(data_dir: Path) -> Path:
    path = data_dir / LAYOUTS_DIRNAME
    if not (path / "README.md").exists():
        pytest.skip(f"real BIDS layouts not found under {path}")
    return path


@pytest.fixture(scope="session")
def layouts(data_dir) -> Path:
    """The folder holding the real layouts (skips without it)."""
    return _layouts(data_dir)


def _build(tmp_path_factory, layouts: Path, name: str, **kwargs) -> Path:
    dest = tmp_path_factory.mktemp(f"mini-{name}")
    return make_miniature(name, dest, layouts=layouts, **kwargs)


@pytest.fixture(scope="session")
def mini_lebel(tmp_path_factory, layouts) -> Path:
    """ds003020: UTS01, UTS02; adollshouse, inamoment (chronological TextGrid), wheretheressmoke."""
    return _build(tmp_path_factory, layouts, "lebel2023")


@pytest.fixture(scope="session")
def mini_narratives(tmp_path_factory, layouts) -> Path:
    """ds002345: pieman, milkyway (3 versions, 3 onsets, TR 1.52), slumlordreach, tunnel..."""
    return _build(tmp_path_factory, layouts, "narratives")


@pytest.fixture(scope="session")
def mini_lpp(tmp_path_factory, layouts) -> Path:
    """ds003643: EN057, EN059 (11 raw runs), CN032 (10 raw runs), FR001; all 9 sections."""
    return _build(tmp_path_factory, layouts, "lpp")


@pytest.fixture(scope="session")
def mini_megmasc(tmp_path_factory, layouts) -> Path:
    """nm000229: sub-01 (flat events) and sub-12 (dict events); recordings of task 0."""
    return _build(tmp_path_factory, layouts, "megmasc", n_voxels=4)


def copy_tree(src: Path, dest: Path) -> Path:
    """A private copy of a miniature (for tests that break a file)."""
    out = dest / src.name
    shutil.copytree(src, out)
    return out


def hrf_word_rate(onsets: np.ndarray, times: np.ndarray, tr: float) -> np.ndarray:
    """The word count per TR convolved with the miniature's HRF (known-answer checks)."""
    from neuroenc.datasets.miniature import _hrf

    counts = np.histogram(onsets, bins=np.append(times, times[-1] + tr))[0].astype(float)
    return np.convolve(counts, _hrf(tr))[: len(times)]


def best_lag(response: np.ndarray, onsets: np.ndarray, times: np.ndarray, tr: float,
             lags: range = range(-6, 7)) -> int:
    """The shift (in TRs) of the transcript that best explains the driven voxels' mean."""
    signal = response.mean(axis=1)
    scores = []
    for lag in lags:
        pred = hrf_word_rate(onsets + lag * tr, times, tr)
        scores.append(np.corrcoef(pred, signal)[0, 1])
    return list(lags)[int(np.nanargmax(scores))]


def flatten_nifti(path: Path) -> np.ndarray:
    """A NIfTI's data as (n_volumes, n_voxels), voxels in C order (as the loaders number them)."""
    import nibabel as nib

    vol = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    return vol.reshape(-1, vol.shape[-1]).T


def make_voxel_constant(path: Path, voxel: int, value: float = 100.0) -> None:
    """Overwrite a 4-D NIfTI so that flat voxel ``voxel`` is ``value`` in every volume."""
    import nibabel as nib

    img = nib.load(str(path))
    vol = np.asarray(img.dataobj, dtype=np.float32).copy()
    flat = vol.reshape(-1, vol.shape[-1])
    flat[voxel] = value
    nib.save(nib.Nifti1Image(flat.reshape(vol.shape), img.affine, img.header), str(path))
