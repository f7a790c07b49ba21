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
from .bold import read_bold, read_subject_bold
from .io import RESPONSE_FORMATS, read_responses
from .response import Response, pick_channels
from .space import (
                    CompositeSpace,
                    ParcelSpace,
                    RoiSpace,
                    SensorSpace,
                    SurfaceSpace,
                    TargetSpace,
                    VolumeSpace,
                    concat_spaces,
                    space_from_dict,
)

__all__ = [
    "CompositeSpace",
    "ParcelSpace",
    "RESPONSE_FORMATS",
    "Response",
    "RoiSpace",
    "SensorSpace",
    "SurfaceSpace",
    "TargetSpace",
    "VolumeSpace",
    "concat_spaces",
    "pick_channels",
    "read_bold",
    "read_responses",
    "read_subject_bold",
    "space_from_dict",
]
