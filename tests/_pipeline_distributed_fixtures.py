"""Helpers for the distributed-pipeline tests: a small, fast Alice config and a loader that fails
once on a Dask worker (importable by worker processes: spawned workers inherit ``sys.path``)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

ALICE = Path(__file__).resolve().parents[1] / "analyses" / "alice_layers.yaml"
SUBJECTS = ["s18", "s22", "s23"]  # three subjects: noise ceilings are computed (and chunked)
COMPARED = ("r", "r2", "pvalues", "alphas")


def alice_overrides(model_dir: Path, out: Path, data_dir: Path, **extra: Any) -> dict[str, Any]:
    """The Alice demo config made small: a tiny GPT-2 (3 hidden states), 3 subjects + group,
    short context, 8 penalties, 100 permutations, no report."""
    overrides = {
        "dataset.args": {"resolution": "10mm", "data_dir": str(data_dir), "download": False},
        "dataset.subjects": SUBJECTS,
        "model.name": str(model_dir),
        "model.context_tokens": 16,
        "model.stride": 8,
        "model.device": "cpu",
        "model.dtype": "float32",
        "encoding.alphas": {"logspace": [0, 7, 8]},
        "encoding.n_permutations": 100,
        "output.dir": str(out),
        "output.report": None,
    }
    overrides.update(extra)
    return overrides


@contextlib.contextmanager
def one_thread():
    """BLAS and torch on one thread, as on a Dask worker (nanny sets OMP_NUM_THREADS=1), so that
    float32 fits give the same bits in this process and on workers."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def load_alice_fail_once(flag: str, **kwargs: Any):
    """``load_alice``, but the first call on a Dask worker while ``flag`` exists removes it and
    raises (a transient failure, e.g. a file system hiccup)."""
    from neuroenc.datasets import load_alice

    try:
        from distributed import get_worker

        get_worker()
        on_worker = True
    except ValueError:
        on_worker = False
    if on_worker:
        try:
            os.unlink(flag)
        except FileNotFoundError:
            pass
        else:
            raise OSError(f"simulated transient failure (flag {flag})")
    return load_alice(**kwargs)


def max_abs_diff(a: Any, b: Any) -> dict[str, float]:
    """Largest absolute difference of the compared arrays of two EncodingResults."""
    out = {}
    for name in COMPARED:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.shape == y.shape, (name, x.shape, y.shape)
            assert np.array_equal(np.isnan(x), np.isnan(y)), name
            out[name] = float(np.nanmax(np.abs(x - y))) if np.isfinite(x).any() else 0.0
    return out
