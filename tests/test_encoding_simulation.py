"""Acceptance simulation: responses made from one layer of real extracted language-model features.

Features of three Natural Stories transcripts from all-MiniLM-L6-v2 (a trained 6-block BERT, so
layers correlate as real ones do: ~0.8 between neighbours, ~0.3 between the ends, on the TR
grid), through the real alignment (Lanczos to a 2 s TR grid, z-scoring, FIR delays 1-4).
Responses are layer k of that design times random weights, plus as much noise.
"""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, responses_from  # noqa: F401

from neuroenc.align import make_fmri_design
from neuroenc.encoding import BandedLayerModel, LayerSweep
from neuroenc.encoding.banded import make_bands
from neuroenc.responses import Response


@pytest.fixture(scope="module")
def design(data_dir):
    from neuroenc.datasets import load_naturalstories
    from neuroenc.features import extract_features, load_model
    from neuroenc.features.models import ModelNotAvailableError

    try:
        lm = load_model("minilm-l6")
    except ModelNotAvailableError as err:  # pragma: no cover - the model ships with the test deps
        pytest.skip(str(err))
    stories = load_naturalstories(data_dir)
    features, responses = {}, {}
    for run in ("story-1", "story-2", "story-3"):
        transcript = stories.transcripts[run]
        features[run] = extract_features(transcript, lm, context_tokens=64, stride=32)
        n_tr = int(np.ceil(transcript.offsets.max() / 2.0)) + 1
        responses[run] = Response(np.arange(n_tr, dtype=float)[:, None], tr=2.0, start=0.0, run=run)
    return make_fmri_design(features, responses)


@pytest.mark.slow
def test_generating_layer_wins_with_extracted_features(design):
    k = 3
    X = design.X(k).astype(np.float64)
    neighbours = np.corrcoef(design.X(k - 1)[:, :384].ravel(), design.X(k)[:, :384].ravel())[0, 1]
    assert 0.5 < neighbours < 0.95  # realistic cross-layer correlation
    Y = responses_from(np.random.default_rng(0), X, n_targets=30, snr=1.0)

    sweep = LayerSweep(alphas=np.logspace(0, 7, 15), n_permutations=200, random_state=0,
                       refit=False).fit(design, Y)
    assert len(sweep.cv_splits_) == 3  # leave-one-story-out
    assert sweep.forms_[k] == "kernel"  # 4 x 384 delayed features > ~300 training TRs
    assert np.mean(sweep.best_layer_ == k) >= 0.7
    assert np.argmax(np.nanmean(sweep.r_, 1)) == k
    assert np.mean(sweep.pvalues_[k] < 0.05) >= 0.9

    bands = make_bands(design, [k - 2, k, k + 2])
    banded = BandedLayerModel(alphas=np.logspace(0, 7, 8), n_iter=8, random_state=0, refit=False)
    banded.fit(bands, Y, groups=design.groups)
    assert banded.form_ == "kernel"
    assert np.argmax(banded.split_r2_.mean(1)) == 1
    assert np.mean(np.argmax(banded.split_r2_, 0) == 1) >= 0.8
