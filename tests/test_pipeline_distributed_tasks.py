"""The worker side, without a cluster: when a results file counts as done, merging parts back
into a subject's file, and the worker cache (one model load whatever the threads)."""
from __future__ import annotations

import pickle
import threading

import h5py
import numpy as np
import pytest

from neuroenc.encoding import EncodingResults
from neuroenc.pipeline.config import config_from_dict
from neuroenc.pipeline.dask_worker import WorkerCache, extract_task, merge_task
from neuroenc.pipeline.tasks import merge_parts, results_current

KEY = "0123456789ab"


def _results(rng, layers=(0, 1, 2, 3), n_targets=6, wall=1.0) -> EncodingResults:
    shape = (len(layers), n_targets)
    pvalues = rng.uniform(0.001, 1, shape)
    return EncodingResults(
        r=rng.uniform(-0.2, 0.6, shape), r2=rng.uniform(-0.1, 0.3, shape), layers=list(layers),
        targets=[f"t{i}" for i in range(n_targets)], pvalues=pvalues,
        alphas=10.0 ** rng.integers(0, 7, shape), fold_r=rng.uniform(-0.2, 0.6, (5, *shape)),
        fold_r2=rng.uniform(-0.1, 0.3, (5, *shape)),
        baseline={"r": np.linspace(0, 0.5, n_targets), "pvalues": np.linspace(0.01, 0.5, n_targets)},
        noise_ceiling=np.linspace(0.3, 0.8, n_targets), settings={"alphas": [1.0, 10.0]},
        provenance={"subject": "s1", "results_key": KEY, "n_model_layers": 4, "wall_seconds": wall},
    )


def _part(full: EncodingResults, layers: list[int], cols: slice, wall: float) -> EncodingResults:
    rows = [list(full.layers).index(i) for i in layers]
    base = {k: v[cols] for k, v in full.baseline.items()}
    return EncodingResults(
        r=full.r[rows][:, cols], r2=full.r2[rows][:, cols], layers=layers, targets=full.targets[cols],
        pvalues=full.pvalues[rows][:, cols],
        alphas=full.alphas[rows][:, cols], fold_r=full.fold_r[:, rows][:, :, cols],
        fold_r2=full.fold_r2[:, rows][:, :, cols], baseline=base,
        noise_ceiling=full.noise_ceiling[cols], settings=dict(full.settings),
        provenance={**full.provenance, "wall_seconds": wall},
    )


def test_results_current(rng, tmp_path):
    path = tmp_path / "sub-s1.h5"
    assert not results_current(path, KEY)  # missing
    _results(rng).save(path)
    assert results_current(path, KEY)
    assert not results_current(path, "another-hash")  # made with other settings
    path.write_bytes(path.read_bytes()[:200])  # truncated
    assert not results_current(path, KEY)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f.attrs["format"] = "something-else/1"
    assert not results_current(tmp_path / "foreign.h5", KEY)
    _results(rng).save(path)
    with h5py.File(path, "r+") as f:  # scores that do not match the layers and targets
        del f["scores/r"]
        f["scores/r"] = np.zeros((2, 2))
    assert not results_current(path, KEY)


def test_merge_task_rebuilds_the_whole_subject(rng, tmp_path):
    """2 layer bands x 2 target chunks, merged: the whole subject's scores, q-values recomputed."""
    full = _results(rng)
    grid = []
    for b, band in enumerate([[0, 1], [2, 3]]):
        row = []
        for c, cols in enumerate([slice(0, 4), slice(4, 6)]):
            path = tmp_path / "parts" / f"sub-s1_b{b}_c{c}.h5"
            _part(full, band, cols, wall=1.0 + b + 2 * c).save(path)
            row.append(str(path))
        grid.append(row)
    config = config_from_dict({"dataset": {"loader": "alice"}})
    out = tmp_path / "sub-s1.h5"
    record = merge_task(config, "s1", grid, str(out), "another-key")
    assert record["computed"] and record["n_parts"] == 4
    merged = EncodingResults.load(out)
    for name in ("r", "r2", "pvalues", "alphas", "fold_r", "qvalues"):
        np.testing.assert_allclose(getattr(merged, name), getattr(full, name), err_msg=name)
    np.testing.assert_allclose(merged.noise_ceiling, full.noise_ceiling)
    assert merged.targets == full.targets and list(merged.layers) == [0, 1, 2, 3]
    assert merged.provenance["wall_seconds"] == pytest.approx(1 + 2 + 3 + 4)
    assert not any((tmp_path / "parts").iterdir())  # parts deleted
    assert merged.provenance["results_key"] == KEY  # the parts' (that is, the run's) key
    # a retried merge whose first attempt finished finds the file done (the parts are gone)
    assert merge_task(config, "s1", grid, str(out), KEY)["computed"] is False


def test_merge_parts_sums_the_parts_wall_time(rng, tmp_path):
    """Parts written by fit_subject differ in their wall time: merging must not refuse them."""
    full = _results(rng)
    paths = [_part(full, [0, 1, 2, 3], cols, wall=w).save(tmp_path / f"p{w}.h5")
             for cols, w in ((slice(0, 3), 2.5), (slice(3, 6), 4.0))]
    merged = EncodingResults.load(merge_parts(paths, tmp_path / "merged.h5"))
    np.testing.assert_allclose(merged.r, full.r)
    assert merged.provenance["wall_seconds"] == pytest.approx(6.5)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    from neuroenc.testing import tiny_gpt2

    root = tmp_path_factory.mktemp("tiny")
    tiny_gpt2(n_layer=1, path=root / "model")
    return config_from_dict({"dataset": {"loader": "alice"}, "output": {"dir": str(root / "out")},
                             "model": {"name": str(root / "model"), "context_tokens": 8, "stride": 4,
                                       "device": "cpu", "dtype": "float32"}})


def test_worker_cache_loads_a_model_once(tiny_config):
    cache = WorkerCache()
    cache.setup()
    ex = cache.extractor(tiny_config)
    assert cache.extractor(tiny_config) is ex
    threads = [threading.Thread(target=cache.load_model, args=(ex,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.model_loads == 1 and hasattr(ex, "model_")
    other = config_from_dict({**tiny_config.to_dict(), "model": {**tiny_config.to_dict()["model"],
                                                                 "context_tokens": 12}})
    assert cache.extractor(other) is not ex
    assert len(cache._extractors) == 1  # max_models=1: the first model was dropped
    assert isinstance(pickle.loads(pickle.dumps(cache)), WorkerCache)  # travels to workers
    cache.teardown()
    assert not cache._extractors


def test_extract_task_outside_a_worker(tiny_config):
    from neuroenc.testing import tiny_transcript

    transcript = tiny_transcript(30, name="story")
    first = extract_task(tiny_config, transcript)
    assert first["computed"] and first["worker"] == "local" and first["run"] == "story"
    again = extract_task(tiny_config, transcript, run="story-label")
    assert not again["computed"] and again["output"] == first["output"] and again["run"] == "story-label"
