"""Alignment: word-rate features to fMRI TRs and to MEG/EEG sample grids."""
from .response import Response

__all__ = ["Response"]
