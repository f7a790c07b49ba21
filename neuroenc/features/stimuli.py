"""Stimulus-level features: one row per stimulus (sentence, passage), per layer.

:class:`StimulusExtractor` turns a :class:`~neuroenc.stimuli.StimulusSet` into
:class:`StimulusFeatures` with the machinery of the story path: the same model loading and
identity, prefix special tokens (``prepend_bos``), ``last_layer``, the batched forward engine
(:func:`~neuroenc.features.extract.run_plan`) and the content-hashed HDF5 cache with
provenance and checksums.

How a stimulus's feature is computed
------------------------------------
1. Its text is split into words on white space, as a story transcript's words are, and the
   words are tokenised joined by single spaces; the tokenizer's offset mapping gives each
   word's tokens (:func:`~neuroenc.features.tokens.align_tokens`).
2. Context: ``"none"`` (default): each stimulus alone (after the model's prefix special tokens,
   a BOS with ``prepend_bos``). ``"group"``: after the stimuli before it in its group (a
   passage read sentence by sentence), the group's words tokenised as one text; a causal
   model reads the group in one forward pass (``context_tokens="full"``, an error if a group
   does not fit the model) or in strided chunks of ``context_tokens`` + ``stride`` tokens (the
   story path's strided policy: each stimulus sees at least ``context_tokens`` tokens of the
   group before it, or all of them); a masked model reads one sequence per stimulus, its
   context and itself and nothing after it (the window policy), so it never sees a later
   stimulus. The exact context is recorded: ``context_start`` and ``context_len`` (in tokens of
   the group's text) and ``context_text``, the text read before the stimulus.
3. Pooling over the stimulus's tokens: ``"mean"`` (all its tokens), ``"last"`` (its last
   token: for a causal model the state after the whole stimulus) or ``"last-word"`` (the mean
   of its last word's tokens; words split on white space, punctuation attached, as in stories).
4. Sequences are batched longest first with padding and an attention mask (``padding_side``
   ``"right"`` or ``"left"``; with left padding explicit position ids keep every token at the
   position it has alone), so a batch gives the same features as one stimulus at a time.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._validation import _check_option, _check_positive
from ..stimuli.stimulus_set import StimulusSet
from .cache import STIMULI_KIND, FeatureFileError, cache_key
from .context import FULL, ContextPlan, _check_context_tokens, plan_contexts
from .extract import CACHE_VERSION, FeatureExtractor, _CallLog, _layers_key, run_plan
from .layers import resolve_layers
from .stimulus_features import StimulusFeatures, load_stimulus_features, save_stimulus_features
from .models import _check_prepend_bos, sequence_prefix
from .prenorm import _check_last_layer
from .tokens import TokenAlignment, align_tokens

logger = logging.getLogger(__name__)

#: Pooling of a stimulus's tokens.
STIMULUS_POOLINGS = ("mean", "last", "last-word")
#: What a stimulus is read after: nothing, or the stimuli before it in its group.
STIMULUS_CONTEXTS = ("none", "group")
PADDING_SIDES = ("right", "left")


# ---------------------------------------------------------------------- extraction
def _check_stimuli(stimuli: Any) -> StimulusSet:
    if isinstance(stimuli, StimulusSet):
        return stimuli
    raise TypeError(
        f"'stimuli' must be a neuroenc StimulusSet, got {type(stimuli).__name__}. Read one with "
        "neuroenc.stimuli.read_stimuli(path, text_column=...) or build StimulusSet(ids, texts, groups)."
    )


class StimulusExtractor(FeatureExtractor):
    """Extract per-stimulus, per-layer features of stimulus sets with one loaded model.

    Parameters
    ----------
    model : str | path | LoadedModel
        As :class:`~neuroenc.features.FeatureExtractor` (alias, hub id, folder, ``.gguf``,
        loaded model).
    layers : "all" | int | float | list
        Layers to keep (see :func:`~neuroenc.features.layers.resolve_layers`).
    pooling : {"mean", "last", "last-word"}
        How a stimulus's tokens give its feature (see the module docstring).
    context : {"none", "group"}
        Each stimulus alone, or after the stimuli before it in its group.
    context_tokens : int | "full" | None
        With ``context="group"``: ``"full"`` (default), all the group's tokens before the
        stimulus (a causal model reads each group in one pass; an error naming the model's
        limit when a group does not fit), or a number of tokens (strided chunks for causal
        models, a window per stimulus for masked ones). Must be None with ``context="none"``.
    stride : int | None
        Causal models with a number of ``context_tokens``: the step between chunks (default
        ``context_tokens // 2``).
    prepend_bos : {"auto", True, False}
        The model's BOS token before every sequence (default ``"auto"``: for causal models
        whose tokenizer has one). Without it, a causal model's first position (the attention
        sink, with outlying states) is the stimulus's first token, which would dominate mean
        pooling; stimuli read at position 0 are a recorded warning.
    last_layer : {"normed", "pre-norm"}
        As :class:`~neuroenc.features.FeatureExtractor`.
    batch_size : int | "auto"
        Sequences per forward pass (``"auto"``: a token budget per device).
    padding_side : {"right", "left"}
        Where a batch's shorter sequences are padded (masked either way; explicit position ids
        with left padding).
    device, dtype, revision, gguf_file : see :func:`~neuroenc.features.load_model`
    cache_dir : path-like | None
        Folder of the HDF5 feature cache (content-hashed file names; ``None``: no cache).
    surprisal : bool
        Causal models: also the surprisal of each stimulus (bits, summed over its tokens, given
        its context), read from the same forward passes as the features
        (:class:`~neuroenc.features.surprisal.SurprisalAccumulator`), in ``attrs["surprisal"]``
        and the file's ``/surprisal``. Equal to :func:`~neuroenc.features.stimulus_surprisal`.
    verbose : bool | str | int | None

    Examples
    --------
    >>> from neuroenc.testing import tiny_gpt2
    >>> from neuroenc.stimuli import StimulusSet
    >>> s = StimulusSet(["a", "b"], ["the cat sat", "it purred softly"], groups=["p", "p"])
    >>> fs = StimulusExtractor(tiny_gpt2(), context="group").transform(s)
    >>> fs[4].shape, fs.attrs["context_text"]
    ((2, 64), ['', 'the cat sat '])
    """

    def __init__(self, model: Any, layers: Any = "all", pooling: str = "mean", context: str = "none",
                 context_tokens: int | str | None = None, stride: int | None = None,
                 prepend_bos: bool | str = "auto", last_layer: str = "normed", batch_size: int | str = "auto",
                 padding_side: str = "right", device: Any = "auto", dtype: Any = "auto",
                 revision: str | None = None, gguf_file: str | None = None,
                 cache_dir: str | os.PathLike | None = None, surprisal: bool = False,
                 verbose: bool | str | int | None = None) -> None:
        super().__init__(model, layers=layers, context_tokens=context_tokens, stride=stride,
                         pooling=pooling, prepend_bos=prepend_bos, last_layer=last_layer,
                         batch_size=batch_size, device=device, dtype=dtype, revision=revision,
                         gguf_file=gguf_file, cache_dir=cache_dir, verbose=verbose)
        self.context = context
        self.padding_side = padding_side
        self.surprisal = surprisal

    # ------------------------------------------------------------------ settings
    def _check_params(self) -> dict[str, Any]:
        _check_option("pooling", self.pooling, STIMULUS_POOLINGS)
        _check_option("context", self.context, STIMULUS_CONTEXTS)
        _check_option("padding_side", self.padding_side, PADDING_SIDES)
        _check_prepend_bos(self.prepend_bos)
        _check_last_layer(self.last_layer)
        if self.batch_size != "auto":
            _check_positive("batch_size", self.batch_size, integer=True)
        if self.context == "none":
            if self.context_tokens is not None or self.stride is not None:
                raise ValueError(
                    "context_tokens and stride apply to context='group' (each stimulus after the earlier "
                    "stimuli of its group); with context='none' every stimulus is read alone. Drop them, "
                    "or pass context='group'."
                )
            C, S = None, None
        else:
            C = _check_context_tokens(FULL if self.context_tokens is None else self.context_tokens)
            if C == FULL:
                if self.stride is not None:
                    raise ValueError("stride applies to a number of context_tokens; with context_tokens='full' "
                                     "each group is read in one pass. Drop stride.")
                S = None
            else:
                S = max(int(C) // 2, 1) if self.stride is None else self.stride
                _check_positive("stride", S, integer=True)
                S = int(S)
        return {"context_tokens": C, "stride": S, "layers": _layers_key(self.layers), "intervention": None}

    def _settings(self, stimuli: StimulusSet, checked: dict[str, Any]) -> dict[str, Any]:
        """Everything that changes the features (the cache key's content)."""
        settings = {
            "cache_version": CACHE_VERSION,
            "kind": STIMULI_KIND,
            "model_identity": self._identity(),
            "stimuli_sha256": stimuli.sha256(),
            "run": stimuli.name,
            "context": self.context,
            "context_tokens": checked["context_tokens"],
            "stride": checked["stride"],
            "pooling": self.pooling,
            "layers": checked["layers"],
            "dtype": self._dtype_name(),
            "prepend_bos": self.prepend_bos,
            "last_layer": self.last_layer,
        }
        if self.surprisal:
            settings["surprisal"] = True
        return settings

    # ------------------------------------------------------------------ cache
    def cache_path(self, stimuli: StimulusSet) -> Path | None:  # type: ignore[override]
        """Where the features of ``stimuli`` are cached (None without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        stimuli = _check_stimuli(stimuli)
        return self._path(stimuli, self._settings(stimuli, self._check_params()))

    def cached_path(self, stimuli: StimulusSet) -> Path | None:  # type: ignore[override]
        """The complete cache file holding the features of ``stimuli``, or None."""
        if self.cache_dir is None:
            return None
        stimuli = _check_stimuli(stimuli)
        found = self._find_cached(stimuli, self._check_params())
        return None if found is None else found[0]

    def _cached(self, stimuli, checked, log):
        found = self._find_cached(stimuli, checked, log)
        if found is None:
            return None
        path, wanted = found
        try:
            fs = load_stimulus_features(path, layers=wanted)
        except FeatureFileError as err:
            log.log(logging.WARNING, "%s Recomputing.", err)
            return None
        log.log(logging.INFO, "Reusing cached stimulus features %s", path)
        return fs

    # ------------------------------------------------------------------ extraction
    def transform(self, stimuli: StimulusSet) -> StimulusFeatures:  # type: ignore[override]
        """Per-stimulus features of ``stimuli`` (from the cache when there).

        Returns
        -------
        features : StimulusFeatures
            One row per stimulus, one array per requested layer (float32); ``attrs`` holds the
            provenance and the exact context of each stimulus.
        """
        stimuli = _check_stimuli(stimuli)
        log = _CallLog(self.verbose)
        checked = self._check_params()
        if self.cache_dir is not None:
            cached = self._cached(stimuli, checked, log)
            if cached is not None:
                return cached
        self.fit()
        fs = self._compute(stimuli, checked)
        if self.cache_dir is not None:
            path = self._path(stimuli, self._settings(stimuli, checked))
            save_stimulus_features(fs, path)
            fs.attrs["path"] = str(path)
            log.log(logging.INFO, "Wrote %s", path)
        return fs

    def _compute(self, stimuli: StimulusSet, checked: dict[str, Any]) -> StimulusFeatures:  # type: ignore[override]
        lm = self.model_
        log = _CallLog(self.verbose)
        layers = resolve_layers(self.layers, lm.n_layers, repr(lm.name))
        prefix = sequence_prefix(lm, self.prepend_bos)
        C, S = checked["context_tokens"], checked["stride"]
        tokens = plan_stimuli(stimuli, lm, self.context, C, S, len(prefix) + len(lm.suffix_ids))
        warnings = []
        if not prefix and lm.kind == "causal":
            at_zero = np.flatnonzero(tokens.stim_start == tokens.plan.seq_start[tokens.plan.word_seq])
            if at_zero.size:
                i = int(at_zero[0])
                warnings.append(
                    f"{at_zero.size} stimulus(es) of {stimuli.name!r} start at position 0 of their forward "
                    f"sequence with no BOS token before them (first: id {stimuli.ids[i]!r}); a causal "
                    "model's first position is its attention sink, with outlying hidden states: pass "
                    "prepend_bos='auto' or True (the model needs a BOS token)."
                )
        for message in warnings:
            log.log(logging.WARNING, "%s", message)
        pool = {"mean": "mean", "last": "last", "last-word": "mean"}[self.pooling]
        a = tokens.last_word_start if self.pooling == "last-word" else tokens.stim_start
        pooled = TokenAlignment(tokens.input_ids, np.zeros((tokens.input_ids.size, 2), dtype=np.int64),
                                np.full(tokens.input_ids.size, -1, dtype=np.int64), a, tokens.stim_stop, "")
        on_batch = acc = None
        if self.surprisal:
            from .surprisal import SurprisalAccumulator

            acc = SurprisalAccumulator(lm, tokens.input_ids, tokens.plan, tokens.stim_start, tokens.stim_stop,
                                       len(prefix))

            def on_batch(seqs, states, offset):
                acc.add(seqs, states[-1], offset)

        data, n_forwards = run_plan(lm, pooled, tokens.plan, layers, pool, self.batch_size, None,
                                    desc=stimuli.name, verbose=self.verbose, prefix_ids=prefix,
                                    last_layer=self.last_layer, padding_side=self.padding_side,
                                    on_batch=on_batch)
        policy = "alone" if self.context == "none" else ("strided" if lm.kind == "causal" else "window")
        attrs = {
            **lm.provenance(),
            "model_identity": lm.identity,
            "kind": STIMULI_KIND,
            "context": self.context,
            "policy": policy,
            "context_tokens": C,
            "stride": S,
            "pooling": self.pooling,
            "prepend_bos": self.prepend_bos,
            "prefix_ids": [int(t) for t in prefix],
            "suffix_ids": [int(t) for t in lm.suffix_ids],
            "last_layer": self.last_layer,
            "padding_side": self.padding_side,
            "layers": layers,
            "stimuli_sha256": stimuli.sha256(),
            "stimuli_source": stimuli.source,
            "neuroenc_version": __version__,
            "n_tokens": int(tokens.input_ids.size),
            "n_token_forwards": n_forwards,
            "cache_key": cache_key(self._settings(stimuli, checked)),
            "warnings": warnings,
            "context_start": tokens.context_start,
            "context_len": tokens.context_len,
            "context_text": tokens.context_text,
        }
        if acc is not None:
            attrs["surprisal"] = acc.result()
        return StimulusFeatures(data, stimuli.ids, stimuli.texts, stimuli.groups, name=stimuli.name,
                                model=lm.name, n_model_layers=lm.n_layers, attrs=attrs)

    def __repr__(self) -> str:
        return (f"StimulusExtractor(model={getattr(self.model, 'name', self.model)!r}, layers={self.layers!r}, "
                f"pooling={self.pooling!r}, context={self.context!r}, context_tokens={self.context_tokens!r}, "
                f"prepend_bos={self.prepend_bos!r})")


class StimulusTokens:
    """The token streams of a stimulus set and the forward sequences that read them.

    Attributes
    ----------
    input_ids : ndarray of int64
        The token ids of every unit (a stimulus alone, or a group) one after the other.
    stim_start, stim_stop, last_word_start : ndarray of int64, shape (n_stimuli,)
        Each stimulus's tokens, and the first token of its last word (in ``input_ids``).
    plan : ContextPlan
        The forward sequences (in ``input_ids``) and, per stimulus, the sequence it is read from.
    context_start, context_len : ndarray of int64, shape (n_stimuli,)
        The exact context of each stimulus in tokens of its unit's own text (0 = the unit's
        first token), as the story path records it.
    context_text : list of str
        The text read before each stimulus in its sequence.
    """

    def __init__(self, input_ids, stim_start, stim_stop, last_word_start, plan, context_start, context_len,
                 context_text) -> None:
        self.input_ids = input_ids
        self.stim_start = stim_start
        self.stim_stop = stim_stop
        self.last_word_start = last_word_start
        self.plan = plan
        self.context_start = context_start
        self.context_len = context_len
        self.context_text = context_text


def plan_stimuli(stimuli: StimulusSet, lm: Any, context: str = "none", context_tokens: Any = None,
                 stride: int | None = None, n_special: int = 0) -> StimulusTokens:
    """Tokenise a stimulus set and plan its forward sequences (see the module docstring).

    Parameters
    ----------
    stimuli : StimulusSet
    lm : LoadedModel
    context : {"none", "group"}
    context_tokens : int | "full" | None
        With ``"group"``: tokens of the group before each stimulus (``"full"``: all).
    stride : int | None
        Causal models with a number of ``context_tokens``: the step between chunks.
    n_special : int
        Special tokens added to every sequence (prefix + suffix), to check the model's limit.

    Raises
    ------
    ValueError
        When a sequence would not fit the model's positions (naming the stimulus or group and
        the fix); never truncated silently.
    """
    _check_option("context", context, STIMULUS_CONTEXTS)
    units = [[i] for i in range(len(stimuli))] if context == "none" else \
        [list(u) for u in stimuli.group_indices()]
    n = len(stimuli)
    stim_start = np.zeros(n, dtype=np.int64)
    stim_stop = np.zeros(n, dtype=np.int64)
    last_word = np.zeros(n, dtype=np.int64)
    ctx_start = np.zeros(n, dtype=np.int64)
    ctx_len = np.zeros(n, dtype=np.int64)
    ctx_text = [""] * n
    ids_parts, seq_start, seq_stop, word_seq = [], [], [], np.zeros(n, dtype=np.int64)
    offset = n_seq = 0
    limit = lm.max_positions
    for unit in units:
        words_of = [stimuli.texts[i].split() for i in unit]
        words = [w for ws in words_of for w in ws]
        al = align_tokens(words, lm.tokenizer)
        counts = np.asarray([len(ws) for ws in words_of])
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        last = first + counts - 1
        a, b, lw = al.word_start[first], al.word_stop[last], al.word_start[last]
        # character start of each stimulus in the unit's joined text
        lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
        char_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])[first]
        if context == "none":
            plan = ContextPlan(a.copy(), b.copy(), np.zeros(1, dtype=np.int64), a.copy(), b - a)
        else:
            spans = TokenAlignment(al.input_ids, al.offsets, al.token_word, a, b, al.text)
            C = context_tokens
            policy = "strided" if lm.kind == "causal" else "window"
            if C == FULL and lm.kind == "causal":
                plan = plan_contexts(spans, "strided", FULL, 1, 0, "causal")
            else:
                plan = plan_contexts(spans, policy, C, stride or 1, 0, lm.kind)
        longest = int(plan.seq_len.max()) + n_special
        if limit is not None and longest > limit:
            what = (f"stimulus {stimuli.ids[unit[0]]!r}" if context == "none"
                    else f"group {stimuli.groups[unit[0]]!r}" if stimuli.groups else "the stimuli")
            fix = ("shorten it" if context == "none" else
                   f"give context_tokens a number (e.g. {max((limit - n_special) * 2 // 3, 1)}: context + "
                   "stride + special tokens must fit)" if context_tokens == FULL else
                   "lower context_tokens (or stride)")
            raise ValueError(
                f"{what} needs a forward sequence of {longest} positions ({n_special} special token(s) "
                f"included), but model {lm.name!r} has at most {limit}: {fix}; neuroenc never truncates "
                "silently."
            )
        for k, i in enumerate(unit):
            cs = int(plan.context_start[k])
            stim_start[i], stim_stop[i], last_word[i] = a[k] + offset, b[k] + offset, lw[k] + offset
            ctx_start[i], ctx_len[i] = cs, int(plan.context_len[k])
            word_seq[i] = int(plan.word_seq[k]) + n_seq
            if cs < a[k]:
                ctx_text[i] = al.text[int(al.offsets[cs, 0]):int(char_start[k])]
        ids_parts.append(al.input_ids)
        seq_start.append(plan.seq_start + offset)
        seq_stop.append(plan.seq_stop + offset)
        offset += al.n_tokens
        n_seq += plan.n_sequences
    seq_start_arr = np.concatenate(seq_start).astype(np.int64)
    full_plan = ContextPlan(seq_start_arr, np.concatenate(seq_stop).astype(np.int64), word_seq,
                            ctx_start, ctx_len)
    return StimulusTokens(np.concatenate(ids_parts).astype(np.int64), stim_start, stim_stop, last_word,
                          full_plan, ctx_start, ctx_len, ctx_text)


def extract_stimulus_features(stimuli: StimulusSet, model: Any, **params: Any) -> StimulusFeatures:
    """Per-stimulus, per-layer features of a stimulus set (see :class:`StimulusExtractor`,
    whose parameters ``params`` are)."""
    return StimulusExtractor(model, **params).transform(stimuli)
