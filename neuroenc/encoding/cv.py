"""Cross-validation splitters for time series recorded in runs (scikit-learn compatible).

Brain responses to a story are autocorrelated, and FIR-delayed designs mix neighbouring
samples, so samples are never split at random:

- several runs: hold out whole runs (:class:`LeaveOneRunOut`, or :class:`RunKFold` for groups
  of runs); delays are zero-filled at run boundaries, so runs do not leak into each other;
- one long run (Alice: one 362-TR run): contiguous blocks (:class:`BlockedKFold`), with ``gap``
  samples dropped from the training set on each side of the test block, so that no training
  sample shares a delayed feature or the tail of a haemodynamic response with a test sample.

Stimulus-level data (one response per sentence or passage, no time) are split by stimulus:

- ``cv="group-kfold:K"``: whole groups (passages, topics) held out, as scikit-learn's
  ``GroupKFold(K)`` deals them (groups balanced by size; deterministic). The honest default
  when groups exist: the sentences of one passage share its topic, its words and its context
  (with ``context: group`` each sentence's features even include the passage's earlier
  sentences), so a random split puts near-copies of a test sentence in the training set and
  the held-out score measures recall of the passage rather than generalisation to new text.
- ``cv="kfold:K"``: stimuli shuffled (seeded by ``random_state``) into K folds, as
  ``KFold(K, shuffle=True)``: for stimuli that are exchangeable (no groups).

Without time there is no gap (gap 0), and the inner splits that choose the penalties follow
the same scheme inside the outer training set (whole groups for ``group-kfold``).

A fixed train/test protocol, as LeBel et al. 2023 and Antonello et al. 2023 score their
models: ``cv="holdout:<run>"`` trains on every other run and tests once on ``<run>`` (for
LeBel, ``holdout:wheretheressmoke``, whose response is the mean of its repeated
presentations); the penalties are chosen by inner CV over the training runs only.

:func:`make_cv` picks among them (``cv="auto"``); :func:`inner_splits` builds the inner
splits used to choose ridge penalties, from the training part of an outer split only.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from .._settings import HasMethods, Pattern, PythonOnly
from .._validation import _check_option, _check_random_state, _preview

#: Samples dropped on each side of a test block when none is given: 5 TRs = 10 s at TR 2 s,
#: longer than the default FIR delays (1-4 TRs) and the peak of the haemodynamic response.
DEFAULT_GAP = 5

CV_NAMES = ("auto", "runs", "blocks")
#: The fewest samples an outer fold may hold out: the fold's Pearson r needs two (with one it
#: is undefined, and every score would be NaN).
MIN_TEST = 2
#: Stimulus-level schemes, written ``"<name>:K"`` (K folds).
STIMULUS_CV = ("kfold", "group-kfold")
#: The forms of a stimulus-level ``cv`` in a config or on the command line (the constraints the
#: run config and ``neuroenc fit`` read; :func:`parse_stimulus_cv` reads the value).
STIMULUS_CV_PATTERNS = [Pattern(r"kfold:([2-9]|[1-9]\d+)", "kfold:K"),
                        Pattern(r"group-kfold:([2-9]|[1-9]\d+)", "group-kfold:K (K >= 2 folds)")]
#: The fixed train/test protocol: ``holdout:<run>`` (train on the other runs, test on ``<run>``).
HOLDOUT_PATTERN = Pattern(r"holdout:[^\s:,]+", "holdout:RUN (train on the other runs, test once on RUN)")
#: The forms of ``cv`` a library call takes from Python only (not from a config or the command
#: line): a scikit-learn splitter, or explicit ``(train, test)`` splits.
CV_OBJECTS = [PythonOnly(HasMethods(["split"])), PythonOnly(list), PythonOnly(tuple)]


def parse_stimulus_cv(cv: Any) -> tuple[str, int] | None:
    """``("kfold" | "group-kfold", K)`` for a stimulus-level ``cv`` string, else None.

    Examples
    --------
    >>> parse_stimulus_cv("group-kfold:5"), parse_stimulus_cv("runs")
    (('group-kfold', 5), None)
    """
    if not isinstance(cv, str) or ":" not in cv:
        return None
    name, _, k = cv.partition(":")
    name = name.strip().lower()
    if name not in STIMULUS_CV:
        return None
    try:
        n_splits = int(k)
    except ValueError:
        n_splits = -1
    if n_splits < 2:
        raise ValueError(
            f"Invalid value for 'cv': {cv!r}. Write {name}:K with K >= 2 folds, e.g. {name}:5."
        )
    return name, n_splits


def parse_holdout_cv(cv: Any) -> str | None:
    """The held-out run of a ``"holdout:<run>"`` ``cv``, else None.

    Examples
    --------
    >>> parse_holdout_cv("holdout:wheretheressmoke"), parse_holdout_cv("runs")
    ('wheretheressmoke', None)
    """
    if not isinstance(cv, str) or not cv.startswith("holdout:"):
        return None
    run = cv.partition(":")[2].strip()
    if not run:
        raise ValueError(f"Invalid value for 'cv': {cv!r}. Write holdout:RUN, e.g. holdout:wheretheressmoke.")
    return run


def holdout_split(run: str, groups: Any, n_samples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The one split of ``cv="holdout:<run>"``: train on every other run, test on ``run``.

    Examples
    --------
    >>> [(tr.tolist(), te.tolist()) for tr, te in holdout_split("b", ["a", "a", "b", "b", "c"], 5)]
    [([0, 1, 4], [2, 3])]
    """
    if groups is None:
        raise ValueError(f"cv='holdout:{run}' tests on one run, but no run labels were given; pass groups= "
                         "(one run label per sample), or a design that carries its runs.")
    labels = check_groups(groups, n_samples)
    names = [str(r) for r in runs_in_order(labels)]
    if run not in names:
        raise ValueError(f"cv='holdout:{run}': there is no run {run!r}; the runs are {names[:8]}"
                         f"{'...' if len(names) > 8 else ''}. Hold out one of them (e.g. holdout:{names[-1]}), "
                         "or load that run.")
    if len(names) < 2:
        raise ValueError(f"cv='holdout:{run}' needs at least one training run besides {run!r}, but it is the only "
                         "run; load the training runs too.")
    test = np.flatnonzero(labels.astype(str) == run)
    train = np.flatnonzero(labels.astype(str) != run)
    return _check_splits([(train, test)], n_samples, min_test=MIN_TEST, min_folds=1)


#: Folds of ``cv="auto"`` for stimuli.
DEFAULT_STIMULUS_FOLDS = 5


def resolve_cv(cv: Any, rows: str, groups: Any = None) -> tuple[Any, tuple[str, int] | None]:
    """The outer CV for a design whose rows are ``rows``, and its stimulus scheme (or None).

    The rows decide the kind of CV. Ordered samples (``"samples"``): runs or blocks
    (``"auto"``, ``"runs"``, ``"blocks"``, an int, a splitter or explicit splits; see
    :func:`make_cv`); a stimulus scheme is an error. Exchangeable stimuli (``"stimuli"``):
    ``"auto"`` is ``group-kfold:K`` when there are at least 2 groups (K = 5, or the number of
    groups when fewer), else ``kfold:5``; ``"kfold:K"``, ``"group-kfold:K"``, a splitter or
    explicit splits as given; runs and blocks are an error (stimuli have no time).

    Examples
    --------
    >>> resolve_cv("auto", "stimuli", ["a", "a", "b", "c"])
    ('group-kfold:3', ('group-kfold', 3))
    >>> resolve_cv("auto", "samples")
    ('auto', None)
    """
    _check_option("rows", rows, ("samples", "stimuli"))
    if rows == "stimuli" and isinstance(cv, str) and cv == "auto":
        n_groups = len(set(np.asarray(groups).tolist())) if groups is not None else 0
        cv = f"group-kfold:{min(DEFAULT_STIMULUS_FOLDS, n_groups)}" if n_groups >= 2 else \
            f"kfold:{DEFAULT_STIMULUS_FOLDS}"
    if rows == "stimuli" and parse_holdout_cv(cv) is not None:
        raise ValueError(
            f"Invalid value for 'cv': {cv!r}. holdout:RUN holds out a run of samples in time; the rows are "
            "stimuli: use 'auto', 'group-kfold:K' or 'kfold:K'."
        )
    scheme = parse_stimulus_cv(cv)
    if rows == "stimuli" and scheme is None and (isinstance(cv, (str, numbers.Integral))):
        raise ValueError(
            f"Invalid value for 'cv': {cv!r}. The rows are stimuli, split by stimulus: 'auto', "
            "'group-kfold:K' (whole groups held out) or 'kfold:K' (K >= 2 folds; or a splitter, or a "
            "list of (train, test) splits); runs and blocks are for word-timed features."
        )
    if rows == "samples" and scheme is not None:
        raise ValueError(
            f"Invalid value for 'cv': {cv!r}. The rows are samples in time (TRs, MEG samples), which "
            "are not exchangeable: use 'auto', 'runs', 'blocks' or an int; kfold and group-kfold are for "
            "stimulus-level designs."
        )
    return cv, scheme


def int_seed(random_state: Any) -> int | None:
    """An int seed for scikit-learn splitters (a Generator or RandomState gives one draw)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(_check_random_state(random_state).integers(2**31 - 1))


def _stimulus_splits(name: str, n_splits: int, positions: np.ndarray, groups: np.ndarray | None,
                     random_state: Any, what: str, min_test: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold or group K-fold splits of ``positions`` (absolute sample indices); ``min_test``:
    the fewest stimuli a fold may hold out (2 for the outer folds, whose r needs two)."""
    from sklearn.model_selection import GroupKFold, KFold

    n = positions.size
    if name == "kfold" and min_test > 1 and n < min_test * n_splits:
        raise ValueError(
            f"{what}: cv='kfold:{n_splits}' on {n} stimuli holds out fewer than {min_test} stimuli in some folds"
            f"{' (leave-one-out)' if n_splits >= n else ''}, but a fold's score (Pearson r of its held-out "
            f"stimuli) needs at least {min_test} held-out stimuli per fold; use fewer folds: cv='kfold:K' "
            f"with K <= {max(n // min_test, 2)}."
        )
    if name == "group-kfold":
        if groups is None:
            raise ValueError(
                f"cv='group-kfold:{n_splits}' holds out whole groups, but no groups were given; pass "
                "groups= (e.g. the passage of each sentence), or use cv='kfold:K' for stimuli without groups."
            )
        g = np.asarray(groups)[positions]
        n_groups = len(runs_in_order(g))
        if n_groups < n_splits:
            raise ValueError(
                f"{what}: group-kfold with {n_splits} folds needs at least {n_splits} groups, but there "
                f"are {n_groups}; use fewer folds (e.g. group-kfold:{max(n_groups, 2)}) or more groups."
            )
        splitter: Any = GroupKFold(n_splits)
        raw = splitter.split(np.zeros((n, 1)), groups=g)
    else:
        if n < n_splits:
            fix = (f"use fewer inner folds (inner_cv={max(min(n, n_splits - 1), 2)}) or more stimuli"
                   if what == "inner CV" else "use fewer folds or more stimuli")
            raise ValueError(f"{what}: kfold with {n_splits} folds needs at least {n_splits} stimuli, got {n}; "
                             f"{fix}.")
        raw = KFold(n_splits, shuffle=True, random_state=int_seed(random_state)).split(np.zeros((n, 1)))
    return [(positions[np.sort(tr)], positions[np.sort(te)]) for tr, te in raw]


def check_groups(groups: Any, n_samples: int) -> np.ndarray:
    """Run labels as an array of one label per sample (all ``0`` when ``groups`` is None)."""
    if groups is None:
        return np.zeros(n_samples, dtype=int)
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.shape[0] != n_samples:
        raise ValueError(
            f"groups (run labels) has shape {groups.shape} but there are {n_samples} samples; "
            "give one run label per sample (e.g. np.repeat(run_names, run_lengths))."
        )
    return groups


def runs_in_order(groups: np.ndarray) -> list[Any]:
    """Unique run labels in order of first appearance."""
    _, first = np.unique(groups, return_index=True)
    return [groups[i] for i in np.sort(first)]


def _blocked(positions: np.ndarray, n_splits: int, gap: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous blocks of ``positions`` (sorted sample indices), ``gap`` samples dropped around each."""
    n = positions.shape[0]
    if n < 2 * n_splits:
        raise ValueError(
            f"Cannot cut n_samples={n} into {n_splits} contiguous blocks of at least 2 samples; "
            f"use fewer folds (cv/n_blocks) or more samples."
        )
    out = []
    for chunk in np.array_split(np.arange(n), n_splits):
        test = positions[chunk]
        keep = (positions < test[0] - gap) | (positions > test[-1] + gap)
        train = positions[keep]
        if train.size < 2:
            raise ValueError(
                f"Blocked CV with n_samples={n}, {n_splits} blocks and gap={gap} leaves "
                f"{train.size} training samples for the block {test[0]}..{test[-1]}; use a "
                "smaller gap or fewer blocks."
            )
        out.append((train, test))
    return out


class BlockedKFold(BaseCrossValidator):
    """K contiguous blocks as test sets, with a gap dropped from training on each side.

    Parameters
    ----------
    n_splits : int
        Number of blocks (folds), at least 2.
    gap : int
        Samples dropped from the training set on each side of the test block (e.g. the
        longest FIR delay plus the haemodynamic lag). ``0`` gives plain contiguous K-fold.

    Examples
    --------
    >>> cv = BlockedKFold(n_splits=3, gap=1)
    >>> [(tr.tolist(), te.tolist()) for tr, te in cv.split(np.zeros((9, 1)))]
    [([4, 5, 6, 7, 8], [0, 1, 2]), ([0, 1, 7, 8], [3, 4, 5]), ([0, 1, 2, 3, 4], [6, 7, 8])]
    """

    def __init__(self, n_splits: int = 5, gap: int = DEFAULT_GAP) -> None:
        self.n_splits = n_splits
        self.gap = gap

    def _check(self) -> None:
        if isinstance(self.n_splits, bool) or not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 2:
            raise ValueError(f"BlockedKFold needs n_splits >= 2 (an int), got {self.n_splits!r}.")
        if isinstance(self.gap, bool) or not isinstance(self.gap, numbers.Integral) or self.gap < 0:
            raise ValueError(f"BlockedKFold needs gap >= 0 (an int, in samples), got {self.gap!r}.")

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays."""
        self._check()
        n = len(X) if not hasattr(X, "shape") else X.shape[0]
        yield from _blocked(np.arange(n), int(self.n_splits), int(self.gap))

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds."""
        return int(self.n_splits)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - split overrides
        for _, test in self.split(X, y, groups):
            yield test


class LeaveOneRunOut(BaseCrossValidator):
    """Hold out one run at a time (runs in order of first appearance).

    Like scikit-learn's ``LeaveOneGroupOut``, with folds in the order the runs appear and a
    clear error for a single run.
    """

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays; ``groups`` holds one run label per sample."""
        n = len(X) if not hasattr(X, "shape") else X.shape[0]
        groups = check_groups(groups, n) if groups is not None else None
        if groups is None:
            raise ValueError("LeaveOneRunOut needs groups= (one run label per sample).")
        runs = runs_in_order(groups)
        if len(runs) < 2:
            raise ValueError(
                f"Leave-one-run-out needs at least 2 runs, got 1 ({str(runs[0])!r}); use "
                "cv='blocks' (contiguous blocks with a gap) for a single run."
            )
        idx = np.arange(n)
        for run in runs:
            mask = groups == run
            yield idx[~mask], idx[mask]

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of runs."""
        if groups is None:
            raise ValueError("LeaveOneRunOut needs groups= (one run label per sample).")
        return len(runs_in_order(np.asarray(groups)))

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - split overrides
        for _, test in self.split(X, y, groups):
            yield test


class RunKFold(BaseCrossValidator):
    """K folds of whole runs: runs (in order of appearance) dealt into ``n_splits`` contiguous groups."""

    def __init__(self, n_splits: int = 5) -> None:
        self.n_splits = n_splits

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays; ``groups`` holds one run label per sample."""
        n = len(X) if not hasattr(X, "shape") else X.shape[0]
        if groups is None:
            raise ValueError("RunKFold needs groups= (one run label per sample).")
        groups = check_groups(groups, n)
        runs = runs_in_order(groups)
        if len(runs) < self.n_splits:
            raise ValueError(
                f"RunKFold(n_splits={self.n_splits}) needs at least {self.n_splits} runs, got "
                f"{len(runs)}; use fewer folds or leave-one-run-out."
            )
        idx = np.arange(n)
        for chunk in np.array_split(np.arange(len(runs)), self.n_splits):
            mask = np.isin(groups, [runs[i] for i in chunk])
            yield idx[~mask], idx[mask]

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds."""
        return int(self.n_splits)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - split overrides
        for _, test in self.split(X, y, groups):
            yield test


def make_cv(cv: Any = "auto", groups: Any = None, n_samples: int | None = None,
            n_blocks: int = 5, gap: int | None = None,
            random_state: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer cross-validation splits, as a list of ``(train, test)`` index arrays.

    Parameters
    ----------
    cv : {"auto", "runs", "blocks"} | "holdout:RUN" | "kfold:K" | "group-kfold:K" | int | splitter | iterable
        ``"auto"``: leave-one-run-out when ``groups`` has at least 2 runs, else ``n_blocks``
        contiguous blocks with a gap. ``"runs"``: leave-one-run-out. ``"blocks"``: blocked
        K-fold (ignores runs). ``"holdout:RUN"``: one split, trained on every other run and
        tested on ``RUN`` (:func:`holdout_split`; LeBel et al. 2023's protocol).
        ``"group-kfold:K"`` (stimuli): whole groups held out, as
        scikit-learn's ``GroupKFold(K)``; ``"kfold:K"`` (stimuli): shuffled K-fold, seeded by
        ``random_state`` (see the module docstring; no gap). An int ``k``: ``k`` folds of
        whole runs when there are several runs, else ``k`` blocks. A scikit-learn splitter
        (its ``split(X, y, groups)`` is called) or an explicit list of splits.
    groups : array-like, shape (n_samples,) | None
        Run label of each sample (for stimuli: the group, e.g. passage, of each stimulus).
    n_samples : int
        Number of samples.
    n_blocks : int
        Number of blocks for a single run.
    gap : int | None
        Samples dropped on each side of a test block (default :data:`DEFAULT_GAP`).
    random_state : None | int | Generator
        Seed of the ``kfold:K`` shuffle.

    Returns
    -------
    splits : list of (ndarray, ndarray)
        Sorted train and test indices of each fold; every test set is non-empty.
    """
    if n_samples is None:
        raise ValueError("make_cv needs n_samples.")
    stimulus = parse_stimulus_cv(cv)
    if stimulus is not None:
        given = None if groups is None else check_groups(groups, n_samples)
        splits = _stimulus_splits(stimulus[0], stimulus[1], np.arange(n_samples), given, random_state,
                                  "outer CV", min_test=MIN_TEST)
        return _check_splits(splits, n_samples, min_test=MIN_TEST)
    held_out = parse_holdout_cv(cv)
    if held_out is not None:
        return holdout_split(held_out, groups, n_samples)
    groups_arr = check_groups(groups, n_samples)
    n_runs = len(runs_in_order(groups_arr))
    gap = DEFAULT_GAP if gap is None else gap
    dummy = np.zeros((n_samples, 1))
    if isinstance(cv, str):
        _check_option("cv", cv, CV_NAMES + ("holdout:RUN", "kfold:K", "group-kfold:K"))
        if cv == "runs" or (cv == "auto" and n_runs >= 2):
            splitter: Any = LeaveOneRunOut()
        else:
            splitter = BlockedKFold(n_blocks, gap)
        splits = list(splitter.split(dummy, groups=groups_arr))
    elif isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        splitter = RunKFold(int(cv)) if n_runs >= 2 else BlockedKFold(int(cv), gap)
        splits = list(splitter.split(dummy, groups=groups_arr))
    elif hasattr(cv, "split"):
        splits = list(cv.split(dummy, None, groups_arr))
    elif isinstance(cv, Iterable):
        splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv]
    else:
        raise TypeError(
            f"cv must be 'auto', 'runs', 'blocks', an int, 'kfold:K', 'group-kfold:K' (stimuli), a splitter "
            f"or a list of (train, test) splits, got {type(cv).__name__}."
        )
    return _check_splits(splits, n_samples, min_test=MIN_TEST)


def _check_splits(splits: Sequence[tuple[Any, Any]], n_samples: int,
                  min_test: int = 1, min_folds: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    if len(splits) < min_folds:
        raise ValueError(f"Cross-validation needs at least 2 folds, got {len(splits)}.")
    for k, (train, test) in enumerate(splits):
        train = np.sort(np.asarray(train, dtype=np.intp).reshape(-1))
        test = np.sort(np.asarray(test, dtype=np.intp).reshape(-1))
        if train.size == 0 or test.size == 0:
            raise ValueError(f"Fold {k} has an empty train ({train.size}) or test ({test.size}) set.")
        if test.size < min_test:
            raise ValueError(
                f"Fold {k} of {len(splits)} holds out {test.size} sample(s) of {n_samples}; a fold's score "
                f"(Pearson r of its held-out samples) needs at least {min_test}: use fewer folds (cv=), or "
                "bigger groups."
            )
        bad = np.concatenate([train, test])
        bad = bad[(bad < 0) | (bad >= n_samples)]
        if bad.size:
            raise ValueError(f"Fold {k} has indices {_preview(bad)} outside 0..{n_samples - 1}.")
        if np.intersect1d(train, test).size:
            raise ValueError(f"Fold {k} has samples in both its train and test sets.")
        out.append((train, test))
    return out


def inner_splits(train: np.ndarray, groups: Any = None, inner_cv: Any = 5,
                 gap: int | None = None, scheme: str | None = None,
                 random_state: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner splits of an outer training set, to choose ridge penalties without the test data.

    Parameters
    ----------
    train : ndarray of int
        Sample indices of the outer training set (absolute, sorted).
    groups : array-like, shape (n_samples,) | None
        Run label of every sample (all samples, not only ``train``).
    inner_cv : int | iterable
        Number of inner folds: whole runs when ``train`` spans several runs (leave-one-run-out
        if there are no more runs than folds, else runs dealt into ``inner_cv`` groups);
        contiguous blocks with ``gap`` (measured in original sample positions, so the hole
        left by the outer test set counts) when it spans one run. An iterable of
        ``(inner_train, inner_val)`` indices relative to ``train`` is used as is.
    gap : int | None
        As in :func:`make_cv`.
    scheme : {None, "kfold", "group-kfold"}
        Stimulus-level inner splits, as the outer ``cv``: ``"group-kfold"``: scikit-learn's
        ``GroupKFold(min(inner_cv, n_groups))`` on the training groups (whole groups held
        out, never a group on both sides); ``"kfold"``: ``KFold(inner_cv, shuffle=True,
        random_state)`` on the training stimuli. ``None``: runs or blocks, as above.
    random_state : None | int | Generator
        Seed of the ``"kfold"`` shuffle.

    Returns
    -------
    splits : list of (ndarray, ndarray)
        Absolute sample indices (subsets of ``train``).
    """
    train = np.sort(np.asarray(train, dtype=np.intp))
    if scheme is not None and isinstance(inner_cv, numbers.Integral) and not isinstance(inner_cv, bool):
        _check_option("scheme", scheme, STIMULUS_CV)
        k = int(inner_cv)
        if k < 2:
            raise ValueError(f"inner_cv must be >= 2, got {k}.")
        if scheme == "group-kfold":
            if groups is None:
                raise ValueError("inner group-kfold splits need groups=.")
            n_groups = len(runs_in_order(np.asarray(groups)[train]))
            if n_groups < 2:
                raise ValueError(
                    f"An outer training set holds {n_groups} group; choosing penalties by inner "
                    "group-kfold needs at least 2 groups there. Use fewer outer folds or more groups."
                )
            k = min(k, n_groups)
        return _stimulus_splits(scheme, k, train, None if groups is None else np.asarray(groups),
                                random_state, "inner CV")
    gap = DEFAULT_GAP if gap is None else gap
    if not isinstance(inner_cv, numbers.Integral) or isinstance(inner_cv, bool):
        if isinstance(inner_cv, Iterable):
            splits = [(train[np.asarray(tr, dtype=np.intp)], train[np.asarray(va, dtype=np.intp)])
                      for tr, va in inner_cv]
            return _check_splits(splits, int(train.max()) + 1)
        raise TypeError(f"inner_cv must be an int or a list of splits, got {type(inner_cv).__name__}.")
    k = int(inner_cv)
    if k < 2:
        raise ValueError(f"inner_cv must be >= 2, got {k}.")
    if groups is not None:
        g = np.asarray(groups)[train]
        runs = runs_in_order(g)
        if len(runs) >= 2:
            chunks = np.array_split(np.arange(len(runs)), min(k, len(runs)))
            out = []
            for chunk in chunks:
                mask = np.isin(g, [runs[i] for i in chunk])
                out.append((train[~mask], train[mask]))
            return out
    return _blocked(train, k, int(gap))
