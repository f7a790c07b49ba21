"""Brain-Score language's own ``linear_pearsonr`` metric on arrays, for the parity test of
:mod:`neuroenc.encoding.brainscore_linear`.

Imported when ``brainscore_language`` is importable; else run as a script by an interpreter
that has it (``brainscore-language`` pins numpy<2 and cannot share neuroenc's environment):
``python _brainscore_reference.py in.npz out.npz``.
"""
import sys

import numpy as np


def their_metric(X, Y, ids, neuroids, ceiling=None):
    """Score, per-split x per-neuroid raw values (neuroids in the given order) and, with a
    ceiling, the ceiling-normalised score, from brainscore_language itself."""
    from brainscore_core.metrics import Score
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_language.metrics.linear_predictivity.metric import linear_pearsonr
    from brainscore_language.utils.ceiling import ceiling_normalize

    ids = [str(i) for i in ids]
    # two coordinates per dimension, as in their own tests (brainio stacks them into a MultiIndex)
    source = NeuroidAssembly(X, coords={"stimulus_id": ("presentation", ids), "passage_label": ("presentation", ids),
                                        "neuroid_id": ("neuroid", [f"f{j}" for j in range(X.shape[1])]),
                                        "region": ("neuroid", ["model"] * X.shape[1])},
                             dims=["presentation", "neuroid"])
    target = NeuroidAssembly(Y, coords={"stimulus_id": ("presentation", ids), "passage_label": ("presentation", ids),
                                        "neuroid_id": ("neuroid", [str(n) for n in neuroids]),
                                        "region": ("neuroid", ["language"] * len(neuroids))},
                             dims=["presentation", "neuroid"])
    metric = linear_pearsonr()  # what load_metric("linear_pearsonr") returns (its registry entry)
    score = metric(source, target)
    raw = score.attrs["raw"]
    per = np.stack([[float(raw.sel(split=s).isel(neuroid=[i for i, v in enumerate(raw["neuroid_id"].values)
                                                          if v == str(n)][0]))
                     for n in neuroids] for s in sorted(raw["split"].values)])
    normalized = np.nan
    if ceiling is not None:
        normalized = float(ceiling_normalize(score, Score(ceiling)))
    return float(score), per, normalized


if __name__ == "__main__":
    data = np.load(sys.argv[1], allow_pickle=False)
    out = {}
    for layer in [k[2:] for k in data.files if k.startswith("X_")]:
        s, per, norm = their_metric(data[f"X_{layer}"], data["Y"], data["ids"], data["neuroids"],
                                    float(data["ceiling"]))
        out[f"score_{layer}"], out[f"raw_{layer}"], out[f"norm_{layer}"] = s, per, norm
    np.savez(sys.argv[2], **out)
