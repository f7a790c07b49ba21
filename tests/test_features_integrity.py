"""Feature-cache identity and integrity: tokenizer files in a model's identity, the stored
cache key checked against the file name, per-dataset checksums, and runs of different
settings refused together."""
from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest
from _features_helpers import one_torch_thread  # noqa: F401

import neuroenc.features.cache as cache_module
import neuroenc.features.extract as extract_module
from neuroenc.align import make_fmri_design, make_meg_design
from neuroenc.features import FeatureExtractor, FeatureSet, extract_features, load_features
from neuroenc.features.cache import FeatureFileError, is_complete
from neuroenc.features.featureset import check_compatible_features, save_features
from neuroenc.features.models import model_identity
from neuroenc.responses import Response
from neuroenc.testing import tiny_gpt2, tiny_tokenizer, tiny_transcript

KW = dict(context_tokens=8, stride=4)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2(n_layer=2)


class _Counter:
    """Counts calls of run_plan (a computation, not a cache hit)."""

    def __init__(self, monkeypatch):
        self.n = 0
        original = extract_module.run_plan

        def counted(*args, **kwargs):
            self.n += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(extract_module, "run_plan", counted)


# ---------------------------------------------------------------------- model identity
def test_tokenizer_files_are_part_of_a_local_models_identity(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    tiny_gpt2(n_layer=1, path=folder)
    tr = tiny_transcript(20)
    cache = tmp_path / "cache"
    before = model_identity(str(folder))
    first = extract_features(tr, str(folder), cache_dir=cache, **KW)
    # Another tokenizer (a smaller vocabulary) saved over the old one, weights unchanged.
    tiny_tokenizer("bpe", vocab_size=300).save_pretrained(folder)
    after = model_identity(str(folder))
    assert after != before
    counter = _Counter(monkeypatch)
    second = extract_features(tr, str(folder), cache_dir=cache, **KW)
    assert counter.n == 1 and second.attrs["path"] != first.attrs["path"]
    assert second.attrs["model_identity"] == after and first.attrs["model_identity"] == before
    assert second.attrs["n_tokens"] != first.attrs["n_tokens"]
    # Each tokenizer file counts, the small ones too.
    for name in ("tokenizer.json", "tokenizer_config.json"):
        path = folder / name
        text = path.read_text()
        path.write_text(text + "\n")
        changed = model_identity(str(folder))
        assert changed != after
        path.write_text(text)
        assert model_identity(str(folder)) == after


def test_an_in_memory_models_identity_covers_its_tokenizer(gpt2):
    from neuroenc.features.models import LoadedModel

    other = LoadedModel.from_objects(gpt2.model, tiny_tokenizer("bpe", vocab_size=300), name="tiny-gpt2")
    same = LoadedModel.from_objects(gpt2.model, tiny_tokenizer("bpe"), name="tiny-gpt2")
    assert other.identity != gpt2.identity == same.identity


# ---------------------------------------------------------------------- stored cache key
def test_a_cache_file_under_another_keys_name_is_not_returned(tmp_path, gpt2, monkeypatch, caplog):
    tr = tiny_transcript(30)
    a = extract_features(tr, gpt2, cache_dir=tmp_path, context_tokens=8)
    b_path = FeatureExtractor(gpt2, cache_dir=tmp_path, context_tokens=9).cache_path(tr)
    shutil.copyfile(a.attrs["path"], b_path)
    counter = _Counter(monkeypatch)
    assert FeatureExtractor(gpt2, cache_dir=tmp_path, context_tokens=9).cached_path(tr) is None
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        b = extract_features(tr, gpt2, cache_dir=tmp_path, context_tokens=9)
    assert counter.n == 1 and b.attrs["path"] == str(b_path)
    assert f"store cache_key '{a.attrs['cache_key']}', not the '{b.attrs['cache_key']}'" in caplog.text
    assert b.attrs["context_tokens"] == 9 and not np.array_equal(a[2], b[2])
    # The recomputed file replaced the copy, and is reused from now on.
    assert load_features(b_path).attrs["cache_key"] == b.attrs["cache_key"]
    extract_features(tr, gpt2, cache_dir=tmp_path, context_tokens=9)
    assert counter.n == 1


# ---------------------------------------------------------------------- checksums
def _zero_middle_of(path, dataset, n_bytes=64 * 1024):
    """Overwrite ``n_bytes`` with zeros in the middle of ``dataset``'s data in the file."""
    with h5py.File(path, "r") as f:
        dset = f[dataset]
        assert dset.fletcher32
        chunks = [dset.id.get_chunk_info(i) for i in range(dset.id.get_num_chunks())]
    lo = min(c.byte_offset for c in chunks)
    hi = max(c.byte_offset + c.size for c in chunks)
    assert hi - lo > n_bytes
    start = (lo + hi - n_bytes) // 2
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(b"\0" * n_bytes)


def test_a_corrupted_feature_file_is_refused(tmp_path, rng):
    onsets = np.arange(400) * 0.3
    fs = FeatureSet({i: rng.standard_normal((400, 96)).astype(np.float32) for i in range(3)}, onsets,
                    run="story", model="m")
    path = save_features(fs, tmp_path / "f.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["checksums"] == "fletcher32"
        assert all(f[name].fletcher32 for name in ("onsets", "offsets", "layers/0", "layers/1", "layers/2"))
    np.testing.assert_array_equal(load_features(path)[1], fs[1])
    _zero_middle_of(path, "layers/1")
    assert is_complete(path)  # attributes and shapes are intact: only reading finds it
    with pytest.raises(FeatureFileError, match=(
            rf"Feature file '{path}' is corrupt: dataset 'layers/1' cannot be read or fails its "
            r"checksum .*Delete the file and extract the features again")):
        load_features(path)
    # The other layers are still readable.
    np.testing.assert_array_equal(load_features(path, layers=[0, 2])[2], fs[2])


def test_a_corrupted_cache_entry_is_recomputed(tmp_path, monkeypatch, caplog):
    lm = tiny_gpt2(n_layer=2, n_embd=128)
    tr = tiny_transcript(200)
    first = extract_features(tr, lm, cache_dir=tmp_path, **KW)
    path = first.attrs["path"]
    _zero_middle_of(path, "layers/2")
    counter = _Counter(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        again = extract_features(tr, lm, cache_dir=tmp_path, **KW)
    assert counter.n == 1 and again.attrs["path"] == path
    assert f"Feature file '{path}' is corrupt: dataset 'layers/2'" in caplog.text and "Recomputing" in caplog.text
    for layer in first.layer_indices:
        np.testing.assert_array_equal(again[layer], first[layer])
    np.testing.assert_array_equal(load_features(path)[2], first[2])  # the file is whole again


def test_cache_entries_without_checksums_are_recomputed(tmp_path, gpt2, monkeypatch, caplog):
    """Files written before checksums existed are read by load_features (unverified), but the
    cache recomputes them."""
    tr = tiny_transcript(20)
    original = cache_module.write_layer
    monkeypatch.setattr(cache_module, "write_layer",
                        lambda group, idx, data: group.create_dataset(str(int(idx)), data=data))
    old = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    monkeypatch.setattr(cache_module, "write_layer", original)
    path = old.attrs["path"]
    assert is_complete(path) and not is_complete(path, checksums=True)
    np.testing.assert_array_equal(load_features(path)[1], old[1])
    counter = _Counter(monkeypatch)
    with caplog.at_level(logging.INFO, logger="neuroenc"):
        new = extract_features(tr, gpt2, cache_dir=tmp_path, **KW)
    assert counter.n == 1 and "written without checksums" in caplog.text
    assert is_complete(new.attrs["path"], checksums=True)


# ---------------------------------------------------------------------- mixed settings
@pytest.fixture(scope="module")
def runs(gpt2):
    a, b = tiny_transcript(40, name="a"), tiny_transcript(40, name="b", start=1.0)
    return a, b


def _responses(features, n_trs=12):
    rng = np.random.default_rng(0)
    return {run: Response(rng.standard_normal((n_trs, 2)), tr=2.0, start=0.0, run=run, subject="s")
            for run in features}


@pytest.mark.parametrize("change,field,mine,theirs", [
    (dict(context_tokens=9), "context_tokens", "9", "8"),
    (dict(context_tokens="full", stride=None), "context_tokens", "'full'", "8"),
    (dict(pooling="mean"), "pooling", "'mean'", "'last'"),
    (dict(stride=3), "stride", "3", "4"),
    (dict(prepend_bos=False), "prefix_ids", r"\[\]", r"\[0\]"),
    (dict(last_layer="pre-norm"), "last_layer", "'pre-norm'", "'normed'"),
    (dict(intervention="skip:1"), "intervention", r"\{.*\}", "None"),
])
def test_runs_with_different_settings_are_refused(gpt2, runs, change, field, mine, theirs):
    a = extract_features(runs[0], gpt2, **KW)
    b = extract_features(runs[1], gpt2, **{**KW, **change})
    features = {"a": a, "b": b}
    hint = r" \(set by prepend_bos\)" if field == "prefix_ids" else ""
    with pytest.raises(ValueError, match=rf"features for run 'b' were made with {field}{hint}={mine} but those "
                                         rf"for run 'a' with {field}={theirs}; one design needs every run's "
                                         r"features from the same model and extraction settings"):
        check_compatible_features(features)
    with pytest.raises(ValueError, match=rf"features for run 'b' were made with {field}{hint}="):
        make_fmri_design(features, _responses(features), layers=1)
    # Same settings: accepted.
    same = extract_features(runs[1], gpt2, **KW)
    check_compatible_features([a, same])


def test_runs_from_different_models_are_refused(gpt2, runs, tmp_path):
    other = tiny_gpt2(n_layer=2, seed=1)  # same name and shape, other weights
    a = extract_features(runs[0], gpt2, **KW)
    b = extract_features(runs[1], other, **KW)
    with pytest.raises(ValueError, match=rf"run 'b' were made with model_identity='{other.identity}' but "
                                         rf"those for run 'a' with model_identity='{gpt2.identity}'"):
        check_compatible_features({"a": a, "b": b})
    # Also when read back from files, and at the MEG design's boundary.
    fa, fb = load_features(save_features(a, tmp_path / "a.h5")), load_features(save_features(b, tmp_path / "b.h5"))
    with pytest.raises(ValueError, match="model_identity="):
        make_meg_design({"a": fa, "b": fb}, {r: Response(np.zeros((3000, 2)), sfreq=100.0, start=0.0, run=r,
                                                         subject="s") for r in ("a", "b")}, layers=1)
    # Files from before model_identity was recorded are told apart by their weights' sha256.
    for fs in (fa, fb):
        fs.attrs.pop("model_identity")
    with pytest.raises(ValueError, match="model_sha256="):
        check_compatible_features([fa, fb])


def test_hand_made_feature_sets_need_no_provenance(rng):
    onsets = np.arange(10) * 0.5
    a = FeatureSet({1: rng.standard_normal((10, 3))}, onsets, run="a", model="m")
    b = FeatureSet({1: rng.standard_normal((10, 3))}, onsets, run="b", model="m")
    check_compatible_features({"a": a, "b": b})
    c = FeatureSet({1: rng.standard_normal((10, 3))}, onsets, run="c", model="m", reference="midpoint")
    with pytest.raises(ValueError, match="run 'c' were made with reference='midpoint' but those for run 'a' "
                                         "with reference='onset'"):
        check_compatible_features([a, c])
