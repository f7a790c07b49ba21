"""Write ``default_features_09b4b6d.npz``: features of tiny random models extracted with
neuroenc at commit 09b4b6d, before ``prepend_bos``, ``last_layer`` and ``context_tokens="full"``
existed. ``tests/test_features_options.py`` checks that the default values of these options,
with ``prepend_bos=False`` (the default then; ``"auto"`` since issue 19), still give these
features.

Run from a checkout of that commit (it uses only the API of the time)::

    git archive 09b4b6d neuroenc | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/make_default_features.py tests/data/default_features_09b4b6d.npz
"""
import sys

import numpy as np
import torch
import transformers

from neuroenc.features import extract_features
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_llama, tiny_transcript

#: name -> (builder, keyword arguments); small enough for a fixture of a few hundred KiB.
MODELS = {
    "gpt2": (tiny_gpt2, dict(n_layer=2, n_embd=32)),
    "llama": (tiny_llama, dict(n_layer=2, hidden_size=32)),  # its tokenizer adds a BOS
    "llama_nobos": (tiny_llama, dict(n_layer=2, hidden_size=32, bos=False)),
    "bert": (tiny_bert, dict(n_layer=2, hidden_size=32)),
}
SETTINGS = {
    "strided": dict(context_tokens=12, stride=5, policy="strided"),
    "window": dict(context_tokens=7, policy="window"),
}
N_WORDS = 40


def main(out: str) -> None:
    torch.set_num_threads(1)
    arrays = {"torch": np.array(torch.__version__), "transformers": np.array(transformers.__version__)}
    tr = tiny_transcript(N_WORDS)
    for name, (builder, kwargs) in MODELS.items():
        lm = builder(**kwargs)
        arrays[f"{name}/sha256"] = np.array(lm.sha256)
        for setting, kw in SETTINGS.items():
            fs = extract_features(tr, lm, **kw)
            for i in fs.layer_indices:
                arrays[f"{name}/{setting}/{i}"] = fs[i]
            arrays[f"{name}/{setting}/context_start"] = fs.attrs["context_start"]
            arrays[f"{name}/{setting}/context_len"] = fs.attrs["context_len"]
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
