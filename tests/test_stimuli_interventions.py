"""Stimulus-level features under an intervention (StimulusExtractor(intervention=...))."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _features_helpers import one_torch_thread  # noqa: F401
from _stimuli_fixtures import SENTENCES

from neuroenc.features import StimulusExtractor
from neuroenc.features.interventions_patch import apply_intervention
from neuroenc.features.models import sequence_prefix
from neuroenc.features.tokens import align_tokens
from neuroenc.stimuli import StimulusSet
from neuroenc.testing import tiny_llama


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


def _stimuli(n=6):
    return StimulusSet([f"s{i}" for i in range(n)], SENTENCES[:n], [f"p{i // 3}" for i in range(n)],
                       name="tiny-sentences")


def _direct_last(lm, words_before, words, intervention, sources=None):
    """The last token's states of ``words`` after ``words_before``: one pass, under ``intervention``."""
    al = align_tokens(list(words_before) + list(words), lm.tokenizer)
    ids = sequence_prefix(lm, "auto") + al.input_ids.tolist()
    with apply_intervention(lm, intervention, sources=sources), torch.inference_mode():
        states = lm.hidden_states(torch.tensor([ids]))
    return {i: s[0, -1].float().numpy() for i, s in enumerate(states)}


def test_structural_intervention_equals_a_direct_pass(lm):
    s = _stimuli()
    intact = StimulusExtractor(lm, pooling="last").transform(s)
    fs = StimulusExtractor(lm, pooling="last", intervention="skip:1-2").transform(s)
    for i in (0, 4):
        ref = _direct_last(lm, [], s.texts[i].split(), "skip:1-2")
        for layer in fs:
            np.testing.assert_allclose(fs[layer][i], ref[layer], rtol=1e-4, atol=1e-4)
    # blocks 1-2 skipped: hidden states 0-1 unchanged, the last one changed
    np.testing.assert_allclose(fs[1], intact[1], atol=1e-5)
    assert np.abs(fs[4] - intact[4]).max() > 1e-3
    assert fs.attrs["intervention"]["spec"] == "skip:1-2" and intact.attrs["intervention"] is None


def test_context_intervention_reads_each_group_in_a_paired_pass(lm):
    """A causal model reads a group's stimuli in the intact model's chunks, each stimulus's last
    token the current one (paired passes): equal to one pass per stimulus."""
    s = _stimuli()
    fs = StimulusExtractor(lm, pooling="last", context="group", intervention="freeze-context:1").transform(s)
    assert fs.attrs["policy"] == "strided" and fs.attrs["n_token_forwards"] == 2 * sum(  # two streams
        len(lm.tokenizer(" ".join(s.texts[g:g + 3]), add_special_tokens=False)["input_ids"]) + 1 for g in (0, 3))
    for i in (1, 5):  # read after the earlier stimuli of its group, which are its frozen context
        before = " ".join(s.texts[3 * (i // 3):i]).split()
        ref = _direct_last(lm, before, s.texts[i].split(), "freeze-context:1")
        for layer in fs:
            np.testing.assert_allclose(fs[layer][i], ref[layer], rtol=1e-4, atol=1e-4)
    strided = StimulusExtractor(lm, pooling="last", context="group").transform(s)
    assert np.abs(fs[4][1] - strided[4][1]).max() > 1e-3  # the frozen context changes the state


def test_swap_context_takes_its_source_from_the_stimulus_set(lm):
    base = _stimuli()
    long = " ".join(SENTENCES[:4])  # a source at least as long as every context
    s = StimulusSet(base.ids + ["src"], base.texts + [long], base.groups + ["q"], name="with-source")
    fs = StimulusExtractor(lm, pooling="last", intervention="swap-context:1:stimulus=src").transform(s)
    ref = _direct_last(lm, [], s.texts[2].split(), "swap-context:1:stimulus=src", sources={"src": long})
    for layer in fs:
        np.testing.assert_allclose(fs[layer][2], ref[layer], rtol=1e-4, atol=1e-4)


def test_intervention_enters_the_cache_key(lm, tmp_path):
    s = _stimuli()
    a = StimulusExtractor(lm, pooling="last", cache_dir=tmp_path)
    b = StimulusExtractor(lm, pooling="last", cache_dir=tmp_path, intervention="skip:1")
    assert a.cache_path(s) != b.cache_path(s)
    first = b.transform(s)
    again = StimulusExtractor(lm, pooling="last", cache_dir=tmp_path, intervention="skip:1").transform(s)
    np.testing.assert_allclose(again[4], first[4])
    assert again.attrs["intervention"]["spec"] == "skip:1"


def test_context_interventions_need_last_pooling_and_no_surprisal(lm):
    s = _stimuli()
    with pytest.raises(ValueError, match="need pooling='last'.*got pooling='mean'"):
        StimulusExtractor(lm, pooling="mean", intervention="freeze-context:1").transform(s)
    with pytest.raises(ValueError, match="drop surprisal"):
        StimulusExtractor(lm, pooling="last", surprisal=True, intervention="random-context:1").transform(s)
    with pytest.raises(ValueError, match="unknown kind 'jump'"):
        StimulusExtractor(lm, pooling="last", intervention="jump:1").transform(s)


def test_extract_cli_stimuli_with_swap_context_from_a_stimulus_id(tmp_path, capsys):
    from _stimuli_fixtures import write_sentences

    from neuroenc.cli import main
    from neuroenc.features import load_stimulus_features

    tiny_llama(path=tmp_path / "model")
    path = tmp_path / "sentences.csv"
    write_sentences(path, n_passages=2)
    long = " ".join(SENTENCES[:4])
    path.write_text(path.read_text() + f'src,"{long}",p9\n')
    out = tmp_path / "f.h5"
    code = main(["extract", "--model", str(tmp_path / "model"), "--stimuli", str(path), "--text-column",
                 "sentence", "--group-column", "passage", "--pooling", "last", "--intervention",
                 "swap-context:1:stimulus=src", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    fs = load_stimulus_features(out)
    assert fs.attrs["intervention"]["source"] == "stimulus=src"
    lm = tiny_llama()
    ref = _direct_last(lm, [], SENTENCES[1].split(), "swap-context:1:stimulus=src", sources={"src": long})
    np.testing.assert_allclose(fs[4][1], ref[4], rtol=1e-4, atol=1e-4)
