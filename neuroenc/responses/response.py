"""The :class:`Response`: brain data that knows its sampling grid and where its targets are."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import StimulusError, _check_2d, _check_positive, _check_response_data, _check_type, _preview
from .space import RoiSpace, SensorSpace, TargetSpace


class Response:
    """Brain (or behavioural) responses whose rows say what they are.

    Rows are either **ordered samples** on a regular time grid, fMRI (by TR) or MEG/EEG (by
    ``sfreq``): row ``i`` was sampled at stimulus time ``start + i * period`` seconds, on the
    same clock as the run's :class:`~neuroenc.stimuli.Transcript`; or **exchangeable stimuli**
    (``ids``): row ``i`` is the response to the stimulus ``ids[i]`` (a sentence, a passage, a
    word), with no time (:attr:`rows` ``"stimuli"``; put them in the stimuli's order with
    :meth:`match`).

    Parameters
    ----------
    data : array-like, shape (n_samples, n_targets)
        Voxels, parcels, ROIs or sensors in columns. A 1-D array is one target.
    tr : float | None
        Repetition time in seconds (fMRI). Give exactly one of ``tr``, ``sfreq`` and ``ids``.
    sfreq : float | None
        Sampling frequency in Hz (MEG/EEG).
    ids : sequence of str | None
        Stimulus-level responses: the stimulus id of each row (unique); no time.
    start : float
        Stimulus time, in seconds, of row 0 (e.g. 20.0 for Alice, whose first 10 volumes were
        discarded). For MEG this is mne's ``first_time`` relative to the stimulus clock.
    names : sequence of str | None
        One name per target (ROI names, channel names); default ``"0", "1", ...``.
    run : str
        The run/story this response belongs to; runs are matched by name.
    subject : str | None
        The subject.
    info : dict | None
        Free-form metadata (source file, sidecar...), carried along.
    space : TargetSpace | None
        Where the targets are (:mod:`neuroenc.responses.space`): voxels, vertices, parcels,
        ROIs or sensors, one entry per column. Default: :class:`RoiSpace` (no geometry) for
        fMRI, :class:`SensorSpace` of ``"misc"`` channels for MEG/EEG. Written into the
        results' provenance, so that brain maps need no target names.

    Attributes
    ----------
    times : ndarray, shape (n_samples,)
        The stimulus time of each row.
    """

    def __init__(
        self,
        data: Any,
        *,
        tr: float | None = None,
        sfreq: float | None = None,
        start: float = 0.0,
        names: Sequence[str] | None = None,
        run: str = "run-1",
        subject: str | None = None,
        info: dict[str, Any] | None = None,
        space: TargetSpace | None = None,
        ids: Sequence[Any] | None = None,
    ) -> None:
        if sum(x is not None for x in (tr, sfreq, ids)) != 1:
            raise ValueError("Give exactly one of 'tr' (fMRI, seconds), 'sfreq' (MEG/EEG, Hz) and 'ids' "
                             "(stimulus-level responses, one stimulus id per row).")
        if tr is not None:
            _check_positive("tr", tr)
        if sfreq is not None:
            _check_positive("sfreq", sfreq)
        self.data = _check_2d(f"response data for run {run!r}", data)
        self.tr = None if tr is None else float(tr)
        self.sfreq = None if sfreq is None else float(sfreq)
        self.start = float(start)
        n_targets = self.data.shape[1]
        if names is None:
            names = [str(i) for i in range(n_targets)]
        names = [str(n) for n in names]
        if len(names) != n_targets:
            raise ValueError(
                f"response for run {run!r} has {n_targets} columns but {len(names)} names; give "
                "one name per column."
            )
        self.names = names
        self.run = str(run)
        self.subject = None if subject is None else str(subject)
        self.info = dict(info or {})
        self.ids = None if ids is None else [str(i) for i in ids]
        if self.ids is not None:
            _check_ids(self.ids, self.data.shape[0], self.info.get("source", "responses"),
                       self.subject)
        if space is None:
            space = SensorSpace(["misc"] * n_targets) if sfreq is not None else RoiSpace(n_targets)
        _check_type("space", space, TargetSpace)
        if space.n_targets != n_targets:
            raise ValueError(
                f"response for run {run!r} has {n_targets} columns but its space describes "
                f"{space.n_targets} targets ({space!r}); give one target per column."
            )
        self.space = space

    @property
    def kind(self) -> str:
        """``"fmri"`` (a TR grid), ``"meg"`` (an sfreq grid) or ``"stimuli"`` (one row per stimulus)."""
        return "stimuli" if self.ids is not None else "fmri" if self.tr is not None else "meg"

    @property
    def rows(self) -> str:
        """What the rows are: ``"samples"`` (ordered, on a time grid) or ``"stimuli"`` (exchangeable)."""
        return ROWS[self.kind]

    @property
    def grid(self) -> tuple:
        """What two responses must share to be averaged or compared row by row: the number of
        rows, the period and the start of a time grid, or the stimulus ids."""
        if self.ids is not None:
            return ("stimuli", tuple(self.ids))
        return (self.n_samples, self.period, self.start)

    @property
    def period(self) -> float:
        """Seconds between rows (the TR, or ``1 / sfreq``)."""
        if self.ids is not None:
            raise ValueError(f"the responses of run {self.run!r} are stimulus-level (one row per stimulus): "
                             "they have no time grid.")
        return self.tr if self.tr is not None else 1.0 / self.sfreq

    @property
    def n_samples(self) -> int:
        """Number of rows (TRs or samples)."""
        return int(self.data.shape[0])

    @property
    def n_targets(self) -> int:
        """Number of columns (voxels, ROIs, sensors)."""
        return int(self.data.shape[1])

    @property
    def times(self) -> np.ndarray:
        """The stimulus time of each row, ``start + arange(n_samples) * period``."""
        if self.ids is not None:
            raise ValueError(f"the responses of run {self.run!r} are stimulus-level: their rows have no time.")
        if self.tr is not None:
            return self.start + np.arange(self.n_samples) * self.tr
        return self.start + np.arange(self.n_samples) / self.sfreq

    @property
    def end(self) -> float:
        """Stimulus time just after the last row (``start + n_samples * period``)."""
        return self.start + self.n_samples * self.period

    def copy(self, data: Any = None, **changes: Any) -> "Response":
        """A copy, optionally with new data or changed fields (``start=``, ``names=``...).

        New data with another number of columns (a derived signal, such as a word rate on this
        grid) gets the default space unless ``space=`` is given.
        """
        kwargs = dict(
            tr=self.tr, sfreq=self.sfreq, start=self.start, names=self.names, run=self.run,
            subject=self.subject, info=self.info, space=self.space, ids=self.ids,
        )
        if data is not None and "space" not in changes and np.ndim(data) in (1, 2):
            if (1 if np.ndim(data) == 1 else np.shape(data)[1]) != self.n_targets:
                kwargs["space"] = None
        kwargs.update(changes)
        for key in ("tr", "sfreq", "ids"):
            if changes.get(key) is not None:
                kwargs.update({k: None for k in ("tr", "sfreq", "ids") if k != key})
        return Response(self.data.copy() if data is None else data, **kwargs)

    def select(self, targets: Sequence[int] | Sequence[str] | np.ndarray) -> "Response":
        """A copy with only some targets, by index, boolean mask or name."""
        targets = np.asarray(targets)
        if targets.dtype.kind in "US":
            lookup = {n: i for i, n in enumerate(self.names)}
            missing = [t for t in targets.tolist() if t not in lookup]
            if missing:
                raise KeyError(f"response for run {self.run!r} has no target(s) {missing}; it has "
                               f"{self.names[:10]}{'...' if self.n_targets > 10 else ''}.")
            idx = np.array([lookup[t] for t in targets.tolist()], dtype=int)
        elif targets.dtype == bool:
            idx = np.flatnonzero(targets)
        else:
            idx = targets.astype(int)
        return self.copy(data=self.data[:, idx], names=[self.names[i] for i in idx],
                         space=self.space.select(idx))

    def match(self, ids: Sequence[Any], what: str = "the stimuli") -> "Response":
        """Stimulus-level responses in the order of ``ids``; ids on one side only are an error.

        Raises
        ------
        StimulusError
            Listing the stimulus ids that have no response and the response ids that are no
            stimulus.
        """
        if self.ids is None:
            raise ValueError(f"the responses of run {self.run!r} are on a time grid; only stimulus-level "
                             "responses (ids=) are matched to stimuli by id.")
        ids = [str(i) for i in ids]
        pos = {s: i for i, s in enumerate(self.ids)}
        wanted = set(ids)
        missing = [i for i in ids if i not in pos]
        extra = [i for i in self.ids if i not in wanted]
        if missing or extra:
            where = self.info.get("source", "the responses")
            parts = []
            if missing:
                parts.append(f"{len(missing)} of {what} have no response: ids {_preview(missing)}")
            if extra:
                parts.append(f"{len(extra)} response row(s) match no stimulus: ids {_preview(extra)}")
            raise StimulusError(
                f"The responses in {where!s}" + (f" (subject {self.subject!r})" if self.subject else "")
                + " do not match the stimuli by id: " + "; ".join(parts)
                + ". Every stimulus needs exactly one response row with the same id: fix the id "
                "column (or name it: id_column=NAME), or drop the stimuli without responses."
            )
        order = np.asarray([pos[i] for i in ids], dtype=np.int64)
        return self.copy(data=self.data[order], ids=ids, info=dict(self.info))

    def crop(self, first: int = 0, last: int = 0) -> "Response":
        """A copy without the first ``first`` and last ``last`` rows; ``start`` moves with it."""
        stop = self.n_samples - last
        if first < 0 or last < 0 or stop <= first:
            raise ValueError(
                f"cannot trim {first} first and {last} last rows from the {self.n_samples} rows of "
                f"run {self.run!r}."
            )
        return self.copy(data=self.data[first:stop], start=self.start + first * self.period)

    def check(self, rows: slice | None = None) -> None:
        """Raise if the data (over ``rows``) have NaN/inf or constant columns, naming them."""
        where = (f"(run {self.run!r}" + (f", subject {self.subject!r}" if self.subject else "")
                 + (f", file {str(self.info['source'])!r}" if self.info.get("source") else "") + ")")
        _check_response_data(self.data if rows is None else self.data[rows], self.names, where,
                             first_row=0 if rows is None else int(rows.start or 0))

    @classmethod
    def from_mne(
        cls,
        inst: Any,
        picks: Any = "data",
        run: str = "run-1",
        subject: str | None = None,
        start: float | None = None,
    ) -> "Response":
        """A response from an ``mne.io.Raw``, ``mne.Epochs`` (averaged) or ``mne.Evoked``.

        Parameters
        ----------
        inst : mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked
            The recording. Epochs are averaged into an Evoked first.
        picks : str | list
            Channels to keep, as mne's ``picks`` (default: all data channels that are not
            marked bad).
        run, subject : str
            Names for this run and subject.
        start : float | None
            Stimulus time of the first sample. Default: ``inst.times[0]`` for Raw (i.e. seconds
            from the first sample, ``first_time`` is not added, so that word onsets measured in
            seconds from recording start line up), and the Evoked's ``tmin``.
        """
        import mne

        if isinstance(inst, mne.BaseEpochs):
            inst = inst.average(picks=picks)
        if not isinstance(inst, (mne.io.BaseRaw, mne.Evoked)):
            raise TypeError(
                f"Response.from_mne needs an mne Raw, Epochs or Evoked, got {type(inst).__name__}."
            )
        idx = pick_channels(inst.info, picks)
        data = inst.get_data(picks=idx).T
        ch_names = [inst.ch_names[i] for i in idx]
        t0 = float(inst.times[0]) if start is None else float(start)
        space = SensorSpace.from_info(mne.pick_info(inst.info, idx.tolist(), verbose="error"))
        return cls(data, sfreq=float(inst.info["sfreq"]), start=t0, names=ch_names, run=run,
                   subject=subject, info={"mne_info": inst.info}, space=space)

    def __repr__(self) -> str:
        who = f"{self.subject}/" if self.subject else ""
        if self.ids is not None:
            return f"<Response {who}{self.run!r} | {self.n_samples} stimuli × {self.n_targets}>"
        grid = f"TR {self.tr:g} s" if self.tr is not None else f"{self.sfreq:g} Hz"
        return (
            f"<Response {who}{self.run!r} | {self.n_samples} × {self.n_targets}, {grid}, "
            f"{self.start:g}–{self.end:g} s>"
        )


#: What the rows of each kind of response are: ordered samples on a time grid, or exchangeable stimuli.
ROWS = {"fmri": "samples", "meg": "samples", "stimuli": "stimuli"}


def _check_ids(ids: list[str], n_rows: int, where: str, subject: str | None) -> None:
    """One unique stimulus id per row."""
    if len(ids) != n_rows:
        raise StimulusError(f"{where}: {n_rows} response rows for {len(ids)} ids; give one id per row.")
    seen: set[str] = set()
    dups = list(dict.fromkeys(i for i in ids if i in seen or seen.add(i)))
    if dups:
        raise StimulusError(
            f"{where}: stimulus id(s) {_preview(dups)} have several rows"
            + (f" for subject {subject!r}" if subject else "")
            + "; give one row per stimulus (average repeats first, or name the subject column)."
        )


def pick_channels(info: Any, picks: Any = "data") -> np.ndarray:
    """The indices of the channels that mne's ``picks`` select in ``info``, bad channels excluded.

    Any form mne accepts (``"data"``, channel types, names, indices; ``None`` is ``"data"``),
    through mne's public API: ``Evoked.pick`` on a one-sample Evoked of zeros with this ``info``.
    """
    import mne

    if picks is None:
        picks = "data"

    probe = mne.EvokedArray(np.zeros((len(info["ch_names"]), 1)), info, verbose="error")
    names = probe.pick(picks, exclude="bads").ch_names
    return mne.pick_channels(info["ch_names"], names, ordered=True)
