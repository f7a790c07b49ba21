"""analyses/layer_science_papers.py: the verdict rule, the paired contrasts and the whole run on a tiny model."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _features_helpers import one_torch_thread  # noqa: F401

from neuroenc.features.quality import LMQuality
from neuroenc.responses import Response
from neuroenc.stimuli import StimulusSet
from neuroenc.testing import TINY_TEXT, tiny_gpt2, tiny_transcript

SCRIPT = Path(__file__).resolve().parents[1] / "analyses" / "layer_science_papers.py"


@pytest.fixture(scope="module")
def papers():
    spec = importlib.util.spec_from_file_location("layer_science_papers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _run(values, name="x"):
    v = np.asarray(values, dtype=float)
    return LMQuality([f"w{i}" for i in range(v.size)], v, np.ones_like(v), v, np.ones_like(v),
                     np.arange(v.size), intervention=name)


def test_verdict_rule_on_known_z(papers):
    assert papers.verdict([2.0, 5.0]) == "holds"            # z >= 2 passes (inclusive)
    assert papers.verdict([2.5, 1.9]) == "partly"
    assert papers.verdict([1.99]) == "not on this model"
    assert papers.verdict([-3.0, np.nan]) == "not on this model"
    assert papers.verdict([3.0, np.nan]) == "partly"        # a check without an SE never passes
    with pytest.raises(ValueError, match="at least one check"):
        papers.verdict([])


def test_contrast_is_a_paired_mean_with_its_standard_error(papers):
    runs = {"a": _run([1.0, 2.0, 3.0, 4.0]), "b": _run([2.0, 2.5, 5.0, 4.5]), "ref": _run([0.0, 0.0, 1.0, np.nan])}
    c = papers.contrast(runs, {"b": 1, "a": -1}, "b - a")
    d = np.array([1.0, 0.5, 2.0, 0.5])
    np.testing.assert_allclose([c.estimate, c.se], [d.mean(), d.std(ddof=1) / 2])
    # a word missing in one run is left out of every run of the contrast
    c3 = papers.contrast(runs, {"b": 0.25, "a": -1, "ref": 0.75}, "mix")
    d3 = 0.25 * np.array([2.0, 2.5, 5.0]) - np.array([1.0, 2.0, 3.0]) + 0.75 * np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(c3.estimate, d3.mean())
    row = papers.claim_row("Paper", "X1", "b costs more than a", [c, papers.Check("other", 0.1, 1.0)])
    assert row["verdict"] == "partly" and row["n_pass"] == 1 and row["n_checks"] == 2
    assert row["measured"].startswith("b - a: +1 ± 0.35")
    with pytest.raises(ValueError, match="different numbers of words"):
        papers.contrast({"a": _run([1.0, 2.0]), "b": _run([1.0, 2.0, 3.0])}, {"a": 1, "b": -1}, "bad")


def test_layer_similarity_finds_a_shared_middle(papers, rng):
    # 7 hidden states (6 blocks): the middle outputs (3, 4) share one space, the others do not
    base = rng.standard_normal((80, 16))
    states = [rng.standard_normal((80, 16)) for _ in range(7)]
    for i in (3, 4):
        states[i] = base + 0.05 * rng.standard_normal((80, 16))
    checks, tidy = papers.layer_similarity(states, n_chunks=4)
    for name in ("cosine", "linear CKA"):
        assert all(c.z > 5 for c in checks[name])
    cka = tidy[tidy.measure == "linear CKA"].set_index(["layer_a", "layer_b"])["value"]
    np.testing.assert_allclose(cka.loc[(2, 2)], 1.0)
    assert cka.loc[(3, 4)] > 0.95 and cka.loc[(1, 3)] < 0.5


@pytest.fixture(scope="module")
def tiny_data(papers):
    rng = np.random.default_rng(0)
    transcript = tiny_transcript(n_words=300, rate=1.5)  # 200 s of words
    group = Response(rng.standard_normal((102, 3)), tr=2.0, names=["A", "B", "C"], run=transcript.name)
    words = TINY_TEXT.split()
    words = (words * (1 + 180 // len(words)))[:180]
    ids = [f"{1 + i // 60}.{i % 60}" for i in range(180)]
    stimuli = StimulusSet(ids, words, [f"story-{1 + i // 60}" for i in range(180)], name="tiny-rt")
    rt = Response(300 + 10 * rng.standard_normal((180, 1)), ids=ids, names=["rt"])
    return papers.Data(words[:60], " ".join(words[60:180]), transcript, group, (stimuli, rt))


def test_main_runs_end_to_end_on_a_tiny_model(papers, tiny_data, tmp_path):
    lm = tiny_gpt2(n_layer=6)  # 6 blocks: the thirds have 2 blocks each (reverse needs 2)
    s = papers.Settings(lm_context="full", skip_step=3, skip_counts=(1, 2),
                        context_depths=(1 / 6, 2 / 3), n_cv_blocks=3,
                        similarity_chunks=4, alice_context=32, alice_stride=16,
                        layer_step=2, metric_window=12, rt_cv_words=20, cache_dir=None, out_dir=tmp_path,
                        torch_threads=1)
    out = papers.main(lm=lm, settings=s, data=tiny_data)
    claims = out["claims"]
    assert list(claims.columns) == ["paper", "claim_id", "claim", "measured", "unit", "n_checks", "n_pass",
                                    "min_z", "verdict"]
    assert {"P1", "P2", "P3", "P4", "P5", "P6", "P7", "A1", "A2", "A3", "A4", "L1", "L2"} <= set(claims.claim_id)
    assert len(claims) == 13 + 5  # one row per Skean metric
    # every verdict follows the rule from the checks it lists
    checks = out["checks"]
    for row in claims.itertuples():
        z = checks[checks.claim_id == row.claim_id]["z"].to_numpy(float)
        assert z.size >= 1
        assert row.verdict == papers.verdict(z) and row.n_checks == z.size
    # the LM numbers are paired differences from the intact reading
    runs = out["lm_runs"].set_index("run")
    assert np.isnan(runs.loc["intact", "delta_bits"]) and runs.loc["skip block 0", "se"] > 0
    # the context kinds' reference (paired pass, frozen from the last block) is the intact model
    assert runs.loc[papers.REF_CONTEXT, "words"] == runs.loc["intact", "words"] == 60
    np.testing.assert_allclose(runs.loc[papers.REF_CONTEXT, "bits_per_word"], runs.loc["intact", "bits_per_word"],
                               rtol=1e-5)
    assert runs.loc["freeze-context from 1", "se"] > 1e-3  # it changes the words' surprisal
    assert list(out["bridge"].intervention) == ["skip middle third", "parallel middle third",
                                                "freeze-context from 4"]
    # the hidden states below a skipped block are the intact ones: no change of the brain profile there
    assert out["bridge"]["brain_delta_r_changed_layers"].notna().all()
    written = {p.name for p in out["paths"]}
    assert {"claims.csv", "claims.json", "claims.md", "claims.html", "bridge.csv", "overview.png"} <= written
    meta = json.loads((tmp_path / "claims.json").read_text())["meta"]
    assert meta["z_crit"] == papers.Z_CRIT and "SmolLM2-135M-Instruct" in meta["model_note"]
    assert pd.read_csv(tmp_path / "claims.csv")["verdict"].isin(["holds", "partly", "not on this model"]).all()


def test_lm_only_gives_the_painters_and_attend_first_rows(papers, tiny_data, tmp_path):
    lm = tiny_gpt2(n_layer=6)
    s = papers.Settings(lm_context=64, skip_step=3, skip_counts=(1, 2),
                        context_depths=(1 / 6, 2 / 3), similarity_chunks=3, brain=False, bridge=False,
                        cache_dir=None, out_dir=tmp_path, torch_threads=1)
    out = papers.main(lm=lm, settings=s, data=tiny_data)
    assert list(out["claims"].claim_id) == ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "A1", "A2", "A3", "A4"]
    assert out["bridge"].empty and (tmp_path / "claims.md").exists()
    assert out["cpu_times"]["total"] > 0 and set(out["times"]) == set(out["cpu_times"])
    s2, args = papers.parse_args(["--lm-only", "--quick", "--out-dir", str(tmp_path)])
    assert not s2.brain and not s2.bridge and s2.lm_words == papers.QUICK["lm_words"]


def test_specs_running_the_same_blocks_are_read_once(papers, tiny_data, monkeypatch):
    assert papers.same_blocks_key("skip:15", 30) == papers.same_blocks_key("skip:15-15", 30) \
        == papers.same_blocks_key("order:0-14,16-29", 30) == "order:0-14,16-29"
    assert papers.same_blocks_key("reverse:10-19", 30) != papers.same_blocks_key("shuffle:10-19:seed=0", 30)
    assert papers.same_blocks_key(None, 30) == "none"
    assert papers.same_blocks_key("freeze-context:5", 30) == "freeze-context:5"
    import neuroenc.features.quality as quality

    calls = []
    original = quality.lm_quality

    def spy(text, lm, intervention=None, **kwargs):
        calls.append(intervention)
        return original(text, lm, intervention=intervention, **kwargs)

    monkeypatch.setattr(quality, "lm_quality", spy)
    lm = tiny_gpt2(n_layer=6)
    s = papers.Settings(lm_context=64, skip_step=3, skip_counts=(1, 2), context_depths=(1 / 6,))
    words = tiny_data.words[:20]
    structural, _, table = papers.run_lm(lm, words, tiny_data.swap_text, s)
    specs = papers.structural_specs(6, s)
    assert specs["skip 1 middle"] == "skip:3-3" and specs["skip block 3"] == "skip:3"
    assert "skip:3-3" not in calls and calls.count("skip:3") == 1
    distinct = {papers.same_blocks_key(v, 6) for v in specs.values()}
    # skip:3-3 = skip:3; skip 2 middle = the middle third (2 blocks), whose shuffle is its reverse
    assert len(distinct) == len(specs) - 3
    assert len(calls) == len(distinct) + len(papers.context_specs(6, s))
    np.testing.assert_array_equal(structural["skip 1 middle"].word_surprisal, structural["skip block 3"].word_surprisal)
    assert structural["skip 1 middle"].intervention == "skip:3-3"
    row = table.set_index("run").loc["skip 1 middle"]
    assert row["delta_bits"] == pytest.approx(table.set_index("run").loc["skip block 3", "delta_bits"])


def test_bridge_refits_only_the_changed_layers_with_the_same_profile(papers, tiny_data):
    from neuroenc.features import extract_features

    lm = tiny_gpt2(n_layer=6)
    s = papers.Settings(n_cv_blocks=3)
    kw = dict(context_tokens=32, stride=16, pooling="last", cache_dir=None)
    intact = extract_features(tiny_data.transcript, lm, **kw)
    skipped = extract_features(tiny_data.transcript, lm, intervention="skip:2-3", **kw)
    layers = papers.fit_layers(lm.n_layers, 2)
    assert layers == [0, 2, 4, 6]
    first = papers.first_changed_layer("skip:2-3", 6)
    assert first == 3
    ref = papers.profile(papers.alice_fit(intact, tiny_data.group, s, layers))
    full = papers.profile(papers.alice_fit(skipped, tiny_data.group, s, layers))
    calls = []

    def fit(features, ls):
        calls.append(list(ls))
        return papers.alice_fit(features, tiny_data.group, s, ls)

    narrowed = papers.refit_changed(fit, skipped, intact, ref, layers, first)
    assert calls == [[4, 6]]
    assert list(narrowed.columns) == list(full.columns) and list(narrowed["layer"]) == layers
    np.testing.assert_allclose(narrowed.drop(columns="layer").to_numpy(float),
                               full.drop(columns="layer").to_numpy(float), rtol=1e-10, atol=1e-12)
    # a layer whose features differ is refitted even below the first changed block
    calls.clear()
    papers.refit_changed(fit, skipped, intact, ref, layers, first_changed=5)
    assert calls == [[4, 6]]
    other = extract_features(tiny_data.transcript, lm, intervention="skip:0", **kw)
    calls.clear()
    papers.refit_changed(fit, other, intact, ref, layers, first_changed=5)
    assert calls == [[2, 4, 6]]  # layer 0 (the embeddings) is the same; layer 2 is not
