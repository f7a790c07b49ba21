"""The :class:`Response`: brain data that knows its sampling grid."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import _check_2d, _check_positive


class Response:
    """Brain responses on a regular time grid: fMRI (by TR) or MEG/EEG (by ``sfreq``).

    Row ``i`` was sampled at stimulus time ``start + i * period`` seconds, on the same clock as
    the run's :class:`~neuroenc.stimuli.Transcript`.

    Parameters
    ----------
    data : array-like, shape (n_samples, n_targets)
        Voxels, parcels, ROIs or sensors in columns. A 1-D array is one target.
    tr : float | None
        Repetition time in seconds (fMRI). Give exactly one of ``tr`` and ``sfreq``.
    sfreq : float | None
        Sampling frequency in Hz (MEG/EEG).
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
        Free-form metadata (mask path, affine, space, sidecar...), carried along.

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
    ) -> None:
        if (tr is None) == (sfreq is None):
            raise ValueError("Give exactly one of 'tr' (fMRI, seconds) and 'sfreq' (MEG/EEG, Hz).")
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

    @property
    def kind(self) -> str:
        """``"fmri"`` (a TR grid) or ``"meg"`` (an sfreq grid)."""
        return "fmri" if self.tr is not None else "meg"

    @property
    def period(self) -> float:
        """Seconds between rows (the TR, or ``1 / sfreq``)."""
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
        if self.tr is not None:
            return self.start + np.arange(self.n_samples) * self.tr
        return self.start + np.arange(self.n_samples) / self.sfreq

    @property
    def end(self) -> float:
        """Stimulus time just after the last row (``start + n_samples * period``)."""
        return self.start + self.n_samples * self.period

    def copy(self, data: Any = None, **changes: Any) -> "Response":
        """A copy, optionally with new data or changed fields (``start=``, ``names=``...)."""
        kwargs = dict(
            tr=self.tr, sfreq=self.sfreq, start=self.start, names=self.names, run=self.run,
            subject=self.subject, info=self.info,
        )
        kwargs.update(changes)
        if "sfreq" in changes and changes["sfreq"] is not None:
            kwargs["tr"] = None
        if "tr" in changes and changes["tr"] is not None:
            kwargs["sfreq"] = None
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
        return self.copy(data=self.data[:, idx], names=[self.names[i] for i in idx])

    def crop(self, first: int = 0, last: int = 0) -> "Response":
        """A copy without the first ``first`` and last ``last`` rows; ``start`` moves with it."""
        stop = self.n_samples - last
        if first < 0 or last < 0 or stop <= first:
            raise ValueError(
                f"cannot trim {first} first and {last} last rows from the {self.n_samples} rows of "
                f"run {self.run!r}."
            )
        return self.copy(data=self.data[first:stop], start=self.start + first * self.period)

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
            Channels to keep, as mne's ``picks`` (default: all data channels).
        run, subject : str
            Names for this run and subject.
        start : float | None
            Stimulus time of the first sample. Default: ``inst.times[0]`` for Raw (i.e. seconds
            from the first sample, ``first_time`` is not added, so that word onsets measured in
            seconds from recording start line up), and the Evoked's ``tmin``.
        """
        import mne
        from mne._fiff.pick import _picks_to_idx

        if isinstance(inst, mne.BaseEpochs):
            inst = inst.average(picks=picks)
        if not isinstance(inst, (mne.io.BaseRaw, mne.Evoked)):
            raise TypeError(
                f"Response.from_mne needs an mne Raw, Epochs or Evoked, got {type(inst).__name__}."
            )
        idx = _picks_to_idx(inst.info, picks)
        data = inst.get_data(picks=idx).T
        ch_names = [inst.ch_names[i] for i in idx]
        t0 = float(inst.times[0]) if start is None else float(start)
        return cls(data, sfreq=float(inst.info["sfreq"]), start=t0, names=ch_names, run=run,
                   subject=subject, info={"mne_info": inst.info})

    def __repr__(self) -> str:
        grid = f"TR {self.tr:g} s" if self.tr is not None else f"{self.sfreq:g} Hz"
        who = f"{self.subject}/" if self.subject else ""
        return (
            f"<Response {who}{self.run!r} | {self.n_samples} × {self.n_targets}, {grid}, "
            f"{self.start:g}–{self.end:g} s>"
        )
