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

Grammar (``I``, ``J``, ``K``, ``N``, ``S`` are non-negative integers)::

    skip:I[-J]               drop blocks I..J; the residual stream passes through unchanged
    repeat:K[xN]             run block K N times in a row (default N=2; N counts all runs)
    reverse:I-J              run blocks I..J in reverse order
    shuffle:I-J[:seed=S]     run blocks I..J in a seeded random order other than the intact
                             one (default seed 0)
    swap:I[-J],K[-L]         exchange blocks I..J with blocks K..L (equal lengths, no overlap;
                             L defaults to K + J - I): swap:3,7 or swap:10-19,20-29
    parallel:I-J             run blocks I..J on the same input and average their outputs
                             (Sun et al. 2024, "Transformer Layers as Painters")
    no-attention:K[-J]       blocks K..J (default: to the last block) skip their attention
                             sub-block and keep only the MLP
    freeze-context:K         from block K on, the previous tokens keep their hidden state K
                             (Ben-Artzy & Schwartz 2024, "Attend first, consolidate later")
    random-context:K[:seed=S]  from block K on, the previous tokens' states are random vectors
                             with the norms of their hidden state K (drawn per sequence from
                             S and the sequence's tokens: batching never changes them)

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
)

#: Kinds that define "previous tokens" relative to the last token of each forward pass.
CONTEXT_KINDS = ("freeze-context", "random-context")

_GRAMMAR = (
    "skip:I[-J], repeat:K[xN], reverse:I-J, shuffle:I-J[:seed=S], swap:I[-J],K[-L], parallel:I-J, "
    "no-attention:K[-J], freeze-context:K, random-context:K[:seed=S]"
)
_RANGE_KINDS = ("skip", "reverse", "shuffle", "parallel")
_SEED_KINDS = ("shuffle", "random-context")
#: How ``random-context`` draws its vectors (recorded in :meth:`Intervention.to_dict`, hence in
#: cache keys): one generator per sequence, seeded from the seed and the sequence's tokens.
RANDOM_CONTEXT_NOISE = "per-sequence"


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
        First block (``skip``, ``reverse``, ``shuffle``, ``parallel``, ``no-attention``),
        the repeated block (``repeat``), the start of the first swapped range (``swap``) or
        the block from which the context is frozen/randomised.
    stop : int | None
        Last block, inclusive (``None`` for ``no-attention`` means "to the last block";
        unused for ``repeat``, ``freeze-context`` and ``random-context``). For ``swap`` the
        end of the first range.
    n : int
        How many times ``repeat`` runs its block (all runs counted); 1 for other kinds.
    seed : int | None
        The seed of ``shuffle`` and ``random-context``.
    other : int | None
        For ``swap``: the start of the second range (it has the first range's length).
    """

    kind: str
    start: int
    stop: int | None = None
    n: int = 1
    seed: int | None = None
    other: int | None = None

    # --------------------------------------------------------------- views
    def __str__(self) -> str:
        k, i, j = self.kind, self.start, self.stop
        if k == "repeat":
            return f"repeat:{i}x{self.n}"
        if k == "swap":
            if i == j:
                return f"swap:{i},{self.other}"
            return f"swap:{i}-{j},{self.other}-{self.other + j - i}"
        if k in ("freeze-context",):
            return f"{k}:{i}"
        if k == "random-context":
            return f"{k}:{i}:seed={self.seed}"
        if k == "no-attention":
            return f"{k}:{i}" if j is None else f"{k}:{i}-{j}"
        text = f"{k}:{i}" if i == j else f"{k}:{i}-{j}"
        if k == "shuffle":
            text += f":seed={self.seed}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for provenance and cache keys; :func:`parse_intervention` reads it.

        ``shuffle`` also records its block ``order`` (from the seed), so a cache key never
        silently depends on numpy's random stream; ``random-context`` records how its random
        vectors are drawn (``noise``: :data:`RANDOM_CONTEXT_NOISE`), so features drawn another
        way are never taken from the cache.
        """
        out: dict[str, Any] = {"kind": self.kind, "start": int(self.start)}
        if self.kind == "repeat":
            out["n"] = int(self.n)
        elif self.kind not in ("freeze-context", "random-context"):
            out["stop"] = None if self.stop is None else int(self.stop)
        if self.kind == "swap":
            out["other"] = int(self.other)
        if self.kind in _SEED_KINDS:
            out["seed"] = int(self.seed)
        if self.kind == "shuffle":
            out["order"] = [int(b) for b in self._shuffle_order()]
        if self.kind == "random-context":
            out["noise"] = RANDOM_CONTEXT_NOISE
        out["spec"] = str(self)
        return out

    @property
    def needs_last_token(self) -> bool:
        """Whether "previous tokens" are defined relative to the last token of each sequence.

        True for ``freeze-context`` and ``random-context``: in one forward pass every position
        but the current token's is treated as context, so each word needs its own forward
        pass that ends at that word (the extractor's ``window`` policy with ``last`` pooling);
        see :func:`check_context_policy`.
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
        if self.kind == "swap":
            return self.other + self.stop - self.start
        if self.stop is None:
            return self.start
        return self.stop

    def blocks(self, n_blocks: int) -> list[int]:
        """The block positions whose computation changes (sorted)."""
        self.check(n_blocks)
        if self.kind == "repeat":
            return [self.start]
        if self.kind == "swap":
            size = self.stop - self.start + 1
            return list(range(self.start, self.stop + 1)) + list(range(self.other, self.other + size))
        if self.kind in CONTEXT_KINDS:
            return list(range(self.start, n_blocks))
        stop = n_blocks - 1 if self.stop is None else self.stop
        return list(range(self.start, stop + 1))

    def plan(self, n_blocks: int) -> list[Step]:
        """What each block position computes, as one :class:`Step` per position.

        The model keeps its ``n_blocks`` positions (so it still returns ``n_blocks + 1``
        hidden states, comparable layer by layer with the intact model); position ``p``
        produces hidden state ``p + 1``:

        - ``skip``: positions I..J pass their input through (hidden states I+1..J+1 equal
          hidden state I);
        - ``repeat``: position K runs block K N times;
        - ``reverse`` / ``shuffle`` / ``swap``: position p runs another block of the range;
        - ``parallel``: positions I..J-1 pass their input through and position J averages
          blocks I..J run on that same input (hidden state J+1 is the average);
        - ``no-attention``, ``freeze-context``, ``random-context`` keep the order of blocks
          (every position runs its own block, changed inside) and return the intact plan.
        """
        self.check(n_blocks)
        plan = [Step("chain", (p,)) for p in range(n_blocks)]
        k, i, j = self.kind, self.start, self.stop
        if k == "skip":
            for p in range(i, j + 1):
                plan[p] = Step("chain", ())
        elif k == "repeat":
            plan[i] = Step("chain", (i,) * self.n)
        elif k in ("reverse", "shuffle", "swap"):
            for p, b in self._order_map().items():
                plan[p] = Step("chain", (b,))
        elif k == "parallel":
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
    "freeze-context": re.compile(rf"^{_INT}$"),
    "random-context": re.compile(rf"^{_INT}(?::seed={_INT})?$"),
}


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
    >>> parse_intervention({"kind": "repeat", "start": 12, "n": 3})
    Intervention(kind='repeat', start=12, stop=None, n=3, seed=None, other=None)
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
    text = spec.strip().lower().replace(" ", "")
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
    if kind == "freeze-context":
        return _build(spec, kind, g[0], None, 1, None)
    if kind == "random-context":
        return _build(spec, kind, g[0], None, 1, 0 if g[1] is None else g[1])
    if kind == "no-attention":
        return _build(spec, kind, g[0], g[1], 1, None)
    stop = g[0] if g[1] is None else g[1]
    seed = (0 if g[2] is None else g[2]) if kind == "shuffle" else None
    return _build(spec, kind, g[0], stop, 1, seed)


def _form_of(kind: str) -> str:
    forms = dict(item.split(":", 1) for item in _GRAMMAR.split(", "))
    return f"'{kind}:{forms[kind]}'"


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
    known = {"kind", "start", "stop", "n", "seed", "other", "order", "noise", "spec"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(
            f"Invalid intervention dict {dict(spec)!r}: unknown keys {unknown}; allowed keys are "
            f"{sorted(known)}."
        )
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
    out = _build(dict(spec), kind, start, stop, n, seed, other=other)
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
           other: int | None = None) -> Intervention:
    for name, value in (("start", start), ("stop", stop), ("other", other)):
        if value is not None and value < 0:
            raise ValueError(f"Invalid intervention {spec!r}: block {name} must be >= 0, got {value}.")
    if kind == "repeat" and n < 1:
        raise ValueError(f"Invalid intervention {spec!r}: a block must run at least once, got {n} times.")
    if kind in ("reverse", "shuffle") and (stop is None or stop <= start):
        raise ValueError(
            f"Invalid intervention {spec!r}: {kind!r} needs a range of at least two blocks I-J with "
            f"I < J, got {start}-{stop}."
        )
    if kind in ("skip", "parallel", "no-attention", "swap") and stop is not None and stop < start:
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
    return Intervention(kind=kind, start=start, stop=stop, n=n, seed=seed, other=other)


def check_context_policy(intervention: Intervention | None, context_policy: str, pooling: str) -> None:
    """Raise a ValueError if an extraction setting cannot honour ``intervention``.

    ``freeze-context`` and ``random-context`` treat every token of a forward pass but the
    current one as context, and take the current token to be the last (non-padding) token of
    each sequence. A ``strided`` chunk holds many words, each with its own "previous tokens",
    so one pass cannot freeze the context of all of them; the ``window`` policy (one forward
    pass per word, ending at the word) with ``last`` pooling gives every word exactly the
    manipulation of Ben-Artzy & Schwartz (2024). Other interventions work with every policy.

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
    if context_policy != "window" or pooling != "last":
        raise ValueError(
            f"intervention {str(intervention)!r} freezes the context of the last token of each "
            f"forward pass, so it needs policy='window' and pooling='last' (got "
            f"policy={context_policy!r}, pooling={pooling!r}); extract with policy='window' "
            "and pooling='last' (one forward pass per word, ending at the word)."
        )
