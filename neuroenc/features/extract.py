"""Per-word, per-layer hidden states of a language model with exact, recorded context.

:class:`FeatureExtractor` holds a loaded model and its settings and turns transcripts into
:class:`~neuroenc.features.FeatureSet` objects (``.transform(transcript)``), so one model
load serves many transcripts (a Dask worker keeps one extractor). :func:`extract_features`
is the one-call form. With ``cache_dir``, results are stored in content-hashed HDF5 files
(:mod:`neuroenc.features.cache`) and reused.

How a feature is computed
-------------------------
1. The words are joined by spaces and tokenised once; the tokenizer's offset mapping assigns
   tokens to words (:func:`~neuroenc.features.tokens.align_tokens`).
2. A context policy (:mod:`neuroenc.features.context`) plans forward sequences: ``strided``
   overlapping chunks (default) or one ``window`` per word (the reference); with
   ``context_tokens="full"`` the whole run is one sequence (when it fits the model).
3. Each sequence gets the model's prefix special tokens (the tokenizer's own, plus a BOS with
   ``prepend_bos``: :func:`~neuroenc.features.models.sequence_prefix`). Sequences are batched
   (right-padded, with an attention mask), run once each with
   ``output_hidden_states=True`` under :func:`torch.inference_mode`, and every word's rows
   are gathered from every requested layer in one indexing operation per layer: the last
   (``pooling="last"``), first or mean of the word's tokens. With ``last_layer="pre-norm"``
   the last layer is the last block's output before the final norm
   (:mod:`neuroenc.features.prenorm`).
4. Each word's context is recorded (``context_start``, ``context_len`` in story tokens): for
   a causal model, a forward pass over exactly those tokens (after the prefix special tokens,
   recorded as ``prefix_ids``) gives the same hidden state.
5. With ``surprisal=True`` (causal models), each word's surprisal (bits, summed over its
   tokens) is read from the same forward passes' last hidden states through the model's output
   head (:class:`~neuroenc.features.surprisal.SurprisalAccumulator`): the word's tokens are
   predicted from the tokens before them in the sequence the word is read from, so its context
   is the one its features saw.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._logging import CallLog
from .._settings import Choices, Interval, ListOf, check_params
from .._validation import _check_option, _check_type
from ..stimuli.transcript import Transcript
from .cache import FeatureFileError, cache_file_name, cache_key, is_complete, read_feature_info
from .context import CONTEXT_TOKENS, FULL, POLICIES, ContextPlan, check_context_tokens, plan_contexts
from .featureset import FeatureSet, load_features, save_features
from .layers import layers_key, resolve_layers
from .models import (
    LoadedModel,
    load_model,
    model_identity,
    resolve_device,
    resolve_torch_dtype,
    sequence_prefix,
)
from .prenorm import LAST_LAYERS, check_last_layer
from .tokens import TokenAlignment, align_tokens, concatenated_ranges

logger = logging.getLogger(__name__)

POOLINGS = ("last", "mean", "first")
#: Tokens per forward batch when ``batch_size="auto"`` (sequences = budget // length).
AUTO_TOKEN_BUDGET = {"cpu": 4096, "mps": 16384, "cuda": 65536}
#: Bumped when the features a setting gives change, so old cache files are not reused.
CACHE_VERSION = 1
#: What a features file's ``/surprisal`` is (its provenance ``surprisal_source``).
SURPRISAL_SOURCE = ("-log2 p(word | context) in bits, summed over the word's tokens, from the extraction's own "
                    "forward passes (its context_tokens, stride, policy and prefix_ids) through the model's "
                    "output head")
#: The libraries whose versions can change the features (the tokenisation, the forward pass):
#: their versions are part of the cache key and of the provenance (``library_versions``).
FEATURE_LIBRARIES = ("torch", "transformers", "tokenizers")


def library_versions() -> dict[str, str | None]:
    """The installed versions of :data:`FEATURE_LIBRARIES` (None for one not installed).

    A new torch (kernels), transformers (model code, weight conversion) or tokenizers
    (tokenisation) can change the features a setting gives, so the feature cache keys them:
    an upgrade recomputes the features instead of mixing the old ones with new ones.
    """
    return {name: _installed_version(name) for name in FEATURE_LIBRARIES}


@functools.lru_cache(maxsize=None)
def _installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _check_transcript(transcript: Any) -> Transcript:
    if isinstance(transcript, Transcript):
        return transcript
    if isinstance(transcript, Sequence) and not isinstance(transcript, str) and len(transcript) == 0:
        raise ValueError(
            "Cannot extract features of an empty transcript: it has no words. Check the file (and "
            "its tier or column), or drop this run."
        )
    raise TypeError(
        f"'transcript' must be a neuroenc Transcript (words with onsets), got "
        f"{type(transcript).__name__}. Build one with Transcript(words, onsets, offsets, name=...) "
        "or read it with neuroenc.stimuli.read_transcript(path)."
    )


def _intervention_tools():
    from .interventions import check_context_policy, parse_intervention
    from .interventions_patch import apply_intervention

    return parse_intervention, apply_intervention, check_context_policy


def _is_oom(err: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
    return isinstance(err, oom) or (isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


class FeatureExtractor:
    """Extract per-word, per-layer features of transcripts with one loaded model.

    Parameters
    ----------
    model : str | path | LoadedModel
        An alias (``"smollm2-135m"``, ``"minilm-l6"``), hub id, local folder, ``.gguf``
        path, or an already loaded model (:func:`~neuroenc.features.load_model`). A name is
        loaded on first use (:meth:`fit` or :meth:`transform`), and not at all when every
        requested transcript is already in the cache.
    layers : "all" | int | float | list
        Layers to keep (see :func:`~neuroenc.features.layers.resolve_layers`): ``"all"``
        (0 = embeddings .. last block), indices, or relative depths as floats (0.5 = middle).
    context_tokens : int | "full"
        Tokens of left context before each word's first token. ``"full"``: all the tokens of
        the run before the word; with ``strided``, the whole run is one forward pass (an
        error naming the model's limit when the run does not fit its positions).
    stride : int | None
        Step between ``strided`` chunks (default ``context_tokens // 2``, at least 1). Each
        word sees ``context_tokens`` to ``context_tokens + stride - 1`` tokens of left context.
        Not used (and an error if given) with ``context_tokens="full"``.
    policy : {"strided", "window"}
        ``strided`` (fast, default) or ``window`` (one forward pass per word; the reference).
        See :mod:`neuroenc.features.context`.
    pooling : {"last", "mean", "first"}
        Which of a word's tokens give its feature: the last (default; for a causal model the
        state after the whole word), the mean, or the first.
    right_context : int
        Masked models only: tokens after each word (exact with ``window``; at least this
        many with ``strided``). Causal models see left context only.
    prepend_bos : {"auto", True, False}
        Put the model's BOS (document) token before every forward sequence, so that a story
        word never sits at position 0, where a causal model's attention sink is (its hidden
        states there are outliers: on SmolLM2 the first word's norm is 35-180 times the
        median). ``"auto"`` (default, as for stimuli): as ``True`` for a causal model whose
        tokenizer has a BOS token, else as ``False``; ``True``: a BOS, unless the tokenizer
        adds it already (an error if it has none); ``False``: the tokenizer's own special
        tokens only (a BOS for Llama-2/3 tokenizers, none for GPT-2's or SmolLM2's; the
        default before issue 19, kept for features that must match older ones). Masked
        models keep their tokenizer's ``[CLS] ... [SEP]``. A BOS takes one of the model's positions. A word left at
        position 0 with no BOS is logged as a warning and recorded in ``attrs["warnings"]``.
        See :func:`~neuroenc.features.models.sequence_prefix`.
    last_layer : {"normed", "pre-norm"}
        The last layer's features: ``"normed"`` (default), as ``transformers`` returns it,
        after the final norm for models that have one (Llama family, GPT-2's ``ln_f``) while
        the other layers are raw block outputs; or ``"pre-norm"``, the last block's output
        before that norm, recorded by a forward hook (:mod:`neuroenc.features.prenorm`).
        For models without a final norm (BERT-like) the two are equal.
    batch_size : int | "auto"
        Sequences per forward pass; ``"auto"`` fills a token budget per device
        (:data:`AUTO_TOKEN_BUDGET`). On a CUDA out-of-memory error the batch is halved and
        retried.
    device, dtype : str
        Passed to :func:`~neuroenc.features.load_model` when ``model`` is a name.
    revision, gguf_file : str | None
        Passed to :func:`~neuroenc.features.load_model` when ``model`` is a name.
    cache_dir : path-like | None
        Folder of the HDF5 feature cache; ``None`` disables caching.
    intervention : None | str | dict | Intervention
        A model intervention applied during the forward passes (see
        :mod:`neuroenc.features.interventions`); recorded in provenance and the cache key.
        The context kinds (``freeze-context``, ``random-context``, ``swap-context``) read
        each word as the current token: with ``policy="window"`` in its own pass (pooling
        ``last``), with ``"strided"`` (causal models) in paired passes over the same chunks
        as the intact model (:mod:`~neuroenc.features.paired_context`), exactly.
    reference : {"onset", "midpoint"}
        Which word time the feature rows are placed at (not part of the cache key: cached
        features are returned at this reference).
    surprisal : bool
        Causal models: also each word's surprisal, ``-log2 p(word | context)`` in bits summed
        over its tokens, read from the same forward passes as the features (the context each
        word's features saw: strided chunks, the whole run, or its own window), in
        ``attrs["surprisal"]`` and the features file's ``/surprisal``; part of the cache key.
        NaN (and a recorded warning) for a word whose first token has nothing before it (no
        BOS: ``prepend_bos=False``). Equal to :func:`~neuroenc.features.word_surprisal` with the
        same ``context_tokens``, ``stride`` and ``prepend_bos`` (``policy="window"``: as a stride
        of 1). An error for a masked model, and with a context intervention (``freeze-context``,
        ``random-context``, ``swap-context``) under ``policy="window"``; under ``"strided"``
        each token's surprisal is read from the paired pass, as the current token.
    verbose : bool | str | int | None
        Level of this extractor's messages (mne style); ``None`` (default) inherits the
        ``neuroenc`` logger's level. The shared logger is never changed. A progress bar shows
        at ``"info"`` or below.

    Attributes
    ----------
    model_ : LoadedModel
        The loaded model (after :meth:`fit`, or the first :meth:`transform` that computes).
    identity_ : str
        The loaded model's identity in cache keys (:attr:`LoadedModel.identity`), set by
        :meth:`fit`.
    """

    #: The values each parameter takes (scikit-learn's convention; read by the run config and
    #: ``neuroenc extract``, see :mod:`neuroenc._settings`).
    _parameter_constraints: dict = {
        "model": [str, os.PathLike, LoadedModel],
        "layers": [Choices("all"), Interval(Integral, None, None, closed="neither"),
                   Interval(Real, None, None, closed="neither"),
                   ListOf(Interval(Real, None, None, closed="neither"))],
        "context_tokens": CONTEXT_TOKENS,
        "stride": [None, Interval(Integral, 1, None, closed="left")],
        "policy": [Choices(POLICIES)],
        "pooling": [Choices(POOLINGS)],
        "right_context": [Interval(Integral, 0, None, closed="left")],
        "prepend_bos": ["boolean", Choices("auto")],
        "last_layer": [Choices(LAST_LAYERS)],
        "batch_size": [Interval(Integral, 1, None, closed="left"), Choices("auto")],
        "device": [str],
        "dtype": [str],
        "revision": [None, str],
        "gguf_file": [None, str],
        "cache_dir": [None, str, os.PathLike],
        "intervention": [None, str, dict],
        "reference": [Choices("onset", "midpoint")],
        "surprisal": ["boolean"],
    }

    def __init__(
        self,
        model: str | os.PathLike | LoadedModel,
        layers: Any = "all",
        context_tokens: int | str = 256,
        stride: int | None = None,
        policy: str = "strided",
        pooling: str = "last",
        right_context: int = 0,
        prepend_bos: bool | str = "auto",
        last_layer: str = "normed",
        batch_size: int | str = "auto",
        device: Any = "auto",
        dtype: Any = "auto",
        revision: str | None = None,
        gguf_file: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        intervention: Any = None,
        reference: str = "onset",
        surprisal: bool = False,
        verbose: bool | str | int | None = None,
    ) -> None:
        self.model = model
        self.layers = layers
        self.context_tokens = context_tokens
        self.stride = stride
        self.policy = policy
        self.pooling = pooling
        self.right_context = right_context
        self.prepend_bos = prepend_bos
        self.last_layer = last_layer
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.revision = revision
        self.gguf_file = gguf_file
        self.cache_dir = cache_dir
        self.intervention = intervention
        self.reference = reference
        self.surprisal = surprisal
        self.verbose = verbose

    # ------------------------------------------------------------------ settings
    def check_params(self) -> dict[str, Any]:
        """Check the parameters together (without loading the model) and return those that
        need resolving: ``context_tokens``, ``stride`` (its default from ``context_tokens``),
        ``layers`` (a canonical form) and ``intervention`` (parsed).

        Raises
        ------
        ValueError
            Naming the parameter, its value and the fix (e.g. a ``stride`` with
            ``context_tokens="full"``).
        """
        check_params(self)  # each parameter against its declaration
        context = check_context_tokens(self.context_tokens)
        if context == FULL:
            if self.stride is not None:
                raise ValueError(
                    f"stride={self.stride!r} applies to a number of context_tokens, but "
                    "context_tokens='full' puts each run in one forward pass. Drop stride (or give "
                    "context_tokens a number)."
                )
            stride = None
        else:
            stride = int(max(context // 2, 1) if self.stride is None else self.stride)
        layers = layers_key(self.layers)
        intervention = None
        if self.intervention is not None:
            parse, _, check_policy = _intervention_tools()
            intervention = parse(self.intervention)
            if intervention is not None:
                check_policy(intervention, self.policy, self.pooling)
                if self.surprisal and intervention.needs_last_token and self.policy == "window":
                    raise ValueError(
                        f"surprisal=True reads each word's tokens from its forward pass, but intervention "
                        f"{str(intervention)!r} with policy='window' treats every token of a pass but the last "
                        "as context, which would give wrong surprisal. Pass policy='strided' (a causal model "
                        "then reads every token as the current one, surprisal included), surprisal=False, or "
                        "compute it with neuroenc.features.lm_quality(words, model, intervention=...)."
                    )
        return {"context_tokens": context, "stride": stride, "layers": layers,
                "intervention": intervention}

    def _settings(self, transcript: Transcript, checked: dict[str, Any]) -> dict[str, Any]:
        """Everything that changes the features of ``transcript`` (the cache key's content),
        the versions of the libraries that compute them included (:func:`library_versions`).

        ``prepend_bos`` enters only when it is not ``False``, ``last_layer`` only when it
        is not ``"normed"`` and ``surprisal`` only when it is ``True`` (the settings before these
        options existed), so those settings keep the keys they had then, but for the library
        versions."""
        iv = checked["intervention"]
        settings = {
            "cache_version": CACHE_VERSION,
            "library_versions": library_versions(),
            "model_identity": self.model_identity(),
            "transcript_sha256": transcript.sha256(),
            "run": transcript.name,
            "policy": self.policy,
            "context_tokens": checked["context_tokens"],
            "stride": checked["stride"] if self.policy == "strided" else None,
            "right_context": int(self.right_context),
            "pooling": self.pooling,
            "layers": checked["layers"],
            "dtype": self._dtype_name(),
            "intervention": None if iv is None else iv.to_dict(),
        }
        if self.prepend_bos is not False:
            settings["prepend_bos"] = self.prepend_bos
        if self.last_layer != "normed":
            settings["last_layer"] = self.last_layer
        if self.surprisal:
            settings["surprisal"] = True
        return settings

    # ------------------------------------------------------------------ model
    def fit(self, X: Any = None, y: Any = None) -> "FeatureExtractor":
        """Load the model (if not loaded yet). Returns self."""
        if not hasattr(self, "model_"):
            self.model_ = load_model(self.model, device=self.device, dtype=self.dtype,
                                     revision=self.revision, gguf_file=self.gguf_file)
            self.identity_ = self.model_.identity
        return self

    def _loaded(self) -> LoadedModel | None:
        if hasattr(self, "model_"):
            return self.model_
        return self.model if isinstance(self.model, LoadedModel) else None

    def _model_name(self) -> str:
        lm = self._loaded()
        return lm.name if lm is not None else str(self.model)

    def model_identity(self) -> str:
        """The model's identity (:func:`~neuroenc.features.models.model_identity`), without loading it
        (memoised per model/revision/gguf_file:
        hashing a folder's weights or finding a hub commit is done once)."""
        lm = self._loaded()
        if lm is not None:
            return lm.identity
        key = (str(self.model), self.revision, self.gguf_file)
        memo = self.__dict__.get("_identity_memo")
        if memo is None or memo[0] != key:
            memo = (key, model_identity(self.model, revision=self.revision, gguf_file=self.gguf_file))
            self._identity_memo = memo
        return memo[1]

    def _dtype_name(self) -> str:
        lm = self._loaded()
        if lm is not None:
            return _dtype_name(lm.dtype)
        return _dtype_name(resolve_torch_dtype(self.dtype, resolve_device(self.device)))

    # ------------------------------------------------------------------ cache
    def cache_path(self, transcript: Transcript) -> Path | None:
        """Where the features of ``transcript`` are cached (``None`` without ``cache_dir``).

        The name hashes the model's identity (hub commit or weights sha256), the transcript's
        content and run name, and every setting that changes the features. Computing it does
        not load the model.
        """
        if self.cache_dir is None:
            return None
        transcript = _check_transcript(transcript)
        return self._path(transcript, self._settings(transcript, self.check_params()))

    def _path(self, transcript: Transcript, settings: dict[str, Any]) -> Path:
        name = cache_file_name(self._model_name(), transcript.name, cache_key(settings))
        return Path(self.cache_dir) / name

    def _find_cached(self, transcript: Transcript, checked: dict[str, Any],
                     log: CallLog | None = None) -> tuple[Path, list[int]] | None:
        """The complete cache file holding these features (this setting's, or an all-layers
        file with every requested layer) and the layers to read from it.

        Without ``surprisal``, a file of the same setting with surprisal serves too (its features
        are the same). A file is trusted only if the ``cache_key`` it stores is the one its name stands for
        (a file copied or renamed under another key's name is not), and its layers carry
        checksums (verified when they are read). Only the files' attributes and dataset
        shapes are read here, never the features.
        """
        log = CallLog(self.verbose, logger) if log is None else log
        settings = self._settings(transcript, checked)
        candidates = [settings]
        if settings["layers"] != "all":
            candidates.append(dict(settings, layers="all"))
        if not settings.get("surprisal"):  # the same features, with surprisal beside them
            candidates += [dict(cand, surprisal=True) for cand in candidates]
        for cand in candidates:
            path = self._path(transcript, cand)
            if not path.exists():
                continue
            if not is_complete(path):
                log.log(logging.WARNING, "Cached features %s are incomplete or corrupt; recomputing.", path)
                continue
            info = read_feature_info(path)
            expected = cache_key(cand)
            if info.get("cache_key") != expected:
                log.log(logging.WARNING, "Cached features %s store cache_key %r, not the %r their name "
                        "stands for (a copied or renamed file?); recomputing.", path,
                        info.get("cache_key"), expected)
                continue
            if not is_complete(path, checksums=True):
                log.log(logging.INFO, "Cached features %s were written without checksums (an older "
                        "neuroenc); recomputing.", path)
                continue
            wanted = resolve_layers(self.layers, info["n_model_layers"], repr(info["model"]))
            if not set(wanted) <= set(info["layer_indices"]):
                continue
            return path, wanted
        return None

    def cached_path(self, transcript: Transcript) -> Path | None:
        """The complete cache file that holds the features of ``transcript``, or ``None``.

        Unlike :meth:`cache_path` (where this setting's file goes), this may be an all-layers
        file that also serves a request for a subset of layers.
        """
        if self.cache_dir is None:
            return None
        transcript = _check_transcript(transcript)
        found = self._find_cached(transcript, self.check_params())
        return None if found is None else found[0]

    def _cached(self, transcript: Transcript, checked: dict[str, Any], log: CallLog) -> FeatureSet | None:
        """The cached features (at this extractor's ``reference``), from this setting's file
        or from an all-layers file."""
        found = self._find_cached(transcript, checked, log)
        if found is None:
            return None
        path, wanted = found
        try:
            fs = load_features(path, layers=wanted)
        except FeatureFileError as err:
            log.log(logging.WARNING, "%s Recomputing.", err)
            return None
        log.log(logging.INFO, "Reusing cached features %s", path)
        for message in fs.attrs.get("warnings") or []:
            log.log(logging.WARNING, "%s", message)
        return fs.with_reference(self.reference)

    # ------------------------------------------------------------------ extraction
    def transform(self, transcript: Transcript) -> FeatureSet:
        """Per-word features of ``transcript`` (from the cache when there).

        Returns
        -------
        features : FeatureSet
            One row per word, one array per requested layer (float32), placed at word
            onsets (or midpoints); ``attrs`` holds the provenance and the
            ``context_start`` / ``context_len`` of each word.
        """
        transcript = _check_transcript(transcript)
        log = CallLog(self.verbose, logger)
        checked = self.check_params()
        if self.cache_dir is not None:
            cached = self._cached(transcript, checked, log)
            if cached is not None:
                return cached
        self.fit()
        fs = self._compute(transcript, checked)
        if self.cache_dir is not None:
            path = self._path(transcript, self._settings(transcript, checked))
            save_features(fs, path)
            fs.attrs["path"] = str(path)
            log.log(logging.INFO, "Wrote %s", path)
        return fs

    def _compute(self, transcript: Transcript, checked: dict[str, Any]) -> FeatureSet:
        lm = self.model_
        log = CallLog(self.verbose, logger)
        if self.right_context and lm.kind == "causal":
            raise ValueError(
                f"right_context={self.right_context} needs a masked model, but {lm.name!r} is causal: "
                "a causal model's hidden state at a word never sees later tokens. Use right_context=0."
            )
        layers = resolve_layers(self.layers, lm.n_layers, repr(lm.name))
        C, S, R = checked["context_tokens"], checked["stride"], int(self.right_context)
        prefix = sequence_prefix(lm, self.prepend_bos)
        n_special = len(prefix) + len(lm.suffix_ids)
        strided = self.policy == "strided"
        if C != FULL:
            what = (f"context_tokens={C}" + (f" + stride={S}" if strided else " + 1 word token")
                    + (f" + right_context={R}" if R else "") + f" + {n_special} special token(s)")
            check_positions(lm, C + (S if strided else 1) + R + n_special, what)
        alignment = align_tokens(transcript.words, lm.tokenizer)
        plan = plan_contexts(alignment, self.policy, C, S if S is not None else 1, R, lm.kind)
        longest = int(plan.seq_len.max()) + n_special
        if lm.max_positions is not None and longest > lm.max_positions:
            if C == FULL:
                _run_too_long(lm, transcript.name, alignment.n_tokens, n_special, R)
            i = int(np.argmax(alignment.word_n_tokens))
            check_positions(lm, longest, f"the longest sequence (word {i} {transcript.words[i]!r} has "
                             f"{int(alignment.word_n_tokens[i])} tokens)")
        warnings = _position_zero_warnings(lm, prefix, alignment, plan, transcript)
        for message in warnings:
            log.log(logging.WARNING, "%s", message)
        iv = checked["intervention"]
        acc = on_batch = None
        if self.surprisal:
            acc, on_batch = _surprisal_reader(lm, alignment, plan, prefix)
        data, n_forwards = run_plan(lm, alignment, plan, layers, self.pooling, self.batch_size,
                                    iv, desc=f"{transcript.name}", verbose=self.verbose,
                                    prefix_ids=prefix, last_layer=self.last_layer, on_batch=on_batch)
        surprisal = None
        if acc is not None:
            surprisal = acc.result()
            message = _surprisal_warning(surprisal, transcript)
            if message:
                warnings.append(message)
                log.log(logging.WARNING, "%s", message)
        attrs = {
            **lm.provenance(),
            "model_identity": lm.identity,
            "policy": self.policy,
            "context_tokens": C,
            "stride": S if strided else None,
            "right_context": R,
            "pooling": self.pooling,
            "prepend_bos": self.prepend_bos,
            "prefix_ids": [int(t) for t in prefix],
            "suffix_ids": [int(t) for t in lm.suffix_ids],
            "last_layer": self.last_layer,
            "layers": layers,
            "intervention": None if iv is None else iv.to_dict(),
            "transcript_sha256": transcript.sha256(),
            "transcript_source": transcript.source,
            "neuroenc_version": __version__,
            "library_versions": library_versions(),
            "n_tokens": alignment.n_tokens,
            "n_token_forwards": n_forwards,
            "cache_key": cache_key(self._settings(transcript, checked)),
            "warnings": warnings,
            "context_start": plan.context_start,
            "context_len": plan.context_len,
        }
        if surprisal is not None:
            attrs["surprisal"] = surprisal
            attrs["surprisal_source"] = SURPRISAL_SOURCE
        return FeatureSet(data, transcript.onsets, transcript.offsets, list(transcript.words),
                          run=transcript.name, model=lm.name, n_model_layers=lm.n_layers,
                          reference=self.reference, attrs=attrs)

    def __repr__(self) -> str:
        return (f"FeatureExtractor(model={getattr(self.model, 'name', self.model)!r}, "
                f"layers={self.layers!r}, context_tokens={self.context_tokens!r}, stride={self.stride}, "
                f"policy={self.policy!r}, pooling={self.pooling!r}, prepend_bos={self.prepend_bos!r}, "
                f"last_layer={self.last_layer!r})")


def _surprisal_reader(lm: LoadedModel, alignment: TokenAlignment, plan: ContextPlan, prefix: Sequence[int]):
    """The accumulator of the words' surprisal and the ``on_batch`` hook of :func:`run_plan` that
    feeds it the last hidden states of each batch (``surprisal=True``)."""
    from .logits import SurprisalAccumulator

    if lm.kind != "causal":
        raise ValueError(
            f"surprisal=True needs a causal language model, but {lm.name!r} is {lm.kind}: a masked model "
            "does not predict the next token. Pass surprisal=False (or drop surprisal from "
            "encoding.baseline), or use a causal model (e.g. smollm2-135m)."
        )
    acc = SurprisalAccumulator(lm, alignment.input_ids, plan, alignment.word_start, alignment.word_stop,
                               len(prefix))

    def on_batch(seqs, states, offset):
        acc.add(seqs, states[-1], offset)

    return acc, on_batch


def _surprisal_warning(values: np.ndarray, transcript: Transcript) -> str | None:
    """The warning for words whose surprisal is NaN (a first token with nothing before it)."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size == 0:
        return None
    first = int(bad[0])
    return (f"{bad.size} word(s) of run {transcript.name!r} start a forward sequence with no token before "
            f"them (first: word {first} {transcript.words[first]!r}); their surprisal is NaN: pass "
            "prepend_bos='auto' or True.")


def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def check_positions(lm: LoadedModel, needed: int, what: str) -> None:
    """Raise if sequences of ``needed`` positions (``what`` says which) exceed the model's limit."""
    if lm.max_positions is not None and needed > lm.max_positions:
        raise ValueError(
            f"{what} need {needed} positions, but model {lm.name!r} has at most {lm.max_positions}. "
            "Lower context_tokens (or stride/right_context); neuroenc never truncates silently."
        )


def _run_too_long(lm: LoadedModel, run: str, n_tokens: int, n_special: int, right_context: int) -> None:
    """The error for ``context_tokens="full"`` when a run does not fit the model's positions."""
    limit = int(lm.max_positions)
    fit = max((limit - n_special - right_context) * 2 // 3, 0)
    raise ValueError(
        f"context_tokens='full' puts all of run {run!r} in one forward sequence: its {n_tokens} tokens + "
        f"{n_special} special token(s) need {n_tokens + n_special} positions, but model {lm.name!r} "
        f"has at most {limit} (its maximum positions). Give context_tokens a number instead (e.g. "
        f"context_tokens={fit} with the strided policy: context + stride + special tokens must fit "
        f"{limit}), or use a model with a longer context."
    )


def _position_zero_warnings(lm: LoadedModel, prefix: Sequence[int], alignment: TokenAlignment,
                            plan: ContextPlan, transcript: Transcript) -> list[str]:
    """A warning when words are read from sequences where they sit at position 0 with no BOS
    (or other special token) before them: a causal model's first position is its attention
    sink, and its hidden states there are outliers."""
    if len(prefix) or lm.kind != "causal":
        return []
    at_zero = np.flatnonzero(alignment.word_start == plan.seq_start[plan.word_seq])
    if at_zero.size == 0:
        return []
    first = int(at_zero[0])
    bos = getattr(lm.tokenizer, "bos_token", None)
    fix = (f"pass prepend_bos='auto' (or True) to put the model's BOS token {bos!r} first"
           if bos is not None else "this model's tokenizer has no BOS token to put first")
    return [
        f"{at_zero.size} word(s) of run {transcript.name!r} sit at position 0 of their forward "
        f"sequence with no BOS token before them (first: word {first} {transcript.words[first]!r}); "
        f"a causal model's first position is its attention sink, with outlying hidden states: {fix}."
    ]


# ---------------------------------------------------------------------- the engine
def run_plan(
    lm: LoadedModel,
    alignment: TokenAlignment,
    plan: ContextPlan,
    layers: Sequence[int],
    pooling: str = "last",
    batch_size: int | str = "auto",
    intervention: Any = None,
    desc: str = "",
    verbose: bool | str | int | None = None,
    prefix_ids: Sequence[int] | None = None,
    last_layer: str = "normed",
    padding_side: str = "right",
    on_batch: Any = None,
    sources: Any = None,
) -> tuple[dict[int, np.ndarray], int]:
    """Run the forward sequences of ``plan`` and gather each word's pooled hidden states.

    Parameters
    ----------
    lm : LoadedModel
    alignment : TokenAlignment
    plan : ContextPlan
    layers : sequence of int
        Valid layer indices.
    pooling : {"last", "mean", "first"}
    batch_size : int | "auto"
    intervention : Intervention | None
        Applied (patched in) around all forward passes. A context kind runs paired passes
        (:func:`~neuroenc.features.paired_context.paired_hidden_states`) unless each sequence
        serves one word pooled at its last token (then that token is the current one).
    desc : str
        Progress-bar label.
    verbose : bool | str | int | None
        Level of messages and progress bar (``None``: the ``neuroenc`` logger's level; the
        logger is never changed).
    prefix_ids : sequence of int | None
        Special tokens before every sequence (default: the tokenizer's own,
        ``lm.prefix_ids``; see :func:`~neuroenc.features.models.sequence_prefix`).
    last_layer : {"normed", "pre-norm"}
        ``"pre-norm"``: the last layer is the last block's output before the final norm
        (:func:`~neuroenc.features.prenorm.capture_last_block`).
    padding_side : {"right", "left"}
        Where shorter sequences of a batch are padded. Padding is masked either way; with
        ``"left"`` the position ids are given explicitly (counted from each sequence's first
        real token), so every token keeps the position it has alone. Right padding needs no
        position ids (a causal model's real tokens never see the padding after them).
    on_batch : callable | None
        Called after each batch's forward pass as ``on_batch(seqs, states, offset)`` (the
        sequences, the model's hidden states as it returns them, each row's left padding), e.g.
        to read surprisal from the same pass (:class:`~neuroenc.features.surprisal.SurprisalAccumulator`).
    sources : mapping of str -> str | StimulusSet | None
        For ``swap-context:K:stimulus=ID``: the text of each stimulus id (see
        :func:`~neuroenc.features.interventions_patch.apply_intervention`).

    Returns
    -------
    features : dict of int -> ndarray, shape (n_words, hidden), float32
    n_token_forwards : int
        Tokens forwarded (special tokens included, padding excluded; twice each in paired
        passes, whose blocks below the intervention's range run them once).
    """
    import torch
    from tqdm.auto import tqdm

    check_last_layer(last_layer)
    _check_option("padding_side", padding_side, ("right", "left"))
    prefix = np.asarray(lm.prefix_ids if prefix_ids is None else list(prefix_ids), dtype=np.int64)
    suffix = np.asarray(lm.suffix_ids, dtype=np.int64)
    P = prefix.size
    lengths = plan.seq_len + P + suffix.size
    n_words = alignment.n_words
    a, b = alignment.word_start, alignment.word_stop

    # Words grouped by their sequence, and the in-sequence positions of their pooled tokens.
    by_seq = np.argsort(plan.word_seq, kind="stable")
    seq_bounds = np.searchsorted(plan.word_seq[by_seq], np.arange(plan.n_sequences + 1))
    first_tok = {"last": b - 1, "first": a, "mean": a}[pooling]
    n_pool = (b - a) if pooling == "mean" else np.ones(n_words, dtype=np.int64)
    pos0 = P + first_tok - plan.seq_start[plan.word_seq]

    order = np.argsort(-lengths, kind="stable")  # longest first: memory errors show at once
    out = {int(i): np.empty((n_words, lm.hidden_size), dtype=np.float32) for i in layers}
    layer_list = [int(i) for i in layers]
    pad_id = int(getattr(lm.tokenizer, "pad_token_id", None) or 0)
    if batch_size == "auto":
        budget = AUTO_TOKEN_BUDGET.get(lm.device.type, 4096)
        size = max(1, budget // max(int(lengths.max()), 1))
    else:
        size = int(batch_size)

    iv_cm = contextlib.nullcontext(None)
    if intervention is not None:
        _, apply_intervention, _ = _intervention_tools()
        iv_cm = apply_intervention(lm, intervention, sources=sources)
    last_cm = contextlib.nullcontext(None)
    if last_layer == "pre-norm":
        from .prenorm import capture_last_block

        last_cm = capture_last_block(lm)
    log = CallLog(verbose, logger)
    done = 0
    # The context kinds read the last token of each pass as the current one; a plan whose
    # sequences serve several words reads every token as the current one in a paired pass.
    paired = (intervention is not None and getattr(intervention, "needs_last_token", False)
              and (np.unique(plan.word_seq).size < n_words or pooling != "last"))
    if paired and lm.kind != "causal":
        raise ValueError(
            f"intervention {str(intervention)!r} on {lm.name!r}: a sequence that serves several words reads "
            "each of them as the current token in a paired pass, which needs a causal model; this model "
            f"is {lm.kind!r}. Read one word per pass: policy='window' and pooling='last'."
        )
    with iv_cm as handle, last_cm as last_block, torch.inference_mode(), tqdm(
        total=plan.n_sequences, desc=f"features {desc}".strip(), unit="seq", disable=not log.progress,
        leave=False,
    ) as bar:
        while done < plan.n_sequences:
            seqs = order[done:done + size]
            try:
                _run_batch(lm, alignment, plan, seqs, lengths, prefix, suffix, pad_id, by_seq,
                           seq_bounds, pos0, n_pool, layer_list, out, handle, a, b, last_block,
                           padding_side == "left", on_batch, paired)
            except Exception as err:  # noqa: BLE001 - only memory errors are retried
                if not _is_oom(err) or size == 1:
                    raise
                size = max(1, size // 2)
                if lm.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.log(logging.WARNING, "Out of memory with %d sequences per batch; retrying with %d.",
                        len(seqs), size)
                continue
            done += len(seqs)
            bar.update(len(seqs))
    return out, int(lengths.sum()) * (2 if paired else 1)  # a paired pass forwards each token twice


def batch_inputs(lm, alignment, plan, seqs, lengths, prefix, suffix, pad_id, left: bool = False):
    """The padded token ids of a batch of sequences, its attention mask and position ids
    (None when not needed), and each row's offset (the padding before it, with left padding)."""
    import torch

    B = len(seqs)
    L = int(lengths[seqs].max())
    ids = np.full((B, L), pad_id, dtype=np.int64)
    P = prefix.size
    offset = (L - lengths[seqs]).astype(np.int64) if left else np.zeros(B, dtype=np.int64)
    for row, s in enumerate(seqs):
        start, stop = int(plan.seq_start[s]), int(plan.seq_stop[s])
        n = stop - start
        o = int(offset[row])
        ids[row, o:o + P] = prefix
        ids[row, o + P:o + P + n] = alignment.input_ids[start:stop]
        ids[row, o + P + n:o + P + n + suffix.size] = suffix
    padded = bool((lengths[seqs] != L).any())
    device = lm.device
    input_ids = torch.from_numpy(ids).to(device)
    mask = positions = None
    if padded:
        cols = np.arange(L)[None, :]
        real = (cols >= offset[:, None]) & (cols < (offset + lengths[seqs])[:, None])
        mask = torch.from_numpy(real).to(device=device, dtype=torch.long)
        if left:
            pos = np.clip(cols - offset[:, None], 0, None) + int(getattr(lm, "position_offset", 0))
            positions = torch.from_numpy(pos).to(device)
    return input_ids, mask, positions, offset, L


def _run_batch(lm, alignment, plan, seqs, lengths, prefix, suffix, pad_id, by_seq, seq_bounds,
               pos0, n_pool, layers, out, handle, a, b, last_block=None, left=False, on_batch=None,
               paired=False) -> None:
    import torch

    B = len(seqs)
    P = prefix.size
    input_ids, mask, positions, offset, L = batch_inputs(lm, alignment, plan, seqs, lengths, prefix,
                                                          suffix, pad_id, left)
    device = lm.device

    # The words read from these sequences and the flat row of each pooled token.
    words = np.concatenate([by_seq[seq_bounds[s]:seq_bounds[s + 1]] for s in seqs])
    rows = np.repeat(np.arange(B), [seq_bounds[s + 1] - seq_bounds[s] for s in seqs])
    counts = n_pool[words]
    seg = np.repeat(np.arange(words.size), counts)
    flat = np.repeat(rows * L + offset[rows] + pos0[words], counts) + concatenated_ranges(counts)
    if paired:  # every token read as the current token (neuroenc.features.paired_context)
        from .paired_context import paired_hidden_states

        states = paired_hidden_states(lm, handle, input_ids, mask, positions, last_block)
    else:
        if handle is not None and getattr(handle.intervention, "needs_last_token", False):
            # One word per sequence (the window policy): its last token is the "current"
            # token, also when right context or [SEP] follows it.
            last = np.zeros(B, dtype=np.int64)
            last[rows] = offset[rows] + P + (b[words] - 1) - plan.seq_start[plan.word_seq[words]]
            handle.query_positions = torch.from_numpy(last).to(device)
        states = lm.hidden_states(input_ids, mask, positions) if positions is not None else \
            lm.hidden_states(input_ids, mask)
    if on_batch is not None:
        on_batch(seqs, states, offset)
    if last_block is not None:
        states = last_block.replace(states)
    flat_t = torch.from_numpy(flat).to(device)
    pooled = bool(counts.max() > 1)
    if pooled:
        seg_t = torch.from_numpy(seg).to(device)
        count_t = torch.from_numpy(counts).to(device=device, dtype=torch.float32)[:, None]
    gathered = []
    for i in layers:
        h = states[i].reshape(B * L, -1).index_select(0, flat_t)
        if pooled:
            total = torch.zeros((words.size, h.shape[1]), dtype=torch.float32, device=device)
            h = total.index_add_(0, seg_t, h.float()) / count_t
        gathered.append(h)
    stacked = torch.stack(gathered).float().cpu().numpy()
    for k, i in enumerate(layers):
        out[i][words] = stacked[k]


def extract_features(
    transcript: Transcript,
    model: str | os.PathLike | LoadedModel,
    layers: Any = "all",
    context_tokens: int | str = 256,
    stride: int | None = None,
    policy: str = "strided",
    pooling: str = "last",
    right_context: int = 0,
    prepend_bos: bool | str = "auto",
    last_layer: str = "normed",
    batch_size: int | str = "auto",
    device: Any = "auto",
    dtype: Any = "auto",
    revision: str | None = None,
    gguf_file: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    intervention: Any = None,
    reference: str = "onset",
    surprisal: bool = False,
    verbose: bool | str | int | None = None,
) -> FeatureSet:
    """Per-word, per-layer features of one transcript (see :class:`FeatureExtractor`).

    To extract many transcripts with one model, load it once (:func:`load_model`) or use a
    :class:`FeatureExtractor`.

    Examples
    --------
    >>> from neuroenc.testing import tiny_gpt2, tiny_transcript
    >>> fs = extract_features(tiny_transcript(30), tiny_gpt2(), context_tokens=16, stride=8)
    >>> fs.layer_indices, fs[4].shape
    ([0, 1, 2, 3, 4], (30, 64))
    """
    return FeatureExtractor(
        model, layers=layers, context_tokens=context_tokens, stride=stride, policy=policy,
        pooling=pooling, right_context=right_context, prepend_bos=prepend_bos,
        last_layer=last_layer, batch_size=batch_size, device=device,
        dtype=dtype, revision=revision, gguf_file=gguf_file, cache_dir=cache_dir,
        intervention=intervention, reference=reference, surprisal=surprisal, verbose=verbose,
    ).transform(transcript)


def feature_cache_path(
    cache_dir: str | os.PathLike,
    transcript: Transcript,
    model: str | os.PathLike | LoadedModel,
    **settings: Any,
) -> Path:
    """Where :func:`extract_features` caches ``transcript`` with ``model`` and ``settings``.

    Computed without loading the model (only its identity: hub commit or weights sha256), so
    a scheduler can skip work whose output is complete (:func:`~neuroenc.features.cache.is_complete`).
    ``settings`` are :class:`FeatureExtractor` parameters (``layers``, ``context_tokens``,
    ``stride``, ``policy``, ``pooling``, ``right_context``, ``prepend_bos``, ``last_layer``,
    ``dtype``, ``intervention``, ``revision``, ``gguf_file``, ``surprisal``).
    """
    return FeatureExtractor(model, cache_dir=cache_dir, **settings).cache_path(transcript)


def token_states(
    model: LoadedModel,
    inputs: str | Sequence[int] | np.ndarray,
    layers: Any = "all",
    intervention: Any = None,
    add_special_tokens: bool = True,
) -> dict[int, np.ndarray]:
    """Per-token hidden states of one sequence (for layer metrics such as prompt entropy).

    Parameters
    ----------
    model : LoadedModel
    inputs : str | sequence of int
        A text (tokenised without special tokens) or token ids of the story (e.g. a slice of
        ``align_tokens(transcript, model.tokenizer).input_ids``).
    layers : "all" | int | float | list
    intervention : None | str | dict | Intervention
    add_special_tokens : bool
        Put the model's prefix (and, for masked models, suffix) special tokens around the
        sequence, as the extractor does; their rows are not returned.

    Returns
    -------
    states : dict of int -> ndarray, shape (n_tokens, hidden), float32
        One row per input token (special tokens excluded).
    """
    import torch

    _check_type("model", model, LoadedModel, "LoadedModel (from neuroenc.features.load_model)")
    if isinstance(inputs, str):
        ids = list(model.tokenizer(inputs, add_special_tokens=False)["input_ids"])
    else:
        ids = [int(i) for i in np.asarray(inputs).reshape(-1)]
    if not ids:
        raise ValueError("token_states needs at least one token; got an empty input.")
    prefix = model.prefix_ids if add_special_tokens else []
    suffix = model.suffix_ids if add_special_tokens else []
    check_positions(model, len(prefix) + len(ids) + len(suffix), f"{len(ids)} tokens")
    wanted = resolve_layers(layers, model.n_layers, repr(model.name))
    iv_cm = contextlib.nullcontext()
    if intervention is not None:
        parse, apply_intervention, _ = _intervention_tools()
        iv_cm = apply_intervention(model, parse(intervention))
    seq = torch.tensor([prefix + ids + suffix], device=model.device)
    with iv_cm, torch.inference_mode():
        states = model.hidden_states(seq)
        sl = slice(len(prefix), len(prefix) + len(ids))
        return {i: states[i][0, sl].float().cpu().numpy() for i in wanted}
