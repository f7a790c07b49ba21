"""Tiny, seeded models and transcripts for tests (no network, no downloads, seconds to build).

Every builder is deterministic: the same arguments give the same tokenizer, the same weights
and therefore the same features. Models are returned as
:class:`neuroenc.features.models.LoadedModel` (``.model`` is the transformer without its head,
``.tokenizer`` a fast tokenizer with offset mappings). Pass ``path=`` to also save the model
and tokenizer there (``save_pretrained``) and load them back from that folder, so that the
load-from-local-folder path is exercised too.

Examples
--------
>>> from neuroenc.testing import tiny_gpt2, tiny_transcript
>>> lm = tiny_gpt2(n_layer=2)
>>> lm.n_layers, lm.hidden_size, lm.kind
(3, 64, 'causal')
>>> len(tiny_transcript(n_words=20))
20
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

#: The fixed English text the tiny tokenizers are trained on (Lewis Carroll, 1865, public
#: domain), also the source of :func:`tiny_transcript`'s words.
TINY_TEXT = (
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    "nothing to do: once or twice she had peeped into the book her sister was reading, but it "
    "had no pictures or conversations in it, 'and what is the use of a book,' thought Alice "
    "'without pictures or conversations?' So she was considering in her own mind (as well as "
    "she could, for the hot day made her feel very sleepy and stupid), whether the pleasure of "
    "making a daisy-chain would be worth the trouble of getting up and picking the daisies, "
    "when suddenly a White Rabbit with pink eyes ran close by her. There was nothing so very "
    "remarkable in that; nor did Alice think it so very much out of the way to hear the Rabbit "
    "say to itself, 'Oh dear! Oh dear! I shall be late!' (when she thought it over afterwards, "
    "it occurred to her that she ought to have wondered at this, but at the time it all seemed "
    "quite natural); but when the Rabbit actually took a watch out of its waistcoat-pocket, and "
    "looked at it, and then hurried on, Alice started to her feet, for it flashed across her "
    "mind that she had never before seen a rabbit with either a waistcoat-pocket, or a watch "
    "to take out of it, and burning with curiosity, she ran across the field after it, and "
    "fortunately was just in time to see it pop down a large rabbit-hole under the hedge. In "
    "another moment down went Alice after it, never once considering how in the world she was "
    "to get out again."
)

_BPE_SPECIAL = "<|endoftext|>"
_BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for the duration of the block without touching the global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def tiny_tokenizer(kind: str = "bpe", bos: bool = False, vocab_size: int = 400):
    """A small fast tokenizer trained in code on :data:`TINY_TEXT` (deterministic).

    Parameters
    ----------
    kind : {"bpe", "wordpiece"}
        ``"bpe"``: byte-level BPE as GPT-2's and Llama's (every string maps to tokens);
        ``"wordpiece"``: a lower-casing BERT WordPiece tokenizer that adds ``[CLS] ... [SEP]``
        and drops control characters (so some words map to no token).
    bos : bool
        For ``"bpe"``: add a ``<|endoftext|>`` token at the start of every text, as Llama's
        tokenizers add ``<s>``.
    vocab_size : int
        Target vocabulary size of the BPE (the WordPiece vocabulary holds every character and
        every word of the text).

    Returns
    -------
    tokenizer : transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from ._validation import _check_option

    _check_option("kind", kind, ("bpe", "wordpiece"))
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=1, special_tokens=[_BPE_SPECIAL],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        tok.train_from_iterator([TINY_TEXT], trainer=trainer)
        if bos:
            bos_id = tok.token_to_id(_BPE_SPECIAL)
            tok.post_processor = processors.TemplateProcessing(
                single=f"{_BPE_SPECIAL} $A", pair=f"{_BPE_SPECIAL} $A $B",
                special_tokens=[(_BPE_SPECIAL, bos_id)],
            )
        else:
            tok.post_processor = processors.ByteLevel(trim_offsets=False)
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token=_BPE_SPECIAL, eos_token=_BPE_SPECIAL,
            unk_token=_BPE_SPECIAL, pad_token=_BPE_SPECIAL,
        )
    # WordPiece's trainer breaks ties in a random order, so the vocabulary is built directly
    # (deterministic): the special tokens, every character alone and as a "##" suffix, and
    # every word of the text. Words outside the text fall apart into characters.
    normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=True, strip_accents=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pieces = [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(TINY_TEXT))]
    chars = sorted({c for w in pieces for c in w})
    vocab: dict[str, int] = {}
    for token in [*_BERT_SPECIAL, *chars, *(f"##{c}" for c in chars), *sorted(set(pieces))]:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
        cls_token="[CLS]", mask_token="[MASK]",
    )


def _finish(model: Any, tokenizer: Any, name: str, path: str | os.PathLike | None):
    from .features.models import LoadedModel, load_model

    model.eval()
    if path is None:
        return LoadedModel.from_objects(model, tokenizer, name=name)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_model(path, device="cpu", dtype="float32")


def tiny_gpt2(
    n_layer: int = 4,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 256,
    seed: int = 0,
    path: str | os.PathLike | None = None,
):
    """A tiny random GPT-2 (causal, learned absolute positions) with :func:`tiny_tokenizer`.

    Returns
    -------
    loaded : neuroenc.features.models.LoadedModel
        With ``n_layer + 1`` hidden states of ``n_embd`` columns and ``n_positions``
        positions; loaded back from ``path`` if given.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer("bpe")
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
        n_head=n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with _seeded(seed):
        model = GPT2LMHeadModel(config)
    return _finish(model, tokenizer, "tiny-gpt2", path)


def tiny_llama(
    n_layer: int = 4,
    hidden_size: int = 64,
    n_head: int = 4,
    n_kv_head: int = 2,
    max_positions: int = 256,
    bos: bool = True,
    seed: int = 0,
    path: str | os.PathLike | None = None,
):
    """A tiny random Llama (causal, rotary positions, grouped-query attention, RMSNorm).

    Its tokenizer adds a BOS token to every text by default (``bos=True``), as Llama's do, so
    the extractor's handling of special prefix tokens is exercised.

    Returns
    -------
    loaded : neuroenc.features.models.LoadedModel
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer("bpe", bos=bos)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head,
        max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with _seeded(seed):
        model = LlamaForCausalLM(config)
    return _finish(model, tokenizer, "tiny-llama", path)


def tiny_bert(
    n_layer: int = 4,
    hidden_size: int = 64,
    n_head: int = 4,
    max_positions: int = 128,
    seed: int = 0,
    path: str | os.PathLike | None = None,
):
    """A tiny random BERT (masked, bidirectional) with a WordPiece :func:`tiny_tokenizer`.

    Returns
    -------
    loaded : neuroenc.features.models.LoadedModel
    """
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = tiny_tokenizer("wordpiece")
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=n_layer,
        num_attention_heads=n_head, intermediate_size=2 * hidden_size,
        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
    )
    with _seeded(seed):
        model = BertForMaskedLM(config)
    return _finish(model, tokenizer, "tiny-bert", path)


def tiny_transcript(n_words: int = 60, name: str = "tiny", start: float = 0.5, rate: float = 3.0):
    """A transcript of the first ``n_words`` words of :data:`TINY_TEXT` (cycled if longer).

    Words follow each other every ``1 / rate`` seconds from ``start``; each lasts 80% of
    that.

    Returns
    -------
    transcript : neuroenc.stimuli.Transcript
    """
    from .stimuli.transcript import Transcript

    base = TINY_TEXT.split()
    words = [base[i % len(base)] for i in range(int(n_words))]
    onsets = start + np.arange(len(words)) / float(rate)
    return Transcript(words, onsets, onsets + 0.8 / float(rate), name=name)
