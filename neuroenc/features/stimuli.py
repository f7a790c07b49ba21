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
5. An ``intervention`` (:mod:`~neuroenc.features.interventions`) changes the model during the
   forward passes, as in the story path. The context kinds (``freeze-context``,
   ``random-context``, ``swap-context``) define "the previous tokens" relative to the last
   token of a pass, so they need ``pooling="last"``: each stimulus alone is one pass ending
   at it; with ``context="group"`` a causal model reads the intact model's chunks in paired
   passes (:mod:`~neuroenc.features.paired_context`: every token read as the current one,
   exactly as one pass per stimulus), and a masked model one window per stimulus, ending at
   it. ``swap-context:K:stimulus=ID`` takes its source from the stimulus set being read (the
   text of stimulus ``ID``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._logging import CallLog
from .._settings import Choices, Hidden, check_params, constraints_of
from ..stimuli.stimulus_set import StimulusSet
from .cache import STIMULI_KIND, FeatureFileError, cache_key
from .context import CONTEXT_TOKENS, FULL, check_context_tokens
from .extract import CACHE_VERSION, FeatureExtractor, library_versions, run_plan
from .layers import layers_key, resolve_layers
from .models import sequence_prefix
from .stimulus_features import StimulusFeatures, load_stimulus_features, save_stimulus_features
from .stimulus_plan import STIMULUS_CONTEXTS, check_stimuli, plan_stimuli
from .tokens import TokenAlignment

logger = logging.getLogger(__name__)

#: Pooling of a stimulus's tokens.
STIMULUS_POOLINGS = ("mean", "last", "last-word")
PADDING_SIDES = ("right", "left")


# ---------------------------------------------------------------------- extraction
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
        How a stimulus's tokens give its feature: their ``"mean"`` (default), its ``"last"``
        token (for a causal model the state after the whole stimulus), or ``"last-word"``, the
        mean of its last word's tokens (words split on white space, as in stories).
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
    intervention : None | str | dict | Intervention
        A model intervention applied during the forward passes (see
        :mod:`neuroenc.features.interventions`); recorded in provenance and the cache key. The
        context kinds need ``pooling="last"`` and read one pass per stimulus (see above);
        ``swap-context:K:stimulus=ID`` reads stimulus ``ID`` of the set being extracted.
    surprisal : bool
        Causal models: also the surprisal of each stimulus (bits, summed over its tokens, given
        its context), read from the same forward passes as the features
        (:class:`~neuroenc.features.surprisal.SurprisalAccumulator`), in ``attrs["surprisal"]``
        and the file's ``/surprisal``. Equal to :func:`~neuroenc.features.surprisal.stimulus_surprisal`.
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

    #: The values each parameter takes (scikit-learn's convention; read by the run config of
    #: stimulus-level data sets and ``neuroenc extract --stimuli``, see :mod:`neuroenc._settings`):
    #: :class:`~neuroenc.features.FeatureExtractor`'s where the two share a parameter, except
    #: ``pooling`` (stimulus poolings) and ``context_tokens`` (also None, its default: ``"full"``
    #: with ``context="group"``, and nothing with ``context="none"``).
    _parameter_constraints: dict = {
        **{name: constraints_of(FeatureExtractor)[name]
           for name in ("model", "layers", "stride", "prepend_bos", "last_layer", "batch_size", "device",
                        "dtype", "revision", "gguf_file", "cache_dir", "intervention")},
        "pooling": [Choices(STIMULUS_POOLINGS)],
        "context": [Choices(STIMULUS_CONTEXTS)],
        "context_tokens": [Hidden(None), *CONTEXT_TOKENS],  # None: not given (see the docstring)
        "padding_side": [Choices(PADDING_SIDES)],
        "surprisal": ["boolean"],
    }

    def __init__(self, model: Any, layers: Any = "all", pooling: str = "mean", context: str = "none",
                 context_tokens: int | str | None = None, stride: int | None = None,
                 prepend_bos: bool | str = "auto", last_layer: str = "normed", batch_size: int | str = "auto",
                 padding_side: str = "right", device: Any = "auto", dtype: Any = "auto",
                 revision: str | None = None, gguf_file: str | None = None,
                 cache_dir: str | os.PathLike | None = None, surprisal: bool = False,
                 verbose: bool | str | int | None = None, intervention: Any = None) -> None:
        super().__init__(model, layers=layers, context_tokens=context_tokens, stride=stride,
                         pooling=pooling, prepend_bos=prepend_bos, last_layer=last_layer,
                         batch_size=batch_size, device=device, dtype=dtype, revision=revision,
                         gguf_file=gguf_file, cache_dir=cache_dir, intervention=intervention,
                         verbose=verbose)
        self.context = context
        self.padding_side = padding_side
        self.surprisal = surprisal

    # ------------------------------------------------------------------ settings
    def check_params(self) -> dict[str, Any]:
        """Check the parameters together (as :meth:`FeatureExtractor.check_params`) and return
        ``context_tokens``, ``stride`` and ``layers`` resolved."""
        check_params(self)  # each parameter against its declaration
        if self.context == "none":
            if self.context_tokens is not None or self.stride is not None:
                raise ValueError(
                    "context_tokens and stride apply to context='group' (each stimulus after the earlier "
                    "stimuli of its group); with context='none' every stimulus is read alone. Drop them, "
                    "or pass context='group'."
                )
            C, S = None, None
        else:
            C = check_context_tokens(FULL if self.context_tokens is None else self.context_tokens)
            if C == FULL:
                if self.stride is not None:
                    raise ValueError("stride applies to a number of context_tokens; with context_tokens='full' "
                                     "each group is read in one pass. Drop stride.")
                S = None
            else:
                S = int(max(int(C) // 2, 1) if self.stride is None else self.stride)
        return {"context_tokens": C, "stride": S, "layers": layers_key(self.layers),
                "intervention": self._check_intervention()}

    def _check_intervention(self) -> Any:
        """The parsed intervention (None without one); the context kinds need ``pooling="last"``."""
        from .interventions import parse_intervention

        iv = parse_intervention(self.intervention)
        if iv is None or not iv.needs_last_token:
            return iv
        if self.pooling != "last":
            raise ValueError(
                f"intervention {str(iv)!r} changes the context of the last token of each forward pass, so "
                f"stimulus features need pooling='last' (got pooling={self.pooling!r}); pass pooling='last' "
                "(each stimulus is then read in its own pass, ending at its last token)."
            )
        if self.surprisal:
            raise ValueError(
                f"surprisal=True reads every token of a pass, but intervention {str(iv)!r} defines the context "
                "of the last token only; drop surprisal (use neuroenc.features.lm_quality for the model's "
                "surprisal under it)."
            )
        return iv

    def _settings(self, stimuli: StimulusSet, checked: dict[str, Any]) -> dict[str, Any]:
        """Everything that changes the features (the cache key's content)."""
        settings = {
            "cache_version": CACHE_VERSION,
            "library_versions": library_versions(),
            "kind": STIMULI_KIND,
            "model_identity": self.model_identity(),
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
        if checked["intervention"] is not None:  # absent without one: older cache keys stay valid
            settings["intervention"] = checked["intervention"].to_dict()
        return settings

    # ------------------------------------------------------------------ cache
    def cache_path(self, stimuli: StimulusSet) -> Path | None:  # type: ignore[override]
        """Where the features of ``stimuli`` are cached (None without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        stimuli = check_stimuli(stimuli)
        return self._path(stimuli, self._settings(stimuli, self.check_params()))

    def cached_path(self, stimuli: StimulusSet) -> Path | None:  # type: ignore[override]
        """The complete cache file holding the features of ``stimuli``, or None."""
        if self.cache_dir is None:
            return None
        stimuli = check_stimuli(stimuli)
        found = self._find_cached(stimuli, self.check_params())
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
        stimuli = check_stimuli(stimuli)
        log = CallLog(self.verbose, logger)
        checked = self.check_params()
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
        log = CallLog(self.verbose, logger)
        layers = resolve_layers(self.layers, lm.n_layers, repr(lm.name))
        prefix = sequence_prefix(lm, self.prepend_bos)
        C, S = checked["context_tokens"], checked["stride"]
        iv = checked["intervention"]
        # the context kinds: one pass per stimulus, or, in a causal model, paired passes
        # (neuroenc.features.paired_context) over the same chunks as the intact model
        per_stimulus = iv is not None and iv.needs_last_token and lm.kind != "causal"
        tokens = plan_stimuli(stimuli, lm, self.context, C, S, len(prefix) + len(lm.suffix_ids),
                              window=per_stimulus)
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

        data, n_forwards = run_plan(lm, pooled, tokens.plan, layers, pool, self.batch_size, iv,
                                    desc=stimuli.name, verbose=self.verbose, prefix_ids=prefix,
                                    last_layer=self.last_layer, padding_side=self.padding_side,
                                    on_batch=on_batch, sources=stimuli)
        policy = "alone" if self.context == "none" else (
            "strided" if lm.kind == "causal" and not per_stimulus else "window")
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
            "intervention": None if iv is None else iv.to_dict(),
            "layers": layers,
            "stimuli_sha256": stimuli.sha256(),
            "stimuli_source": stimuli.source,
            "neuroenc_version": __version__,
            "library_versions": library_versions(),
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
                f"prepend_bos={self.prepend_bos!r}"
                + ("" if self.intervention is None else f", intervention={self.intervention!r}") + ")")


def extract_stimulus_features(stimuli: StimulusSet, model: Any, **params: Any) -> StimulusFeatures:
    """Per-stimulus, per-layer features of a stimulus set (see :class:`StimulusExtractor`,
    whose parameters ``params`` are)."""
    return StimulusExtractor(model, **params).transform(stimuli)
