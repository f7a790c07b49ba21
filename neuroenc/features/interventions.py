"""Model interventions: what to change in a transformer's stack of blocks, as a small value.

An :class:`Intervention` says *what* to change; :func:`apply_intervention` (in
:mod:`neuroenc.features.interventions_patch`) changes a loaded model accordingly for the
duration of a ``with`` block. The spec is also a string for the command line
(``neuroenc extract --intervention skip:10-14``), a JSON-able dict for provenance and cache
keys (:meth:`Intervention.to_dict`), and a readable :func:`str` that parses back to itself.

Blocks are numbered from 0 (the first transformer block) to ``n_blocks - 1``; hidden state
``l`` is the output of block ``l - 1`` and hidden state 0 is the embeddings, so hidden state
``k`` is the *input* of block ``k``. All ranges are inclusive: ``skip:10-14`` drops blocks
10, 11, 12, 13 and 14.

Grammar (``I``, ``J``, ``K``, ``N``, ``S`` are non-negative integers). A spec is
``kind:BLOCKS[:OPTION...]``; options are ``seed=S``, ``keep-sink`` and, for
``swap-context``, the source (``text=...`` or ``stimulus=ID``)::

    order:B[,B...]           run the listed blocks in this sequence; each B is a block K or
                             an inclusive range I-J (I > J runs backwards: 5-3 is 5,4,3).
                             One spec for skip, repeat, reverse, shuffle and Sun et al.'s
                             "middle repeat": order:0-13,14,14,14,17-29
    skip:I[-J]               drop blocks I..J; the residual stream passes through unchanged
                             (alias of order: 0..I-1, J+1..last)
    repeat:K[xN]             run block K N times in a row (default N=2; N counts all runs):
                             a *longer* stack (alias of order: 0..K, K x (N-1), K+1..last).
                             Sun et al.'s middle repeat keeps the depth: use order:
    reverse:I-J              run blocks I..J in reverse order (alias of order: .., J-I, ..)
    shuffle:I-J[:seed=S]     run blocks I..J in a seeded random order other than the intact
                             one (default seed 0; alias of the order it draws)
    swap:I[-J],K[-L]         exchange blocks I..J with blocks K..L (equal lengths, no overlap;
                             L defaults to K + J - I): swap:3,7 or swap:10-19,20-29
    parallel:I-J             run blocks I..J on the same input and average their outputs
                             (Sun et al. 2024, "Transformer Layers as Painters")
    no-attention:K[-J]       blocks K..J skip their attention sub-block and keep only the MLP
    freeze-context:K[-J]     in blocks K..J the previous tokens keep their hidden state K
                             (Ben-Artzy & Schwartz 2024, "Attend first, consolidate later")
    random-context:K[-J][:seed=S][:keep-sink]
                             at block K the previous tokens' states become random vectors with
                             the norms of their hidden state K, held through block J (drawn per
                             sequence from S and the sequence's tokens: batching never changes
                             them); keep-sink leaves the first token (the attention sink) with
                             its own hidden state K
    swap-context:K[-J]:SOURCE  in blocks K..J the previous tokens' states are those of another
                             prompt, SOURCE = text=WORDS or stimulus=ID (Ben-Artzy & Schwartz's
                             third manipulation): block l reads the source's hidden state l at
                             the previous positions

**Ranges of the layer-wise kinds.** For ``no-attention`` and the three context kinds a bare
``K`` means *K to the last block* (``no-attention:20`` on a 30-block model is
``no-attention:20-29``), as in the papers, which manipulate "the upper layers"; write
``K-J`` for an explicit range (``no-attention:20-20`` is block 20 alone). After block ``J``
the blocks run as usual on whatever states the range left. For ``skip`` a bare ``I`` is one
block.

**How an order maps onto hidden states.** The model keeps its ``n_blocks`` positions (so it
returns ``n_blocks + 1`` hidden states, comparable layer by layer with the intact model).
The blocks at the start of the order that match the intact order (0, 1, 2, ...) keep their
positions, and so do those at the end that match (..., last - 1, last); the blocks between
fill the positions between one per position, from the left. Positions left over pass their
input through (a shorter stack: a skipped block's output is its input); blocks left over (a
longer stack) run chained at the last position of the middle, or, when the middle has no
position, at the position before it (so ``repeat:KxN`` runs block K N times at position K).
Every alias gives exactly the hidden states of its ``order:`` form
(:meth:`Intervention.as_order`).

**The context kinds** define "previous tokens" relative to a *current* token, by default the
last real token of each forward pass (``handle.query_positions`` sets it): every other
position is context. Read literally that is one forward pass per predicted token (the
extractor's ``window`` policy with ``last`` pooling). In a causal model the previous tokens'
states under these kinds do not depend on which token is current, so one *paired* pass (a
context stream beside a current-token stream, :mod:`neuroenc.features.paired_context`) reads
every token as the current one, exactly: the extractor's ``strided`` policy and
:func:`neuroenc.features.lm_quality` with ``context_tokens="full"`` use it; see
:func:`check_context_policy`.

``None`` and ``"none"`` mean no intervention (:func:`parse_intervention` returns ``None``).

References
----------
Sun, Pickett, Nain & Jones (2024/2025). Transformer Layers as Painters. AAAI 2025,
arXiv:2407.09298.
Ben-Artzy & Schwartz (2024). Attend First, Consolidate Later: On the Importance of Attention in
Different LLM Layers. BlackboxNLP 2024, arXiv:2409.03621.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import _check_option

#: The intervention kinds, in the order the docs list them.
KINDS = (
    "skip",
    "repeat",
    "reverse",
    "shuffle",
    "swap",
    "parallel",
    "no-attention",
    "freeze-context",
    "random-context",
    "swap-context",
    "order",
)

#: Kinds that define "previous tokens" relative to the last token of each forward pass.
CONTEXT_KINDS = ("freeze-context", "random-context", "swap-context")
#: Kinds whose bare ``K`` means "block K to the last block".
_OPEN_KINDS = ("no-attention",) + CONTEXT_KINDS
#: Kinds that are aliases of an ``order:`` spec.
ORDER_ALIASES = ("skip", "repeat", "reverse", "shuffle", "swap")

_GRAMMAR = (
    "order:B[,B...] (B = K or I-J), skip:I[-J], repeat:K[xN], reverse:I-J, shuffle:I-J[:seed=S], "
    "swap:I[-J],K[-L], parallel:I-J, no-attention:K[-J], freeze-context:K[-J], "
    "random-context:K[-J][:seed=S][:keep-sink], swap-context:K[-J]:text=WORDS|stimulus=ID"
)
_RANGE_KINDS = ("skip", "reverse", "shuffle", "parallel")
_SEED_KINDS = ("shuffle", "random-context")
#: How ``random-context`` draws its vectors (recorded in :meth:`Intervention.to_dict`, hence in
#: cache keys): one generator per token, seeded from the seed and the tokens up to it.
RANDOM_CONTEXT_NOISE = "per-prefix"


@dataclass(frozen=True)
class Step:
    """What one block position computes under an intervention.

    Attributes
    ----------
    mode : {"chain", "mean"}
        ``"chain"`` runs ``blocks`` one after the other (an empty chain passes its input
        through unchanged); ``"mean"`` runs every block of ``blocks`` on the position's input
        and averages their outputs.
    blocks : tuple of int
        The blocks it runs.
    """

    mode: str
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class Intervention:
    """An intervention on a transformer's blocks (see the module docstring for the grammar).

    Build one with :func:`parse_intervention` rather than by hand.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    start : int
        First block (``skip``, ``reverse``, ``shuffle``, ``parallel``, ``no-attention``, the
        context kinds), the repeated block (``repeat``), the start of the first swapped range
        (``swap``); for ``order`` the first block of the order.
    stop : int | None
        Last block, inclusive (``None`` for ``no-attention`` and the context kinds means "to
        the last block"; unused for ``repeat`` and ``order``). For ``swap`` the end of the
        first range.
    n : int
        How many times ``repeat`` runs its block (all runs counted); 1 for other kinds.
    seed : int | None
        The seed of ``shuffle`` and ``random-context``.
    other : int | None
        For ``swap``: the start of the second range (it has the first range's length).
    order : tuple of int | None
        For ``order``: the block sequence.
    keep_sink : bool
        For ``random-context``: leave the first token of each sequence (the attention sink)
        with its own hidden state.
    source : str | None
        For ``swap-context``: ``"text=WORDS"`` or ``"stimulus=ID"``.
    """

    kind: str
    start: int
    stop: int | None = None
    n: int = 1
    seed: int | None = None
    other: int | None = None
    order: tuple[int, ...] | None = None
    keep_sink: bool = False
    source: str | None = None

    # --------------------------------------------------------------- views
    def __str__(self) -> str:
        k, i, j = self.kind, self.start, self.stop
        if k == "order":
            return "order:" + _format_order(self.order)
        if k == "repeat":
            return f"repeat:{i}x{self.n}"
        if k == "swap":
            if i == j:
                return f"swap:{i},{self.other}"
            return f"swap:{i}-{j},{self.other}-{self.other + j - i}"
        if k in _OPEN_KINDS:
            text = f"{k}:{i}" if j is None else f"{k}:{i}-{j}"
            if k == "random-context":
                text += f":seed={self.seed}" + (":keep-sink" if self.keep_sink else "")
            if k == "swap-context":
                text += f":{self.source}"
            return text
        text = f"{k}:{i}" if i == j else f"{k}:{i}-{j}"
        if k == "shuffle":
            text += f":seed={self.seed}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for provenance and cache keys; :func:`parse_intervention` reads it.

        ``shuffle`` also records its block ``order`` (from the seed), so a cache key never
        silently depends on numpy's random stream; ``random-context`` records how its random
        vectors are drawn (``noise``: :data:`RANDOM_CONTEXT_NOISE`), so features drawn another
        way are never taken from the cache. Keys that hold their default (``keep_sink``
        False, an open ``stop``) are left out, so older specs keep their cache keys.
        """
        out: dict[str, Any] = {"kind": self.kind, "start": int(self.start)}
        if self.kind == "order":
            out["order"] = [int(b) for b in self.order]
        elif self.kind == "repeat":
            out["n"] = int(self.n)
        elif self.kind not in CONTEXT_KINDS or self.stop is not None:
            out["stop"] = None if self.stop is None else int(self.stop)
        if self.kind == "swap":
            out["other"] = int(self.other)
        if self.kind in _SEED_KINDS:
            out["seed"] = int(self.seed)
        if self.kind == "shuffle":
            out["order"] = [int(b) for b in self._shuffle_order()]
        if self.kind == "random-context":
            out["noise"] = RANDOM_CONTEXT_NOISE
        if self.keep_sink:
            out["keep_sink"] = True
        if self.kind == "swap-context":
            out["source"] = self.source
        out["spec"] = str(self)
        return out

    @property
    def needs_last_token(self) -> bool:
        """Whether "previous tokens" are defined relative to the last token of each sequence.

        True for the context kinds: in one forward pass every position but the current
        token's is treated as context, so each word needs its own forward pass that ends at
        that word (the extractor's ``window`` policy with ``last`` pooling), or, in a causal
        model, a paired pass (:mod:`neuroenc.features.paired_context`); see
        :func:`check_context_policy`.
        """
        return self.kind in CONTEXT_KINDS

    # ------------------------------------------------------------ the plan
    def check(self, n_blocks: int) -> "Intervention":
        """Raise a ValueError unless every block this intervention names exists."""
        top = self.last_block()
        if top >= n_blocks:
            raise ValueError(
                f"intervention {str(self)!r} needs block {top} but the model has {n_blocks} "
                f"blocks (0..{n_blocks - 1}); pick blocks in 0..{n_blocks - 1}."
            )
        return self

    def last_block(self) -> int:
        """The highest block index this intervention names (a model needs more blocks)."""
        if self.kind == "order":
            return max(self.order)
        if self.kind == "swap":
            return self.other + self.stop - self.start
        if self.stop is None:
            return self.start
        return self.stop

    def block_range(self, n_blocks: int) -> range:
        """The blocks ``start..stop`` (an open ``stop`` is the last block)."""
        stop = n_blocks - 1 if self.stop is None else self.stop
        return range(self.start, stop + 1)

    def blocks(self, n_blocks: int) -> list[int]:
        """The block positions whose computation changes (sorted)."""
        self.check(n_blocks)
        if self.kind in ("order",) + ORDER_ALIASES:
            intact = [Step("chain", (p,)) for p in range(n_blocks)]
            return [p for p, step in enumerate(self.plan(n_blocks)) if step != intact[p]]
        return list(self.block_range(n_blocks))

    def as_order(self, n_blocks: int) -> "Intervention":
        """The ``order:`` spec with the same hidden states (for ``order`` and its aliases).

        Examples
        --------
        >>> str(parse_intervention("skip:2-3").as_order(6))
        'order:0-1,4-5'
        >>> str(parse_intervention("repeat:1x3").as_order(4))
        'order:0-1,1,1-3'
        """
        if self.kind == "order":
            return self.check(n_blocks)
        seq = self._order_sequence(n_blocks)
        if not seq:
            raise ValueError(f"intervention {str(self)!r} leaves no block to run; it has no order: form.")
        return Intervention(kind="order", start=seq[0], order=tuple(seq))

    def _order_sequence(self, n_blocks: int) -> list[int]:
        """The block sequence of ``order`` or an alias (empty when every block is skipped)."""
        self.check(n_blocks)
        if self.kind == "order":
            return list(self.order)
        if self.kind not in ORDER_ALIASES:
            raise ValueError(
                f"intervention {str(self)!r} is not a block order; only {', '.join(ORDER_ALIASES)} "
                "have an order: form."
            )
        blocks = list(range(n_blocks))
        i, j = self.start, self.stop
        if self.kind == "skip":
            seq = blocks[:i] + blocks[j + 1:]
        elif self.kind == "repeat":
            seq = blocks[:i + 1] + [i] * (self.n - 1) + blocks[i + 1:]
        else:
            mapping = self._order_map()
            seq = [mapping.get(p, p) for p in blocks]
        return seq

    def plan(self, n_blocks: int) -> list[Step]:
        """What each block position computes, as one :class:`Step` per position.

        The model keeps its ``n_blocks`` positions (so it still returns ``n_blocks + 1``
        hidden states, comparable layer by layer with the intact model); position ``p``
        produces hidden state ``p + 1``:

        - ``order`` and its aliases: the alignment of the module docstring (``skip``:
          positions I..J pass their input through, so hidden states I+1..J+1 equal hidden
          state I; ``repeat``: position K runs block K N times; ``reverse`` / ``shuffle`` /
          ``swap``: position p runs another block of the range);
        - ``parallel``: positions I..J-1 pass their input through and position J averages
          blocks I..J run on that same input (hidden state J+1 is the average);
        - ``no-attention`` and the context kinds keep the order of blocks (every position
          runs its own block, changed inside) and return the intact plan.
        """
        self.check(n_blocks)
        if self.kind in ("order",) + ORDER_ALIASES:
            return _align_order(tuple(self._order_sequence(n_blocks)), n_blocks)
        plan = [Step("chain", (p,)) for p in range(n_blocks)]
        if self.kind == "parallel":
            i, j = self.start, self.stop
            for p in range(i, j):
                plan[p] = Step("chain", ())
            plan[j] = Step("mean", tuple(range(i, j + 1)))
        return plan

    def _order_map(self) -> dict[int, int]:
        """Position -> block for the order-changing kinds."""
        i, j = self.start, self.stop
        if self.kind == "reverse":
            return {p: i + j - p for p in range(i, j + 1)}
        if self.kind == "swap":
            pairs = {i + d: self.other + d for d in range(j - i + 1)}
            return {**pairs, **{b: p for p, b in pairs.items()}}
        order = self._shuffle_order()
        return {p: int(b) for p, b in zip(range(i, j + 1), order)}

    def _shuffle_order(self) -> list[int]:
        """A seeded permutation of the range, redrawn until it differs from the intact order."""
        rng = np.random.default_rng(self.seed)
        blocks = np.arange(self.start, self.stop + 1)
        order = rng.permutation(blocks)
        while np.array_equal(order, blocks):
            order = rng.permutation(blocks)
        return [int(b) for b in order]


def _align_order(order: tuple[int, ...], n_blocks: int) -> list[Step]:
    """One :class:`Step` per position for a block sequence (see the module docstring)."""
    seq, m, n = list(order), len(order), n_blocks
    a = 0
    while a < min(m, n) and seq[a] == a:
        a += 1
    c = 0
    while c < min(m - a, n - a) and seq[m - 1 - c] == n - 1 - c:
        c += 1
    middle, first, n_pos = tuple(seq[a:m - c]), a, n - c - a
    plan = [Step("chain", (p,)) for p in range(n)]
    if n_pos == 0:
        if middle and a > 0:
            plan[a - 1] = Step("chain", (a - 1,) + middle)
        elif middle:
            plan[a] = Step("chain", middle + (a,))
        return plan
    for d in range(n_pos):
        p = first + d
        if d < len(middle) and (d < n_pos - 1 or len(middle) == n_pos):
            plan[p] = Step("chain", (middle[d],))
        elif d == n_pos - 1 and len(middle) > n_pos:
            plan[p] = Step("chain", middle[d:])
        else:
            plan[p] = Step("chain", ())
    return plan


def _format_order(order: tuple[int, ...]) -> str:
    """``0,1,2,5,4,3,7`` -> ``0-2,5-3,7``: runs of consecutive blocks (up or down) as ranges."""
    parts, k = [], 0
    while k < len(order):
        j = k
        step = order[k + 1] - order[k] if k + 1 < len(order) else 0
        if step in (1, -1):
            while j + 1 < len(order) and order[j + 1] - order[j] == step:
                j += 1
        parts.append(str(order[k]) if j == k else f"{order[k]}-{order[j]}")
        k = j + 1
    return ",".join(parts)


# ---------------------------------------------------------------------- parsing
_INT = r"(\d+)"
_PATTERNS = {
    "skip": re.compile(rf"^{_INT}(?:-{_INT})?$"),
    "repeat": re.compile(rf"^{_INT}(?:x{_INT})?$"),
    "reverse": re.compile(rf"^{_INT}-{_INT}$"),
    "shuffle": re.compile(rf"^{_INT}-{_INT}(?::seed={_INT})?$"),
    "swap": re.compile(rf"^{_INT}(?:-{_INT})?,{_INT}(?:-{_INT})?$"),
    "parallel": re.compile(rf"^{_INT}(?:-{_INT})?$"),
    "no-attention": re.compile(rf"^{_INT}(?:-{_INT})?$"),
    "freeze-context": re.compile(rf"^{_INT}(?:-{_INT})?$"),
    "random-context": re.compile(rf"^{_INT}(?:-{_INT})?((?::(?:seed=\d+|keep-sink))*)$"),
    "swap-context": re.compile(rf"^{_INT}(?:-{_INT})?$"),
    "order": re.compile(r"^\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*$"),
}
_SOURCE_KEYS = ("text", "stimulus")


def parse_intervention(spec: str | Mapping[str, Any] | Intervention | None) -> Intervention | None:
    """An :class:`Intervention` from a spec string, a dict or an Intervention.

    Parameters
    ----------
    spec : str | dict | Intervention | None
        A string in the grammar of this module (``"skip:10-14"``, ``"repeat:12x3"``,
        ``"shuffle:8-15:seed=0"``, ``"no-attention:20"``, ``"freeze-context:15"``...), a dict
        as written by :meth:`Intervention.to_dict`, an Intervention (returned as is), or
        ``None`` / ``"none"`` for no intervention.

    Returns
    -------
    intervention : Intervention | None
        ``None`` when there is no intervention.

    Examples
    --------
    >>> str(parse_intervention("skip:10-14"))
    'skip:10-14'
    >>> str(parse_intervention({"kind": "repeat", "start": 12, "n": 3}))
    'repeat:12x3'
    >>> parse_intervention("order:0-2,2,5").order
    (0, 1, 2, 2, 5)
    >>> parse_intervention("swap:3,7").to_dict()
    {'kind': 'swap', 'start': 3, 'stop': 3, 'other': 7, 'spec': 'swap:3,7'}
    """
    if spec is None or isinstance(spec, Intervention):
        return spec
    if isinstance(spec, str):
        return _parse_string(spec)
    if isinstance(spec, Mapping):
        return _parse_dict(spec)
    raise TypeError(
        f"An intervention must be a spec string (e.g. 'skip:10-14'), a dict, an Intervention or "
        f"None, got {type(spec).__name__}."
    )


def _parse_string(spec: str) -> Intervention | None:
    raw_kind, _, raw_rest = spec.strip().partition(":")
    source = None
    if raw_kind.strip().lower().replace("_", "-") == "swap-context":
        raw_blocks, _, raw_source = raw_rest.partition(":")
        source = _check_source(spec, raw_source)
        spec_blocks = f"swap-context:{raw_blocks}"
    else:
        spec_blocks = spec
    text = spec_blocks.strip().lower().replace(" ", "")
    if text in ("", "none"):
        return None
    kind, sep, rest = text.partition(":")
    kind = kind.replace("_", "-")
    if kind not in KINDS:
        raise ValueError(
            f"Invalid intervention {spec!r}: unknown kind {kind!r}. Allowed kinds are "
            f"{', '.join(repr(k) for k in KINDS)}; the grammar is {_GRAMMAR}."
        )
    match = _PATTERNS[kind].match(rest) if sep else None
    if match is None:
        raise ValueError(
            f"Invalid intervention {spec!r}: {kind!r} takes the form "
            f"{_form_of(kind)} (block indices from 0, ranges inclusive)."
        )
    if kind == "order":
        order = _parse_order(spec, rest)
        return _build(spec, kind, order[0], None, 1, None, order=order)
    if kind == "random-context":
        options = [o for o in match.group(3).split(":") if o]
        seeds = [int(o[5:]) for o in options if o.startswith("seed=")]
        if len(seeds) > 1 or options.count("keep-sink") > 1:
            raise ValueError(f"Invalid intervention {spec!r}: an option is given twice.")
        stop = None if match.group(2) is None else int(match.group(2))
        return _build(spec, kind, int(match.group(1)), stop, 1, seeds[0] if seeds else 0,
                      keep_sink="keep-sink" in options)
    g = [None if x is None else int(x) for x in match.groups()]
    if kind == "repeat":
        return _build(spec, kind, g[0], None, 2 if g[1] is None else g[1], None)
    if kind == "swap":
        stop = g[0] if g[1] is None else g[1]
        if g[3] is not None and g[3] - g[2] != stop - g[0]:
            raise ValueError(
                f"Invalid intervention {spec!r}: 'swap' exchanges two ranges of the same length, got "
                f"{stop - g[0] + 1} and {g[3] - g[2] + 1} blocks."
            )
        return _build(spec, kind, g[0], stop, 1, None, other=g[2])
    if kind in ("freeze-context", "no-attention"):
        return _build(spec, kind, g[0], g[1], 1, None)
    if kind == "swap-context":
        return _build(spec, kind, g[0], g[1], 1, None, source=source)
    stop = g[0] if g[1] is None else g[1]
    seed = (0 if g[2] is None else g[2]) if kind == "shuffle" else None
    return _build(spec, kind, g[0], stop, 1, seed)


def _form_of(kind: str) -> str:
    forms = dict(item.split(":", 1) for item in _GRAMMAR.split(", "))
    return f"'{kind}:{forms[kind]}'"


def _parse_order(spec: Any, rest: str) -> tuple[int, ...]:
    order: list[int] = []
    for item in rest.split(","):
        lo, _, hi = item.partition("-")
        i, j = int(lo), int(hi or lo)
        order.extend(range(i, j + 1) if i <= j else range(i, j - 1, -1))
    return tuple(order)


def _check_source(spec: Any, raw: str) -> str:
    """``text=WORDS`` or ``stimulus=ID`` (the key in lower case, the value as given)."""
    key, sep, value = raw.partition("=")
    key = key.strip().lower()
    if not sep or key not in _SOURCE_KEYS or not value.strip():
        raise ValueError(
            f"Invalid intervention {spec!r}: 'swap-context' takes the form "
            "'swap-context:K[-J]:text=WORDS' or 'swap-context:K[-J]:stimulus=ID' (the prompt whose "
            f"states replace the previous tokens'), got source {raw!r}."
        )
    return f"{key}={value.strip()}"


def _parse_dict(spec: Mapping[str, Any]) -> Intervention | None:
    if "kind" not in spec:
        raise ValueError(
            f"An intervention dict needs a 'kind' key (one of {', '.join(repr(k) for k in KINDS)}), "
            f"got keys {sorted(spec)}."
        )
    kind = str(spec["kind"]).lower().replace("_", "-")
    if kind == "none":
        return None
    _check_option("intervention kind", kind, KINDS)
    known = {"kind", "start", "stop", "n", "seed", "other", "order", "noise", "spec", "keep_sink", "source"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(
            f"Invalid intervention dict {dict(spec)!r}: unknown keys {unknown}; allowed keys are "
            f"{sorted(known)}."
        )
    if kind == "order":
        order = spec.get("order")
        if not isinstance(order, (list, tuple)) or not order:
            raise ValueError(f"Invalid intervention dict {dict(spec)!r}: 'order' needs a non-empty "
                             "list of blocks under 'order'.")
        blocks = tuple(_as_int({"order": b}, "order") for b in order)
        return _build(dict(spec), kind, blocks[0], None, 1, None, order=blocks)
    if "start" not in spec:
        raise ValueError(f"Invalid intervention dict {dict(spec)!r}: it needs a 'start' block.")
    start = _as_int(spec, "start")
    stop = _as_int(spec, "stop") if spec.get("stop") is not None else None
    n = _as_int(spec, "n") if spec.get("n") is not None else (2 if kind == "repeat" else 1)
    seed = _as_int(spec, "seed") if spec.get("seed") is not None else (0 if kind in _SEED_KINDS else None)
    other = _as_int(spec, "other") if spec.get("other") is not None else None
    if kind in _RANGE_KINDS + ("swap",) and stop is None:
        stop = start
    if kind == "swap" and other is None:
        raise ValueError(
            f"Invalid intervention dict {dict(spec)!r}: 'swap' needs 'other', the start of the second range."
        )
    keep_sink = spec.get("keep_sink", False)
    if not isinstance(keep_sink, bool):
        raise TypeError(f"intervention 'keep_sink' must be True or False, got {keep_sink!r}.")
    source = spec.get("source")
    if kind == "swap-context":
        source = _check_source(dict(spec), "" if source is None else str(source))
    out = _build(dict(spec), kind, start, stop, n, seed, other=other, keep_sink=keep_sink, source=source)
    if "noise" in spec and (kind != "random-context" or spec["noise"] != RANDOM_CONTEXT_NOISE):
        raise ValueError(
            f"intervention {str(out)!r}: the recorded noise {spec['noise']!r} is not how this version "
            f"draws random contexts ({RANDOM_CONTEXT_NOISE!r}, for 'random-context' only); features "
            "made with it cannot be reproduced. Re-extract them."
        )
    if "order" in spec and kind == "shuffle":
        order = [int(b) for b in spec["order"]]
        if order != out._shuffle_order():
            raise ValueError(
                f"intervention {str(out)!r}: the recorded block order {order} differs from the "
                f"order its seed gives now ({out._shuffle_order()}); features made with it "
                "cannot be reproduced with this numpy. Re-extract them."
            )
    return out


def _as_int(spec: Mapping[str, Any], key: str) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"intervention {key!r} must be an integer, got {value!r}.")
    return int(value)


def _build(spec: Any, kind: str, start: int, stop: int | None, n: int, seed: int | None,
           other: int | None = None, order: tuple[int, ...] | None = None, keep_sink: bool = False,
           source: str | None = None) -> Intervention:
    for name, value in (("start", start), ("stop", stop), ("other", other)):
        if value is not None and value < 0:
            raise ValueError(f"Invalid intervention {spec!r}: block {name} must be >= 0, got {value}.")
    if order is not None and min(order) < 0:
        raise ValueError(f"Invalid intervention {spec!r}: blocks must be >= 0, got {min(order)}.")
    if keep_sink and kind != "random-context":
        raise ValueError(f"Invalid intervention {spec!r}: 'keep-sink' is an option of 'random-context' only.")
    if kind == "repeat" and n < 1:
        raise ValueError(f"Invalid intervention {spec!r}: a block must run at least once, got {n} times.")
    if kind in ("reverse", "shuffle") and (stop is None or stop <= start):
        raise ValueError(
            f"Invalid intervention {spec!r}: {kind!r} needs a range of at least two blocks I-J with "
            f"I < J, got {start}-{stop}."
        )
    if kind in ("skip", "parallel", "swap") + _OPEN_KINDS and stop is not None and stop < start:
        raise ValueError(
            f"Invalid intervention {spec!r}: the range ends (block {stop}) before it starts "
            f"(block {start}); write {kind}:{stop}-{start}."
        )
    if kind == "swap":
        size = stop - start
        if other < start:
            start, stop, other = other, other + size, start
        if other <= stop:
            raise ValueError(
                f"Invalid intervention {spec!r}: the swapped ranges {start}-{stop} and "
                f"{other}-{other + size} overlap; swap two disjoint ranges."
            )
    return Intervention(kind=kind, start=start, stop=stop, n=n, seed=seed, other=other, order=order,
                        keep_sink=keep_sink, source=source)


def check_context_policy(intervention: Intervention | None, context_policy: str, pooling: str) -> None:
    """Raise a ValueError if an extraction setting cannot honour ``intervention``.

    The context kinds (``freeze-context``, ``random-context``, ``swap-context``) treat every
    token of a forward pass but the current one as context.

    - ``window`` (one forward pass per word, ending at the word): the current token is the
      word's last token, so the pooling must be ``last``. This is exactly the manipulation of
      Ben-Artzy & Schwartz (2024), for causal and masked models.
    - ``strided`` (causal models only): each chunk runs as one *paired* pass
      (:mod:`neuroenc.features.paired_context`) in which every token is read as the current
      token, with the chunk's earlier tokens as its context: exactly one pass per token, at
      most twice the cost of the intact chunk. Any pooling then pools current-token states.
      The extractor refuses a masked model here, once the model is loaded.

    Other interventions work with every policy.

    Parameters
    ----------
    intervention : Intervention | None
        The intervention (``None``: nothing to check).
    context_policy : str
        The extractor's context ``policy`` (``"window"`` or ``"strided"``).
    pooling : str
        The extractor's word pooling (``"last"``, ``"mean"``, ``"first"``).
    """
    if intervention is None or not intervention.needs_last_token:
        return
    if context_policy == "window" and pooling != "last":
        raise ValueError(
            f"intervention {str(intervention)!r} with policy='window' changes the context of the last "
            f"token of each forward pass, so it needs pooling='last' (got pooling={pooling!r}); pass "
            "pooling='last', or use policy='strided' (a causal model then reads every token as the "
            "current one)."
        )
