"""Brain responses: data on a time grid that know where their targets are.

- :class:`Response`: one run's responses (fMRI by TR, MEG/EEG by ``sfreq``), their target
  names and their ``space``.
- Target spaces (:mod:`~neuroenc.responses.space`): :class:`VolumeSpace` (voxels),
  :class:`SurfaceSpace` (vertices), :class:`ParcelSpace` (atlas parcels), :class:`RoiSpace`
  (named regions), :class:`SensorSpace` (MEG/EEG channels), :class:`CompositeSpace`; written to
  and read from results by :meth:`TargetSpace.to_dict` / :func:`space_from_dict`.
- :func:`read_responses`: one run from ``.npy``, text tables, NIfTI + mask, GIfTI, CIFTI or
  mne ``.fif`` files, with the TR each image stores.
- :func:`read_bold`, :func:`read_subject_bold`: BOLD runs of data sets, with a subject-level
  voxel mask.
"""
from .bold import read_bold
from .io import read_responses
from .response import Response
from .space import RoiSpace, SensorSpace, SurfaceSpace, VolumeSpace

__all__ = [
    "Response",
    "read_responses",
    "read_bold",
    "VolumeSpace",
    "SurfaceSpace",
    "RoiSpace",
    "SensorSpace",
]

