"""Real data: the Alice group (Brennan et al. 2016), language-model layers vs a low-level baseline.

The group-mean ROI time courses of the 27 usable subjects are predicted from the hidden states of
all-MiniLM-L6-v2 (the smaller offline model; the same code with ``"smollm2-135m"`` gives the
table in the encoding notes), aligned to the 2 s TR grid that starts at 20 s, with FIR delays
1-4, in 5 contiguous blocks with an 8-TR gap (delays 4 + Lanczos half-window 3 + 1). The baseline
is the authors' word-rate and sound-power regressors under the same folds.
"""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401

from neuroenc.align import make_fmri_design
from neuroenc.encoding import fit_encoding
from neuroenc.encoding.stats import noise_ceiling_intersubject
from neuroenc.responses import Response


@pytest.mark.slow
def test_alice_group_layers_beat_word_rate_and_sound_power(data_dir):
    from neuroenc.datasets import load_alice
    from neuroenc.features import extract_features, load_model
    from neuroenc.features.models import ModelNotAvailableError

    try:
        lm = load_model("minilm-l6")
    except ModelNotAvailableError as err:  # pragma: no cover
        pytest.skip(str(err))
    ds = load_alice(data_dir)
    assert len(ds.responses) == 27 and "s33" in ds.excluded
    subjects = sorted(ds.responses)
    rois = ds.info["rois"]
    data = np.stack([ds.responses[s]["alice"].data for s in subjects])
    data = (data - data.mean(1, keepdims=True)) / data.std(1, keepdims=True)
    group = Response(data.mean(0), tr=2.0, start=20.0, names=rois, run="alice", subject="group")
    confounds = ds.confounds[subjects[0]]["alice"]
    confounds = confounds.copy(np.stack([ds.confounds[s]["alice"].data for s in subjects]).mean(0))

    features = extract_features(ds.transcripts["alice"], lm, context_tokens=64, stride=32)
    design = make_fmri_design(features, group, delays=(1, 2, 3, 4))
    nuisance = design.nuisance({"alice": confounds}, columns=["word_rate", "sound_power"])
    res = fit_encoding(design, nuisance=nuisance, noise_ceiling=noise_ceiling_intersubject(data, "group"),
                       n_permutations=1000, random_state=0)

    assert res.targets == list(rois) and res.settings["gap_used"] == 8 and len(res.settings["cv_folds"]) == 5
    lptl = rois.index("LPTL")
    best = int(np.nanargmax(res.r[:, lptl]))
    assert res.r[best, lptl] > res.baseline["r"][lptl] + 0.1
    assert res.pvalues[best, lptl] < 0.01 and res.qvalues[best, lptl] < 0.05
    # still significant when corrected for choosing the best of the 7 layers
    assert res.pvalues_best[lptl] < 0.01 and res.qvalues_best[lptl] < 0.05
    assert res.r[best, lptl] < res.noise_ceiling[lptl]
    # the language model beats the low-level baseline in most ROIs, at its best layer
    assert np.mean(np.nanmax(res.r, 0) > res.baseline["r"]) >= 4 / 6
