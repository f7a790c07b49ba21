"""The HDF5 feature cache: layout, reuse, content-hashed keys, interrupted and corrupt writes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from _features_helpers import one_torch_thread  # noqa: F401

import neuroenc.features.extract as extract_module
from neuroenc.features import FeatureExtractor, FeatureSet, extract_features, load_features
from neuroenc.features.cache import is_complete, read_feature_info
from neuroenc.features.extract import feature_cache_path
from neuroenc.features.featureset import save_features
from neuroenc.features.models import model_identity
from neuroenc.testing import tiny_gpt2, tiny_transcript

KW = dict(context_tokens=8, stride=4)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2(n_layer=3)


def test_cache_file_layout(tmp_path, gpt2):
    tr = tiny_transcript(25, name="story-1")
    fs = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    path = fs.attrs["path"]
    assert os.path.basename(path).startswith("tiny-gpt2_story-1_") and path.endswith(".h5")
    with h5py.File(path, "r") as f:
        assert [w.decode() for w in f["words"][()]] == list(tr.words)
        np.testing.assert_array_equal(f["onsets"][()], tr.onsets)
        np.testing.assert_array_equal(f["offsets"][()], tr.offsets)
        assert sorted(f["layers"].keys(), key=int) == ["0", "1", "2", "3"]
        assert f["layers/3"].dtype == np.float32 and f["layers/3"].shape == (25, 64)
        np.testing.assert_array_equal(f["context_start"][()], fs.attrs["context_start"])
        np.testing.assert_array_equal(f["context_len"][()], fs.attrs["context_len"])
        attrs = dict(f.attrs)
    assert attrs["complete"] and attrs["format"] == "neuroenc-features/1"
    assert attrs["model"] == "tiny-gpt2" and attrs["model_sha256"] == gpt2.sha256
    assert (attrs["context_tokens"], attrs["stride"], attrs["pooling"]) == (8, 4, "last")
    assert attrs["n_model_layers"] == 4 and attrs["transcript_sha256"] == tr.sha256()
    assert attrs["neuroenc_version"] and attrs["tokenizer"].endswith(":tiny-gpt2")
    assert attrs["intervention"] == "none" and attrs["run"] == "story-1"


def test_save_load_roundtrip(tmp_path, gpt2):
    fs = extract_features(tiny_transcript(20), gpt2, reference="midpoint", **KW)
    path = save_features(fs, tmp_path / "sub" / "f.h5")
    back = load_features(path)
    assert back.layer_indices == fs.layer_indices and back.words == fs.words
    assert (back.run, back.model, back.n_model_layers, back.reference) == ("tiny", "tiny-gpt2", 4, "midpoint")
    for layer in fs.layer_indices:
        np.testing.assert_array_equal(back[layer], fs[layer])
    np.testing.assert_array_equal(back.attrs["context_len"], fs.attrs["context_len"])
    assert back.attrs["cache_key"] == fs.attrs["cache_key"]
    two = load_features(path, layers=[3, 1])
    assert two.layer_indices == [1, 3]
    with pytest.raises(ValueError, match=r"has no layer\(s\) \[7\]; it holds layers \[0, 1, 2, 3\]"):
        load_features(path, layers=[7])
    with pytest.raises(FileNotFoundError, match="feature file not found"):
        load_features(tmp_path / "missing.h5")
    # FeatureSet's own save/load use the same format.
    fs.save(tmp_path / "g.h5")
    np.testing.assert_array_equal(FeatureSet.load(tmp_path / "g.h5", layers=[2])[2], fs[2])


def test_cache_is_reused_and_keys_follow_settings(tmp_path, gpt2, monkeypatch):
    tr = tiny_transcript(30)
    first = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    with monkeypatch.context() as m:
        m.setattr(extract_module, "run_plan", _fail)
        again = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
        # A subset of layers is read from the all-layers file.
        subset = extract_features(tr, gpt2, cache_dir=tmp_path, layers=[1, -1], **KW)
    assert again.attrs["path"] == first.attrs["path"]
    for layer in first.layer_indices:
        np.testing.assert_array_equal(again[layer], first[layer])
    assert subset.layer_indices == [1, 3]
    np.testing.assert_array_equal(subset[3], first[3])
    # Every setting that changes the features changes the file.
    paths = {first.attrs["path"]}
    for change in (dict(pooling="mean"), dict(stride=3), dict(context_tokens=9),
                   dict(policy="window"), dict(layers=[1])):
        paths.add(str(FeatureExtractor(gpt2, cache_dir=tmp_path, **{**KW, **change}).cache_path(tr)))
    paths.add(str(FeatureExtractor(gpt2, cache_dir=tmp_path, **KW).cache_path(tiny_transcript(31))))
    paths.add(str(FeatureExtractor(gpt2, cache_dir=tmp_path, **KW).cache_path(tr.rename("other"))))
    paths.add(str(FeatureExtractor(tiny_gpt2(n_layer=3, seed=1), cache_dir=tmp_path, **KW).cache_path(tr)))
    assert len(paths) == 9


def _fail(*args, **kwargs):
    raise AssertionError("features were recomputed instead of read from the cache")


def test_cache_path_without_loading_the_model(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    lm = tiny_gpt2(n_layer=2, path=folder)
    tr = tiny_transcript(15)
    assert model_identity(str(folder)) == lm.identity == f"sha256:{lm.sha256}"
    # For a local folder a revision is only a label: the weights' sha256 stays the identity.
    assert model_identity(str(folder), revision="v1") == lm.identity
    before = feature_cache_path(tmp_path / "cache", tr, str(folder), layers=[0.5], **KW)
    fs = extract_features(tr, str(folder), cache_dir=tmp_path / "cache", layers=[0.5], **KW)
    assert fs.attrs["path"] == str(before) and fs.layer_indices == [1]
    # The cached file is found again from the name alone: the model is not loaded.
    monkeypatch.setattr(extract_module, "load_model", _fail)
    monkeypatch.setattr(extract_module, "run_plan", _fail)
    again = extract_features(tr, str(folder), cache_dir=tmp_path / "cache", layers=[0.5], **KW)
    np.testing.assert_array_equal(again[1], fs[1])


_KILLED_WRITE = textwrap.dedent("""
    import os, signal, sys
    import neuroenc.features.cache as cache
    from neuroenc.features import extract_features
    from neuroenc.testing import tiny_gpt2, tiny_transcript

    written = []
    original = cache.write_layer

    def write_then_die(group, idx, data):
        original(group, idx, data)
        written.append(idx)
        if len(written) == 2:
            group.file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    cache.write_layer = write_then_die
    extract_features(tiny_transcript(25), tiny_gpt2(n_layer=3), cache_dir=sys.argv[1],
                     context_tokens=8, stride=4)
""")


def test_killed_write_leaves_no_file_read_as_complete(tmp_path, gpt2):
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_WRITE)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # killed by SIGKILL mid-write
    tr = tiny_transcript(25)
    ext = FeatureExtractor(gpt2, cache_dir=tmp_path / "cache", **KW)
    path = ext.cache_path(tr)
    leftovers = list((tmp_path / "cache").iterdir())
    assert not path.exists() and len(leftovers) == 1  # only the hidden temporary file
    assert leftovers[0].name.startswith(f".{path.name}.") and not is_complete(leftovers[0])
    fs = ext.transform(tr)  # recomputed, now complete
    assert is_complete(path) and fs.attrs["path"] == str(path)


def test_corrupt_or_partial_cache_file_is_recomputed(tmp_path, gpt2, caplog):
    tr = tiny_transcript(25)
    good = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    path = good.attrs["path"]
    data = open(path, "rb").read()
    # A truncated file under the final name (e.g. copied by hand, disk full).
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    assert not is_complete(path)
    with caplog.at_level("WARNING", logger="neuroenc"):
        fs = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    assert "incomplete or corrupt; recomputing" in caplog.text
    np.testing.assert_array_equal(fs[3], good[3])
    assert is_complete(path)
    # A file whose 'complete' flag was never set, or that lost a layer.
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False
    assert not is_complete(path)
    with pytest.raises(ValueError, match="is incomplete or corrupt"):
        load_features(path)
    extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    with h5py.File(path, "r+") as f:
        del f["layers/2"]
    assert not is_complete(path) and is_complete(path, layers=[0, 1])
    fs = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    assert is_complete(path)
    np.testing.assert_array_equal(fs[2], good[2])


def test_cache_hit_returns_the_requested_reference(tmp_path, gpt2, monkeypatch):
    """The reference is not part of the key: a cached file serves both, at the one asked for."""
    tr = tiny_transcript(20)
    onset = extract_features(tr, gpt2, cache_dir=tmp_path, reference="onset", **KW)
    assert onset.reference == "onset"
    monkeypatch.setattr(extract_module, "run_plan", _fail)
    mid = extract_features(tr, gpt2, cache_dir=tmp_path, reference="midpoint", **KW)
    assert mid.reference == "midpoint" and mid.attrs["path"] == onset.attrs["path"]
    np.testing.assert_allclose(mid.times, (tr.onsets + tr.offsets) / 2)
    np.testing.assert_array_equal(mid[2], onset[2])
    subset = extract_features(tr, gpt2, cache_dir=tmp_path, reference="midpoint", layers=[1], **KW)
    assert subset.reference == "midpoint" and subset.layer_indices == [1]
    again = extract_features(tr, gpt2, cache_dir=tmp_path, reference="onset", **KW)
    np.testing.assert_array_equal(again.times, tr.onsets)


def test_cache_lookup_reads_no_features(tmp_path, gpt2, monkeypatch):
    """Finding a cached file reads attributes and shapes only; a hit reads the asked layers only."""
    tr = tiny_transcript(20)
    full = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    read = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        read.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ext = FeatureExtractor(gpt2, cache_dir=tmp_path, layers=[1, -1], **KW)
    assert str(ext.cached_path(tr)) == full.attrs["path"]  # the all-layers file serves [1, 3]
    assert FeatureExtractor(gpt2, cache_dir=tmp_path, layers=[1], **{**KW, "stride": 3}).cached_path(tr) is None
    assert read == []
    monkeypatch.setattr(extract_module, "run_plan", _fail)
    fs = ext.transform(tr)
    assert fs.layer_indices == [1, 3]
    np.testing.assert_array_equal(fs[3], full[3])
    assert sorted(n for n in read if n.startswith("/layers/")) == ["/layers/1", "/layers/3"]


def test_read_feature_info(tmp_path, gpt2):
    tr = tiny_transcript(20, name="story-2")
    fs = extract_features(tr, gpt2, cache_dir=tmp_path, layers=[0, 2], **KW)
    info = read_feature_info(fs.attrs["path"])
    assert info["layer_indices"] == [0, 2] and info["n_words"] == 20 and info["n_model_layers"] == 4
    assert (info["model"], info["run"], info["reference"]) == ("tiny-gpt2", "story-2", "onset")
    assert info["cache_key"] == fs.attrs["cache_key"] and info["path"] == fs.attrs["path"]
    with pytest.raises(FileNotFoundError, match="feature file not found"):
        read_feature_info(tmp_path / "missing.h5")
    with h5py.File(fs.attrs["path"], "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(ValueError, match="is incomplete or corrupt"):
        read_feature_info(fs.attrs["path"])


def test_load_features_layer_grammar(tmp_path, gpt2):
    """load_features takes the layer grammar of extraction: negative indices, relative depths."""
    path = save_features(extract_features(tiny_transcript(15), gpt2, **KW), tmp_path / "f.h5")
    assert load_features(path, layers=[-1, 0.5]).layer_indices == [2, 3]
    assert load_features(path, layers="all").layer_indices == [0, 1, 2, 3]
    assert load_features(path, layers=1.0).layer_indices == [3]
    with pytest.raises(ValueError, match="Invalid value for 'layers': 'middle'"):
        load_features(path, layers="middle")
    with pytest.raises(ValueError, match="Layer -5 is out of range for 'tiny-gpt2', which has 4 hidden states"):
        load_features(path, layers=[-5])
    with pytest.raises(ValueError, match=r"Relative depth must be in \[0, 1\]"):
        load_features(path, layers=[1.5])
