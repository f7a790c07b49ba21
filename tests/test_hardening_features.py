"""Issue 18, items 10, 11 and 14: feature files' strings carry a checksum; a full disk during a
feature write is a clean error (exit code 1, no crash at exit); unwritable output and cache
folders are found before the extraction or the fit; plan_stimuli tokenises once for all
stimuli; the feature cache keys the versions of the libraries that compute the features."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from _features_helpers import one_torch_thread  # noqa: F401
from _stimuli_fixtures import SENTENCES

from neuroenc.cli import main
from neuroenc.features import (
    FeatureExtractor,
    FeatureSet,
    StimulusExtractor,
    StimulusFeatures,
    load_features,
    load_stimulus_features,
)
from neuroenc.features.cache import FeatureFileError
from neuroenc.features.context import FULL, ContextPlan, plan_contexts
from neuroenc.features.featureset import save_features
from neuroenc.features.stimulus_features import save_stimulus_features
from neuroenc.features.stimulus_plan import plan_stimuli
from neuroenc.features.tokens import TokenAlignment, TokenMappingError, align_tokens
from neuroenc.stimuli import StimulusSet
from neuroenc.testing import TINY_TEXT, tiny_bert, tiny_gpt2, tiny_llama, tiny_transcript

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


@pytest.fixture(scope="module")
def models():
    return {"gpt2": tiny_gpt2(n_layer=2), "bert": tiny_bert(), "llama": tiny_llama()}


def _featureset(n=5, words=None):
    rng = np.random.default_rng(0)
    words = words or [f"w{i}" for i in range(n)]
    return FeatureSet({i: rng.standard_normal((len(words), 4)).astype(np.float32) for i in range(3)},
                      np.arange(len(words), dtype=float), words=words, run="story", model="m")


def _stimulus_features():
    rng = np.random.default_rng(1)
    attrs = {"context_text": ["", "The cat sat ", "", ""], "context_start": [0, 0, 0, 0],
             "context_len": [3, 7, 3, 4]}
    return StimulusFeatures({0: rng.standard_normal((4, 3)), 1: rng.standard_normal((4, 3))},
                            ["a", "b", "c", "d"], SENTENCES[:4], ["g1", "g1", "g2", "g2"], name="s", model="m",
                            attrs=attrs)


# ---------------------------------------------------------------------- item 10: string checksums
def test_a_word_edited_in_place_is_refused(tmp_path):
    path = save_features(_featureset(), tmp_path / "f.h5")
    assert load_features(path).words == ["w0", "w1", "w2", "w3", "w4"]  # unmodified: loads
    with h5py.File(path, "r+") as f:
        f["words"][2] = "edited"
    with pytest.raises(FeatureFileError, match=rf"Feature file '{path}' is corrupt: dataset 'words' does not "
                                               r"match its checksum.*Delete the file and extract the features"):
        load_features(path)


@pytest.mark.parametrize("name", ["stimulus_ids", "texts", "groups", "context_text"])
def test_stimulus_strings_edited_in_place_are_refused(tmp_path, name):
    path = save_stimulus_features(_stimulus_features(), tmp_path / "s.h5")
    loaded = load_stimulus_features(path)
    assert loaded.ids == ["a", "b", "c", "d"] and loaded.groups == ["g1", "g1", "g2", "g2"]
    assert loaded.texts == SENTENCES[:4] and loaded.attrs["context_text"][1] == "The cat sat "
    with h5py.File(path, "r+") as f:
        f[name][1] = "x"
    with pytest.raises(FeatureFileError, match=rf"dataset '{name}' does not match its checksum"):
        load_stimulus_features(path)


def test_files_written_before_string_checksums_still_load(tmp_path, caplog):
    path = save_features(_featureset(), tmp_path / "f.h5")
    with h5py.File(path, "r+") as f:
        assert f["words"].attrs["sha256"]  # written with one
        del f["words"].attrs["sha256"]
    with caplog.at_level(logging.DEBUG, logger="neuroenc"):
        fs = load_features(path)
    assert fs.words == ["w0", "w1", "w2", "w3", "w4"]
    assert "dataset 'words' has no checksum" in caplog.text


def test_the_cache_recomputes_a_file_whose_words_were_edited(tmp_path, models, caplog):
    tr = tiny_transcript(12)
    ext = FeatureExtractor(models["gpt2"], cache_dir=tmp_path, context_tokens=8, stride=4)
    first = ext.transform(tr)
    with h5py.File(ext.cache_path(tr), "r+") as f:
        f["words"][0] = "forged"
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        again = ext.transform(tr)
    assert again.words == list(tr.words) and "does not match its checksum" in caplog.text
    np.testing.assert_allclose(again[2], first[2], rtol=1e-5, atol=1e-6)
    assert load_features(ext.cache_path(tr)).words == list(tr.words)  # rewritten


# ---------------------------------------------------------------------- item 11: a full disk
@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_during_extract_is_a_clean_error(tmp_path, full_disk):
    model = tmp_path / "model"
    tiny_gpt2(n_layer=2, path=model)
    story = tmp_path / "story.txt"
    words = TINY_TEXT.split()
    story.write_text(" ".join(words[i % len(words)] for i in range(1500)))
    out = full_disk / "features.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "neuroenc.cli", "-q", "extract", "--model", str(model),
                           "--transcript", str(story), "--context-tokens", "32", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]  # not 139 (a crash at exit)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("neuroenc extract: error: "), done.stderr[-2000:]
    assert "no space left on device" in errors[0].lower() and str(out) in errors[0]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert os.listdir(full_disk) == []  # the temporary file was removed


def test_no_space_is_found_before_any_data_is_written(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "f.h5"
    with pytest.raises(OSError, match=rf"No space left on device to write feature file '{out}'.*Free disk "
                                      "space there, or write the features to another folder") as info:
        save_features(_featureset(), out)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space left on device to write feature file"):
        save_stimulus_features(_stimulus_features(), tmp_path / "s.h5")
    assert os.listdir(tmp_path) == []


def test_the_reserved_disk_space_is_given_back(tmp_path, monkeypatch):
    """The file is as large as HDF5 makes it, not as large as the disk space reserved for it."""
    import neuroenc.features.cache as cache_module

    fs = _featureset(words=[f"word{i}" for i in range(300)])
    path = save_features(fs, tmp_path / "f.h5")
    back = load_features(path)
    assert back.words == fs.words
    np.testing.assert_array_equal(back[2], fs[2])
    monkeypatch.setattr(cache_module, "_reserve", lambda name, nbytes: None)
    unreserved = save_features(fs, tmp_path / "g.h5")
    assert path.stat().st_size == unreserved.stat().st_size


# ---------------------------------------------------------------------- item 14: late failures
@pytest.fixture
def not_a_folder(tmp_path):
    """A path whose parent is a regular file: no one, root included, can write there."""
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a file, not a folder")
    return blocker / "sub"


def _must_not_run(*args, **kwargs):
    raise AssertionError("the extraction or fit ran before the output folder was checked")


def test_extract_checks_out_and_cache_dir_before_extracting(tmp_path, not_a_folder, monkeypatch, capsys):
    model = tmp_path / "model"
    tiny_gpt2(n_layer=2, path=model)
    (tmp_path / "story.txt").write_text(" ".join(TINY_TEXT.split()[:20]))
    monkeypatch.setattr(FeatureExtractor, "transform", _must_not_run)
    monkeypatch.setattr(StimulusExtractor, "transform", _must_not_run)
    base = ["extract", "--model", str(model), "--transcript", str(tmp_path / "story.txt")]
    assert main([*base, "--out", str(not_a_folder / "features.h5")]) == 1
    err = capsys.readouterr().err
    assert f"--out '{not_a_folder}' cannot be made: '{not_a_folder.parent}' is a file, not a folder" in err
    assert main([*base, "--cache-dir", str(not_a_folder)]) == 1
    assert "--cache-dir" in capsys.readouterr().err
    (tmp_path / "s.csv").write_text("id,sentence\na,The cat sat.\n")
    assert main(["extract", "--model", str(model), "--stimuli", str(tmp_path / "s.csv"), "--text-column",
                 "sentence", "--out", str(not_a_folder / "s.h5")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_fit_checks_out_before_reading_or_fitting(tmp_path, not_a_folder, capsys):
    features = save_features(_featureset(), tmp_path / "f.h5")
    argv = ["fit", "--features", str(features), "--responses", str(tmp_path / "missing.csv"), "--tr", "2",
            "--out", str(not_a_folder / "results.h5")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--out '{not_a_folder}' cannot be made" in err and "is a file, not a folder" in err


def test_run_checks_output_and_cache_folders_before_loading(tmp_path, not_a_folder, monkeypatch, capsys):
    import neuroenc.pipeline.distributed as runner  # the one runner reads the data set

    monkeypatch.setattr(runner, "load_dataset", _must_not_run)
    config = str(ANALYSES / "alice_layers.yaml")
    assert main(["run", config, "--out", str(tmp_path / "out"), "--set", f"output.cache_dir={not_a_folder}"]) == 1
    assert f"output.cache_dir '{not_a_folder}' cannot be made" in capsys.readouterr().err
    assert main(["run", config, "--out", str(not_a_folder)]) == 1
    assert f"output.dir '{not_a_folder}' cannot be made" in capsys.readouterr().err


def test_check_writable_writes_a_probe(tmp_path, monkeypatch):
    import tempfile

    from neuroenc.pipeline.preflight import check_writable

    check_writable(tmp_path / "new" / "folder", "--out")  # a missing folder under a writable one
    assert os.listdir(tmp_path) == []  # nothing made, the probe removed

    def refused(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(ValueError, match=rf"--out '{tmp_path}' is not writable: writing a file in '{tmp_path}' "
                                         r"fails \(Read-only file system\); give --out a folder you can write"):
        check_writable(tmp_path, "--out")


# ---------------------------------------------------------------------- plan_stimuli
def _reference_plan(stimuli, lm, context, context_tokens, stride, n_special):
    """The per-unit algorithm plan_stimuli replaced: tokenise and plan each unit on its own.
    Returns the fields of the plan, or the message of the error it raises."""
    units = [[i] for i in range(len(stimuli))] if context == "none" else \
        [list(u) for u in stimuli.group_indices()]
    n = len(stimuli)
    out = {k: np.zeros(n, dtype=np.int64) for k in ("stim_start", "stim_stop", "last_word", "ctx_start",
                                                    "ctx_len", "word_seq")}
    ctx_text, ids, seq_start, seq_stop = [""] * n, [], [], []
    offset = n_seq = 0
    try:
        for unit in units:
            words_of = [stimuli.texts[i].split() for i in unit]
            words = [w for ws in words_of for w in ws]
            al = align_tokens(words, lm.tokenizer)
            first = np.cumsum([0] + [len(ws) for ws in words_of])[:-1]
            last = first + np.asarray([len(ws) for ws in words_of]) - 1
            a, b, lw = al.word_start[first], al.word_stop[last], al.word_start[last]
            char_start = [len(" ".join(words[:f])) + (1 if f else 0) for f in first]
            if context == "none":
                plan = ContextPlan(a.copy(), b.copy(), np.zeros(1, dtype=np.int64), a.copy(), b - a)
            else:
                spans = TokenAlignment(al.input_ids, al.offsets, al.token_word, a, b, al.text)
                if context_tokens == FULL and lm.kind == "causal":
                    plan = plan_contexts(spans, "strided", FULL, 1, 0, "causal")
                else:
                    policy = "strided" if lm.kind == "causal" else "window"
                    plan = plan_contexts(spans, policy, context_tokens, stride or 1, 0, lm.kind)
            longest = int(plan.seq_len.max()) + n_special
            if lm.max_positions is not None and longest > lm.max_positions:
                return f"too long: {longest}"
            for k, i in enumerate(unit):
                cs = int(plan.context_start[k])
                out["stim_start"][i], out["stim_stop"][i] = a[k] + offset, b[k] + offset
                out["last_word"][i] = lw[k] + offset
                out["ctx_start"][i], out["ctx_len"][i] = cs, int(plan.context_len[k])
                out["word_seq"][i] = int(plan.word_seq[k]) + n_seq
                if cs < a[k]:
                    ctx_text[i] = al.text[int(al.offsets[cs, 0]):char_start[k]]
            ids.append(al.input_ids)
            seq_start.append(plan.seq_start + offset)
            seq_stop.append(plan.seq_stop + offset)
            offset += al.n_tokens
            n_seq += plan.n_sequences
    except TokenMappingError as err:
        return str(err)
    out.update(input_ids=np.concatenate(ids), seq_start=np.concatenate(seq_start),
               seq_stop=np.concatenate(seq_stop), ctx_text=ctx_text)
    return out


def _plan_fields(stimuli, lm, *args):
    try:
        t = plan_stimuli(stimuli, lm, *args)
    except TokenMappingError as err:
        return str(err)
    except ValueError as err:
        assert "needs a forward sequence of" in str(err)
        return f"too long: {int(str(err).split('sequence of ')[1].split()[0])}"
    return {"stim_start": t.stim_start, "stim_stop": t.stim_stop, "last_word": t.last_word_start,
            "ctx_start": t.context_start, "ctx_len": t.context_len, "word_seq": t.plan.word_seq,
            "input_ids": t.input_ids, "seq_start": t.plan.seq_start, "seq_stop": t.plan.seq_stop,
            "ctx_text": t.context_text, "plan_ctx": (t.plan.context_start, t.plan.context_len)}


def _fixture_stimuli():
    """Sentences of unequal length (runs of spaces, punctuation, accents) in groups that
    interleave, so that reading order differs from the order of the rows."""
    rng = np.random.default_rng(3)
    texts = [SENTENCES[i % len(SENTENCES)] + ("  café,  naïve  words!" if i % 5 == 0 else "") for i in range(40)]
    groups = [f"g{int(rng.integers(0, 6))}" for _ in texts]
    return StimulusSet([f"s{i}" for i in range(40)], texts, groups)


@pytest.mark.parametrize("model", ["gpt2", "bert", "llama"])
@pytest.mark.parametrize("context, context_tokens, stride", [
    ("none", None, None), ("group", FULL, None), ("group", 6, 2), ("group", 0, 1), ("group", 11, None),
    ("group", 9, 4)])
@pytest.mark.parametrize("n_special", [0, 2])
def test_plan_stimuli_equals_the_per_unit_reference(models, model, context, context_tokens, stride, n_special):
    lm = models[model]
    stimuli = _fixture_stimuli()
    for s in (stimuli, StimulusSet(stimuli.ids[:6], stimuli.texts[:6])):  # and one group of all stimuli
        got = _plan_fields(s, lm, context, context_tokens, stride, n_special)
        want = _reference_plan(s, lm, context, context_tokens, stride, n_special)
        if isinstance(want, str) or isinstance(got, str):
            assert got == want
            continue
        for key, value in want.items():
            if key == "ctx_text":
                assert got[key] == value
            else:
                np.testing.assert_array_equal(got[key], value, err_msg=key)
        np.testing.assert_array_equal(got["plan_ctx"][0], want["ctx_start"])
        np.testing.assert_array_equal(got["plan_ctx"][1], want["ctx_len"])


def test_plan_stimuli_errors_match_the_reference(models):
    lm = models["bert"]  # 128 positions; its normaliser drops control characters
    long = " ".join(["word"] * 70)
    s = StimulusSet(["a", "b", "c"], ["short one", long, long], ["g", "h", "h"])
    with pytest.raises(ValueError, match=r"group 'h' needs a forward sequence of \d+ positions.*at most 128"):
        plan_stimuli(s, lm, "group", FULL, None, 2)
    with pytest.raises(ValueError, match=r"stimulus 'b' needs a forward sequence of \d+ positions.*shorten it"):
        plan_stimuli(StimulusSet(["a", "b"], ["ok", " ".join(["word"] * 75)]), lm, "none", None, None, 2)
    bad = StimulusSet(["a", "b"], ["fine words", "a \u200b b"])  # a word the normaliser drops
    with pytest.raises(TokenMappingError) as err:
        plan_stimuli(bad, lm)
    assert str(err.value) == _reference_plan(bad, lm, "none", None, None, 0)


class _CountingTokenizer:
    """A tokenizer that counts its calls."""

    def __init__(self, tokenizer):
        self._tokenizer, self.calls = tokenizer, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


@pytest.mark.parametrize("context", ["none", "group"])
def test_plan_stimuli_tokenises_all_stimuli_in_one_call(models, monkeypatch, context):
    """No per-stimulus tokenizer call (the constant that made 100k stimuli take 71 s)."""
    lm = models["gpt2"]
    counting = _CountingTokenizer(lm.tokenizer)
    monkeypatch.setattr(lm, "tokenizer", counting)
    plan_stimuli(_fixture_stimuli(), lm, context, FULL if context == "group" else None)
    assert counting.calls == 1


# ---------------------------------------------------------------------- library versions in the key
def test_library_versions_enter_the_cache_key_and_provenance(tmp_path, models, monkeypatch, caplog):
    from importlib.metadata import version

    import neuroenc.features.extract as extract_module

    lm = models["gpt2"]
    tr = tiny_transcript(10)
    ext = FeatureExtractor(lm, cache_dir=tmp_path, context_tokens=8, stride=4)
    settings = ext._settings(tr, ext.check_params())
    expected = {name: version(name) for name in ("torch", "transformers", "tokenizers")}
    assert settings["library_versions"] == expected
    fs = ext.transform(tr)
    assert fs.attrs["library_versions"] == expected
    assert load_features(ext.cache_path(tr)).attrs["library_versions"] == expected
    with caplog.at_level(logging.INFO, logger="neuroenc"):  # the same versions: the cache serves
        FeatureExtractor(lm, cache_dir=tmp_path, context_tokens=8, stride=4, verbose=True).transform(tr)
    assert "Reusing cached features" in caplog.text
    stim = StimulusSet(["a", "b"], SENTENCES[:2])
    stim_path = StimulusExtractor(lm, cache_dir=tmp_path).cache_path(stim)
    path = ext.cache_path(tr)

    real = extract_module._installed_version
    monkeypatch.setattr(extract_module, "_installed_version",
                        lambda name: "99.0" if name == "transformers" else real(name))
    upgraded = FeatureExtractor(lm, cache_dir=tmp_path, context_tokens=8, stride=4)
    assert upgraded.cache_path(tr) != path and upgraded.cached_path(tr) is None
    again = upgraded.transform(tr)  # recomputed, into a file of its own
    assert again.attrs["library_versions"]["transformers"] == "99.0"
    assert again.attrs["path"] == str(upgraded.cache_path(tr))
    assert StimulusExtractor(lm, cache_dir=tmp_path).cache_path(stim) != stim_path


def test_the_cli_error_of_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    """`neuroenc extract --out` on a full disk: one line, exit code 1."""
    model = tmp_path / "model"
    tiny_gpt2(n_layer=2, path=model)
    (tmp_path / "story.txt").write_text(" ".join(TINY_TEXT.split()[:20]))

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / f"{uuid.uuid4().hex}.h5"
    assert main(["-q", "extract", "--model", str(model), "--transcript", str(tmp_path / "story.txt"),
                 "--context-tokens", "8", "--out", str(out)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("neuroenc extract: error: [Errno 28] No space left on device "
                                                     "to write feature file")
    assert str(out) in errors[0] and not out.exists()
