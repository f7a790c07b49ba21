"""A bridge to Brain-Score language: a neuroenc model as an ``ArtificialSubject``, and
Brain-Score-style assemblies as stimulus-level data sets.

- :class:`NeuroencSubject` (a ``brainscore_language.ArtificialSubject``): records, for each
  Brain-Score region, the layers that neuroenc's encoding results chose for it
  (:func:`region_layers`: each target's best layer, or its set of best layers, from
  :meth:`EncodingResults.best <neuroenc.encoding.EncodingResults.best>` and the layer
  comparison). Defined on first use, so that this module imports without Brain-Score; using it
  without the package is an ImportError that names the extra, ``pip install
  neuroenc[brainscore]``.
- :func:`assembly_to_dataset`: a ``NeuroidAssembly``-like :class:`xarray.DataArray`
  (``presentation × neuroid``, with ``stimulus_id``, the text, ``passage_label`` and
  ``experiment`` coordinates, as the Pereira 2018 and Tuckute 2024 assemblies have) as a
  :class:`~neuroenc.datasets.stimuli.StimulusDataset` that ``neuroenc`` fits like any other.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import _check_option
from ..datasets.stimuli import StimulusDataset
from ..encoding.results import EncodingResults
from ..stimuli.responses import StimulusResponses
from ..stimuli.stimulus_set import StimulusSet

logger = logging.getLogger(__name__)

#: The extra that installs Brain-Score language (and xarray).
EXTRA = "brainscore"
#: How a region's layers are chosen from the encoding results.
CHOICES = ("best", "set")
#: Brain-Score's recording target for the whole language network.
LANGUAGE_SYSTEM = "language_system"


def _missing(package: str, err: ImportError) -> ImportError:
    return ImportError(f"the Brain-Score bridge needs the package {package!r}, which is not installed "
                       f"({err}): pip install neuroenc[{EXTRA}]")


def region_layers(results: EncodingResults, targets: Iterable[str] | None = None, choice: str = "best") -> list[int]:
    """The layers a region is recorded from, chosen by the encoding results.

    Parameters
    ----------
    results : EncodingResults
    targets : iterable of str | None
        The region's targets among ``results.targets`` (default all).
    choice : {"best", "set"}
        ``"best"``: each target's best layer (:meth:`EncodingResults.best`); ``"set"``: each
        target's set of best layers, those not reliably worse than the best (the layer
        comparison's ``in_best_set``; needs results fitted with permutations). A region of
        several targets is recorded from the union of their layers.

    Returns
    -------
    layers : list of int
        Layer indices, sorted.
    """
    _check_option("choice", choice, CHOICES)
    names = list(results.targets) if targets is None else [str(t) for t in targets]
    unknown = [t for t in names if t not in results.targets]
    if unknown:
        raise ValueError(f"region targets {unknown} are not in the results; their targets are "
                         f"{list(results.targets)}.")
    if not names:
        raise ValueError("a region needs at least one target of the results.")
    cols = [results.targets.index(t) for t in names]
    if choice == "best":
        table = results.best().set_index("target")
        picked = table.loc[names, "best_layer"]
        if picked.isna().any():
            raise ValueError(f"target(s) {list(picked.index[picked.isna()])} have no finite score at any "
                             "layer; leave them out of the region.")
        return sorted({int(v) for v in picked})
    if results.comparison is None:
        raise ValueError("choice='set' needs the layer comparison (results fitted with permutations: "
                         "n_permutations > 0); use choice='best'.")
    in_set = np.asarray(results.comparison.in_best_set, dtype=bool)[:, cols].any(axis=1)
    return sorted(int(v) for v in results.layers[in_set])


def map_regions(results: EncodingResults, regions: Mapping[str, Sequence[str]] | None = None,
                choice: str = "best") -> dict[str, list[int]]:
    """Brain-Score region -> layers (:func:`region_layers`); default every target of the results
    as ``"language_system"``."""
    regions = {LANGUAGE_SYSTEM: list(results.targets)} if regions is None else dict(regions)
    return {str(region): region_layers(results, targets, choice) for region, targets in regions.items()}


class _SubjectCore:
    """What :class:`NeuroencSubject` does, without Brain-Score's base class (which adds only
    the interface): map the regions, read text as Brain-Score does, and assemble the output."""

    def __init__(self, model: Any, results: EncodingResults, *, regions: Mapping[str, Sequence[str]] | None = None,
                 choice: str = "best", pooling: str = "last", identifier: str | None = None,
                 **extractor_kwargs: Any) -> None:
        self.model = model
        self.results = results
        self.choice = choice
        self.region_layers_ = map_regions(results, regions, choice)
        self.pooling = pooling
        self.extractor_kwargs = dict(extractor_kwargs)
        self._identifier = identifier
        self.recording_: tuple[str, str] | None = None
        self._extractor: Any = None

    def identifier(self) -> str:
        """The model's identifier: ``neuroenc:<model>:<choice>`` unless given."""
        return self._identifier or f"neuroenc:{self.results.model or self.model}:{self.choice}"

    def start_neural_recording(self, recording_target: str, recording_type: str) -> None:
        """Record from ``recording_target`` (a region of :attr:`region_layers_`) on the next
        :meth:`digest_text` calls."""
        if str(recording_target) not in self.region_layers_:
            raise ValueError(f"no layers are mapped to recording target {recording_target!r}; the regions are "
                             f"{list(self.region_layers_)} (pass regions={{{recording_target!r}: [targets]}}).")
        self.recording_ = (str(recording_target), str(recording_type))

    def start_behavioral_task(self, task: str) -> None:
        """neuroenc subjects record neural responses only."""
        raise NotImplementedError(f"NeuroencSubject records neural responses only (start_neural_recording); "
                                  f"the behavioural task {task!r} is not supported.")

    def _features(self, texts: list[str], layers: list[int]) -> Any:
        from ..features.stimuli import StimulusExtractor

        if self._extractor is None or self._extractor.layers != layers:
            self._extractor = StimulusExtractor(self.model, layers=layers, pooling=self.pooling, context="group",
                                                **self.extractor_kwargs)
        stimuli = StimulusSet([str(i) for i in range(len(texts))], texts, groups=["text"] * len(texts),
                              name="digest")
        return self._extractor.transform(stimuli)

    def digest_text(self, text: str | list[str]) -> dict[str, Any]:
        """The recorded region's response to ``text``, as Brain-Score's subjects give it.

        Each part of a list is read after the parts before it (context kept within a call, as
        Brain-Score's Hugging Face subjects do); its features are the region's layers, pooled
        over its tokens (``pooling``), side by side.

        Returns
        -------
        output : dict
            ``{"neural": assembly}``: ``presentation × neuroid``, with ``stimulus``,
            ``stimulus_id`` and ``part_number`` on ``presentation``, ``neuroid_id``, ``layer``
            and ``region`` on ``neuroid``; a ``NeuroidAssembly`` for :class:`NeuroencSubject`.
        """
        if self.recording_ is None:
            raise RuntimeError("call start_neural_recording(recording_target, recording_type) before digest_text.")
        texts = [text] if isinstance(text, str) else [str(t) for t in text]
        if not texts:
            raise ValueError("digest_text needs at least one text.")
        region = self.recording_[0]
        layers = self.region_layers_[region]
        features = self._features(texts, layers)
        blocks = [np.asarray(features[layer], dtype=np.float64) for layer in layers]
        data = np.concatenate(blocks, axis=1)
        layer_of = np.concatenate([np.full(b.shape[1], layer) for b, layer in zip(blocks, layers)])
        unit = np.concatenate([np.arange(b.shape[1]) for b in blocks])
        coords = {
            "stimulus": ("presentation", np.asarray(texts, dtype=object)),
            "stimulus_id": ("presentation", np.arange(len(texts))),
            "part_number": ("presentation", np.arange(len(texts))),
            "neuroid_id": ("neuroid", np.asarray([f"layer{int(layer)}--{int(u)}" for layer, u in zip(layer_of, unit)],
                                                 dtype=object)),
            "layer": ("neuroid", layer_of.astype(np.int64)),
            "region": ("neuroid", np.asarray([region] * data.shape[1], dtype=object)),
        }
        return {"neural": self._assembly(data, coords)}

    def _assembly(self, data: np.ndarray, coords: dict[str, Any]) -> Any:
        try:
            import xarray as xr
        except ImportError as err:
            raise _missing("xarray", err) from None
        return xr.DataArray(data, coords=coords, dims=["presentation", "neuroid"])


_SUBJECT_CLASS: type | None = None


def _subject_class() -> type:
    """:class:`NeuroencSubject`, defined on first use (it subclasses Brain-Score's class)."""
    global _SUBJECT_CLASS
    if _SUBJECT_CLASS is not None:
        return _SUBJECT_CLASS
    try:
        from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
        from brainscore_language.artificial_subject import ArtificialSubject
    except ImportError as err:
        raise _missing("brainscore-language", err) from None

    class NeuroencSubject(_SubjectCore, ArtificialSubject):
        """A neuroenc model as a Brain-Score language ``ArtificialSubject``.

        Each Brain-Score region is recorded from the layers the encoding results chose for its
        targets (:func:`region_layers`).

        Parameters
        ----------
        model : str | path | LoadedModel
            The language model (as :class:`~neuroenc.features.StimulusExtractor` takes it).
        results : EncodingResults
            Encoding results of that model (:meth:`EncodingResults.best` and its layer
            comparison choose the layers).
        regions : mapping of str -> list of str | None
            Brain-Score recording target (``"language_system"``,
            ``"language_system_left_hemisphere"``...) -> the results' targets that stand for it;
            default every target as ``"language_system"``.
        choice : {"best", "set"}
            Each target's best layer, or its set of best layers (see :func:`region_layers`).
        pooling : {"last", "mean", "last-word"}
            How a text part's tokens become one vector (Brain-Score's subjects take the last).
        identifier : str | None
            Brain-Score's model identifier (default ``neuroenc:<model>:<choice>``).
        **extractor_kwargs
            More options of :class:`~neuroenc.features.StimulusExtractor` (``device``,
            ``dtype``, ``context_tokens``...).
        """

        def _assembly(self, data: np.ndarray, coords: dict[str, Any]) -> Any:
            return NeuroidAssembly(data, coords=coords, dims=["presentation", "neuroid"])

    NeuroencSubject.__module__ = __name__
    _SUBJECT_CLASS = NeuroencSubject
    return NeuroencSubject


def __getattr__(name: str) -> Any:
    if name == "NeuroencSubject":
        return _subject_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- assemblies -> data sets
def _coord(assembly: Any, name: str | None, required: bool, what: str) -> np.ndarray | None:
    if name is None:
        return None
    if name not in assembly.coords:
        if not required:
            return None
        raise ValueError(f"the assembly has no coordinate {name!r} ({what}); its coordinates are "
                         f"{sorted(str(c) for c in assembly.coords)}. Pass {what}=<the coordinate's name>.")
    return np.asarray(assembly[name].values)


def assembly_to_dataset(assembly: Any, *, text_coord: str = "stimulus", id_coord: str = "stimulus_id",
                        group_coord: str | None = "passage_label", experiment: Any = None,
                        experiment_coord: str = "experiment", subject_coord: str | None = "subject",
                        neuroid_coord: str = "neuroid_id", repeats: str = "error",
                        drop_nan: bool = True, name: str | None = None) -> StimulusDataset:
    """A Brain-Score-style assembly as a :class:`~neuroenc.datasets.stimuli.StimulusDataset`.

    Parameters
    ----------
    assembly : xarray.DataArray
        ``presentation × neuroid`` (a brainio ``NeuroidAssembly``, or a plain DataArray with the
        same coordinates, MultiIndex levels or not).
    text_coord, id_coord, group_coord : str
        The presentation coordinates of each stimulus's text, id and group (passage); a
        missing ``group_coord`` means no groups.
    experiment : str | None
        Keep the presentations of this experiment only (``experiment_coord``, e.g. Pereira's
        ``"384sentences"``).
    subject_coord : str | None
        The neuroid coordinate that names the subject: each subject's neuroids are a subject
        of the data set (absent: one subject ``"all"``).
    neuroid_coord : str
        The neuroid coordinate that names the targets (absent: ``"0", "1", ...``).
    repeats : {"error", "mean"}
        Presentations of the same stimulus id: an error, or averaged (their texts must agree).
    drop_nan : bool
        Drop a subject's neuroids with a missing value among the kept presentations (Pereira's
        neuroids of an experiment a subject did not do), logged; else NaN is an error.
    name : str | None
        The data set's name (default the assembly's ``identifier`` attribute, or its name).

    Returns
    -------
    dataset : StimulusDataset
    """
    _check_option("repeats", repeats, ("error", "mean"))
    dims = tuple(str(d) for d in assembly.dims)
    if set(dims) != {"presentation", "neuroid"}:
        raise ValueError(f"the assembly's dimensions are {dims}; a neural assembly has ('presentation', "
                         "'neuroid') (average or select the others, e.g. time_bin, first).")
    assembly = assembly.transpose("presentation", "neuroid")
    data = np.asarray(assembly.values, dtype=np.float64)
    keep = np.ones(data.shape[0], dtype=bool)
    if experiment is not None:
        labels = _coord(assembly, experiment_coord, True, "experiment_coord").astype(str)
        keep = labels == str(experiment)
        if not keep.any():
            raise ValueError(f"no presentation of experiment {experiment!r}; the experiments are "
                             f"{sorted(set(labels.tolist()))}.")
    ids = _coord(assembly, id_coord, True, "id_coord")[keep].astype(str)
    texts = _coord(assembly, text_coord, True, "text_coord")[keep].astype(str)
    groups = _coord(assembly, group_coord, False, "group_coord")
    groups = None if groups is None else groups[keep].astype(str)
    data = data[keep]
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    if uniq.size < ids.size:
        if repeats == "error":
            dup = [str(u) for u, c in zip(uniq, np.bincount(inverse)) if c > 1]
            raise ValueError(f"stimulus id(s) {dup[:5]} are presented several times; pass repeats='mean' to "
                             "average the repetitions (or select an experiment).")
        order = np.sort(first)  # the order of first presentation
        pos = {int(f): k for k, f in enumerate(order)}
        row_of = np.array([pos[int(first[i])] for i in inverse])
        for k in range(order.size):
            mismatch = set(texts[row_of == k].tolist())
            if len(mismatch) > 1:
                raise ValueError(f"stimulus id {ids[order[k]]!r} is presented with different texts {sorted(mismatch)}.")
        counts = np.bincount(row_of)
        summed = np.zeros((order.size, data.shape[1]))
        np.add.at(summed, row_of, data)
        data = summed / counts[:, None]
        ids, texts = ids[order], texts[order]
        groups = None if groups is None else groups[order]
        logger.info("assembly: averaged %d presentations into %d stimuli", int(counts.sum()), order.size)
    stimuli = StimulusSet(ids, texts, groups=groups, name=name or _assembly_name(assembly))
    neuroids = _coord(assembly, neuroid_coord, False, "neuroid_coord")
    names = np.arange(data.shape[1]).astype(str) if neuroids is None else neuroids.astype(str)
    subjects = _coord(assembly, subject_coord, False, "subject_coord")
    subjects = np.full(data.shape[1], "all") if subjects is None else subjects.astype(str)
    responses: dict[str, StimulusResponses] = {}
    for subject in dict.fromkeys(subjects.tolist()):
        cols = subjects == subject
        block, block_names = data[:, cols], names[cols]
        bad = ~np.isfinite(block).all(axis=0)
        if bad.any():
            if not drop_nan:
                raise ValueError(f"subject {subject!r} has {int(bad.sum())} neuroid(s) with missing values; pass "
                                 "drop_nan=True to drop them (or select an experiment).")
            logger.info("assembly: subject %s: dropping %d neuroid(s) with missing values", subject, int(bad.sum()))
            block, block_names = block[:, ~bad], block_names[~bad]
        if block.shape[1] == 0:
            logger.warning("assembly: subject %s has no neuroid without missing values; left out", subject)
            continue
        responses[subject] = StimulusResponses(block, list(ids), list(block_names), subject=subject,
                                               info={"source": f"assembly {stimuli.name}"})
    if not responses:
        raise ValueError("no subject of the assembly has a neuroid without missing values.")
    info = {"source": "brainscore assembly", "identifier": assembly.attrs.get("identifier"),
            "experiment": experiment}
    return StimulusDataset(stimuli.name, stimuli, responses, info=info)


def _assembly_name(assembly: Any) -> str:
    return str(assembly.attrs.get("identifier") or assembly.name or "assembly")
