"""Per-word surprisal of a story from the feature extractor's own forward passes (issue 20 item 1):
equal to word_surprisal and to a direct computation, cached, refused where it cannot be right,
and fitted as a baseline by the pipeline."""
from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from _features_helpers import one_torch_thread  # noqa: F401

from neuroenc.features import FeatureExtractor, extract_features, load_features, word_surprisal
from neuroenc.features.context import plan_contexts
from neuroenc.features.featureset import save_features
from neuroenc.features.models import sequence_prefix
from neuroenc.features.surprisal import SurprisalAccumulator
from neuroenc.features.tokens import align_tokens
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_transcript

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2()


@pytest.fixture(scope="module")
def transcript():
    return tiny_transcript(70)


def _direct_surprisal(lm, transcript, starts, prepend_bos="auto"):
    """Each word's surprisal (bits) from its own forward pass over the tokens ``[starts[w],
    word_stop[w])`` after the prefix, through the model's head: no batching, no plan."""
    al = align_tokens(transcript.words, lm.tokenizer)
    prefix = sequence_prefix(lm, prepend_bos)
    out = np.zeros(al.n_words)
    for w in range(al.n_words):
        s, a, b = int(starts[w]), int(al.word_start[w]), int(al.word_stop[w])
        ids = prefix + al.input_ids[s:b].tolist()
        with torch.inference_mode():
            logits = lm.head(lm.model(torch.tensor([ids])).last_hidden_state)[0]
        logp = torch.log_softmax(logits.double(), -1).numpy()
        pos = len(prefix) + np.arange(a, b) - s  # in-sequence positions of the word's tokens
        out[w] = np.nan if pos[0] == 0 else -logp[pos - 1, al.input_ids[a:b]].sum() / np.log(2)
    return out


@pytest.mark.parametrize("context_tokens, stride", [(12, 5), ("full", None)])
@pytest.mark.parametrize("prepend_bos", ["auto", False])
def test_surprisal_equals_word_surprisal(gpt2, transcript, context_tokens, stride, prepend_bos, caplog):
    ext = FeatureExtractor(gpt2, layers=[0, 4], context_tokens=context_tokens, stride=stride,
                           prepend_bos=prepend_bos, batch_size=3, surprisal=True)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        fs = ext.transform(transcript)
    got = fs.attrs["surprisal"]
    ref = word_surprisal(transcript, gpt2, context_tokens=context_tokens, stride=stride, prepend_bos=prepend_bos)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    assert got.shape == (len(transcript),) and np.all(got[1:] > 0)
    # the same numbers as a direct pass over each word's recorded context
    direct = _direct_surprisal(gpt2, transcript, fs.attrs["context_start"], prepend_bos)
    np.testing.assert_allclose(got, direct, atol=1e-4, rtol=0)
    # the features are those of an extraction without surprisal
    plain = FeatureExtractor(gpt2, layers=[0, 4], context_tokens=context_tokens, stride=stride,
                             prepend_bos=prepend_bos).transform(transcript)
    np.testing.assert_allclose(fs[4], plain[4], atol=1e-5)
    assert "surprisal" not in plain.attrs and "surprisal_source" in fs.attrs
    if prepend_bos is False:  # the first word has nothing before it: NaN, said in a warning
        assert np.isnan(got[0]) and np.isfinite(got[1:]).all()
        message = ("1 word(s) of run 'tiny' start a forward sequence with no token before them (first: word 0 "
                   "'Alice'); their surprisal is NaN: pass prepend_bos='auto' or True.")
        assert message in fs.attrs["warnings"] and message in caplog.text
    else:
        assert np.isfinite(got).all() and not any("surprisal is NaN" in w for w in fs.attrs["warnings"])


def test_surprisal_depends_on_the_context(gpt2, transcript):
    """Strided chunks, the whole run and per-word windows give each word the context its features
    saw: equal where the contexts are equal, different where they are not."""
    full = extract_features(transcript, gpt2, layers=[0], context_tokens="full", surprisal=True).attrs["surprisal"]
    strided = extract_features(transcript, gpt2, layers=[0], context_tokens=6, stride=3,
                               surprisal=True).attrs["surprisal"]
    window = FeatureExtractor(gpt2, layers=[0], context_tokens=6, policy="window", surprisal=True).transform(
        transcript)
    # a window of C tokens is a stride of 1, and a direct pass over each word's window
    np.testing.assert_allclose(window.attrs["surprisal"], word_surprisal(transcript, gpt2, 6, stride=1), atol=1e-5)
    direct = _direct_surprisal(gpt2, transcript, window.attrs["context_start"])
    np.testing.assert_allclose(window.attrs["surprisal"], direct, atol=1e-4)
    al = align_tokens(transcript.words, gpt2.tokenizer)
    first_chunk = al.word_start < 6 + 3  # read from the first chunk: all the run before them
    np.testing.assert_allclose(strided[first_chunk], full[first_chunk], atol=1e-5)
    assert np.abs(strided - full).max() > 0.1 and np.abs(window.attrs["surprisal"] - strided).max() > 0.1
    # a long enough window is the whole run
    wide = FeatureExtractor(gpt2, layers=[0], context_tokens=al.n_tokens, policy="window", surprisal=True)
    np.testing.assert_allclose(wide.transform(transcript).attrs["surprisal"], full, atol=1e-5)
    # under a structural intervention, the intervened model's surprisal
    skipped = extract_features(transcript, gpt2, layers=[0], context_tokens="full", intervention="skip:1-2",
                               surprisal=True).attrs["surprisal"]
    np.testing.assert_allclose(skipped, word_surprisal(transcript, gpt2, intervention="skip:1-2"), atol=1e-5)
    assert np.abs(skipped - full).max() > 0.1


def test_surprisal_cache_round_trip(gpt2, transcript, tmp_path):
    ext = FeatureExtractor(gpt2, layers=[1, 2], context_tokens=12, surprisal=True, cache_dir=tmp_path)
    fs = ext.transform(transcript)
    path = ext.cached_path(transcript)
    with h5py.File(path, "r") as f:
        stored = f["surprisal"][()]
        assert f["surprisal"].fletcher32 and f.attrs["surprisal_source"].startswith("-log2 p(word | context)")
    np.testing.assert_array_equal(stored, fs.attrs["surprisal"])
    back = load_features(path)
    np.testing.assert_array_equal(back.attrs["surprisal"], fs.attrs["surprisal"])
    # a second extractor reads it back from the file (not recomputed)
    mtime = path.stat().st_mtime_ns
    again = FeatureExtractor(gpt2, layers=[1, 2], context_tokens=12, surprisal=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.transform(transcript).attrs["surprisal"], fs.attrs["surprisal"])
    assert path.stat().st_mtime_ns == mtime
    # a file without surprisal is not reused for a run that needs it: another key, computed
    plain = FeatureExtractor(gpt2, layers=[3], context_tokens=12, cache_dir=tmp_path)
    plain_fs = plain.transform(transcript)
    assert "surprisal" not in plain_fs.attrs and "surprisal" not in load_features(plain.cached_path(transcript)).attrs
    needs = FeatureExtractor(gpt2, layers=[3], context_tokens=12, surprisal=True, cache_dir=tmp_path)
    assert needs.cache_path(transcript) != plain.cache_path(transcript)
    assert needs.cached_path(transcript) is None
    np.testing.assert_allclose(needs.transform(transcript).attrs["surprisal"], fs.attrs["surprisal"], atol=1e-6)
    # a file with surprisal serves a run without it (the same features)
    without = FeatureExtractor(gpt2, layers=[1, 2], context_tokens=12, cache_dir=tmp_path)
    assert without.cached_path(transcript) == path
    # NaN (no BOS) survives the round trip; a wrong number of values is refused
    nobos = extract_features(transcript, gpt2, layers=[0], context_tokens=12, prepend_bos=False, surprisal=True)
    back = load_features(save_features(nobos, tmp_path / "nobos.h5"))
    assert np.isnan(back.attrs["surprisal"][0])
    np.testing.assert_array_equal(back.attrs["surprisal"][1:], nobos.attrs["surprisal"][1:])
    nobos.attrs["surprisal"] = nobos.attrs["surprisal"][:-1]
    with pytest.raises(ValueError, match=r"attrs\['surprisal'\] has 69 values but there are 70 words"):
        save_features(nobos, tmp_path / "bad.h5")


def test_surprisal_bad_settings(gpt2, transcript):
    bert = tiny_bert()
    with pytest.raises(ValueError, match=r"surprisal=True needs a causal language model, but 'tiny-bert' is "
                                         r"masked.*Pass surprisal=False \(or drop surprisal from "
                                         r"encoding.baseline\), or use a causal model"):
        FeatureExtractor(bert, layers=[0], context_tokens=8, surprisal=True).transform(tiny_transcript(10))
    with pytest.raises(ValueError, match=r"surprisal=True reads each word's tokens from its forward pass, but "
                                         r"intervention 'freeze-context:1' with policy='window' .*Pass "
                                         r"policy='strided' .*surprisal=False"):
        FeatureExtractor(gpt2, context_tokens=8, policy="window", intervention="freeze-context:1",
                         surprisal=True).check_params()
    with pytest.raises(ValueError, match=r"surprisal must be True or False; got 'yes' \(str\)"):
        FeatureExtractor(gpt2, surprisal="yes").check_params()


def test_a_retried_batch_counts_once(gpt2, transcript):
    """The engine retries a batch that ran out of memory with fewer sequences: a sequence whose
    surprisal was added before the failure is not added again."""
    al = align_tokens(transcript.words, gpt2.tokenizer)
    plan = plan_contexts(al, "strided", 12, 6, 0, "causal")
    prefix = sequence_prefix(gpt2, "auto")

    def run(batches):
        acc = SurprisalAccumulator(gpt2, al.input_ids, plan, al.word_start, al.word_stop, len(prefix))
        for seqs in batches:
            ids = [prefix + al.input_ids[plan.seq_start[s]:plan.seq_stop[s]].tolist() for s in seqs]
            with torch.inference_mode():
                acc.add(np.asarray(seqs), gpt2.hidden_states(torch.tensor(ids))[-1], np.zeros(len(seqs), int))
        return acc.result()

    once = run([[s] for s in range(plan.n_sequences)])
    twice = run([[s] for s in range(plan.n_sequences)] + [[0], [1]])
    np.testing.assert_array_equal(twice, once)


def test_pipeline_fits_a_surprisal_baseline_on_a_story(tmp_path, data_dir, caplog):
    """A story config whose baseline lists surprisal extracts it with the features and fits it."""
    from neuroenc.encoding import EncodingResults
    from neuroenc.pipeline import run_pipeline

    model = tmp_path / "tiny-gpt2"
    tiny_gpt2(n_layer=2, n_embd=32, n_positions=128, path=model)
    overrides = {
        "dataset.args": {"data_dir": str(data_dir), "download": False},
        "dataset.subjects": ["s18"], "dataset.group_mean": False,
        "model.name": str(model), "model.context_tokens": 16, "model.stride": 8, "model.device": "cpu",
        "model.dtype": "float32", "encoding.alphas": {"logspace": [0, 6, 4]}, "encoding.n_permutations": 0,
        "encoding.baseline": ["word_rate", "surprisal"], "output.dir": str(tmp_path / "out"), "output.report": None,
    }
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        run = run_pipeline(ANALYSES / "alice_layers.yaml", overrides=overrides, verbose=False)
    features = load_features(run.features["alice"])
    assert features.attrs["surprisal"].shape == (2127,) and np.isfinite(features.attrs["surprisal"]).all()
    res = EncodingResults.load(run.results["s18"])
    sources = res.provenance["baseline_sources"]
    assert list(sources) == ["word_rate", "surprisal"]
    assert sources["surprisal"].startswith("the model's own per-word surprisal (bits) from the features")
    assert "context_tokens 16" in sources["surprisal"]
    assert res.settings["baseline_regressors"] == ["word_rate", "surprisal"]
    assert {row["model"] for row in res.provenance["baseline_models"]} >= {"surprisal"}
    assert not any("baseline surprisal left out" in w for w in res.warnings)
    assert "baseline surprisal left out" not in caplog.text
    assert np.all(np.isfinite(res.baseline["r"]))


def test_extract_command_with_surprisal(tmp_path, capsys):
    from neuroenc.cli import main
    from neuroenc.stimuli import read_transcript
    from neuroenc.testing import TINY_TEXT

    tiny_gpt2(n_layer=2, path=tmp_path / "model")
    (tmp_path / "story.txt").write_text(" ".join(TINY_TEXT.split()[:30]))
    out = tmp_path / "f.h5"
    assert main(["-q", "extract", "--model", str(tmp_path / "model"), "--transcript", str(tmp_path / "story.txt"),
                 "--layers", "0", "--context-tokens", "full", "--surprisal", "true", "--out", str(out)]) == 0
    fs = load_features(out)
    ref = word_surprisal(read_transcript(tmp_path / "story.txt"), str(tmp_path / "model"))
    np.testing.assert_allclose(fs.attrs["surprisal"], ref, atol=1e-5)
    assert f"surprisal {ref.mean():.2f} bits/word" in capsys.readouterr().out
