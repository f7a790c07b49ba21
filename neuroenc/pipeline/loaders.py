"""Data-set loaders by name, for run configs (``dataset.loader: alice``)."""
from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import ConfigError
from ..datasets import EncodingDataset
from ..responses import Response
from .optin import OPT_IN, code_allowed

if TYPE_CHECKING:  # the config reads the loaders' kinds, so this module does not import it
    from .config import DatasetConfig

logger = logging.getLogger(__name__)

#: Registered loaders: name -> "module:function".
LOADERS: dict[str, str] = {
    "alice": "neuroenc.datasets.alice:load_alice",
    "naturalstories": "neuroenc.datasets.naturalstories:load_naturalstories",
    "lebel2023": "neuroenc.datasets.lebel2023:load_lebel2023",
    "narratives": "neuroenc.datasets.narratives:load_narratives",
    "lpp": "neuroenc.datasets.lpp:load_lpp",
    "megmasc": "neuroenc.datasets.megmasc:load_megmasc",
    "stimuli": "neuroenc.datasets.stimuli:load_stimuli",
    "naturalstories_rt": "neuroenc.datasets.naturalstories_rt:load_naturalstories_rt",
    "stories": "neuroenc.datasets.stories:load_stories",
}
#: Registered loaders of stimulus-level data sets (a :class:`~neuroenc.datasets.stimuli.StimulusDataset`:
#: stimuli without time, one response each); ``neuroenc run`` reads them as one run, ``"stimuli"``.
#: A custom loader says it is one with an attribute ``stimulus_level = True``.
STIMULUS_LOADERS = ("stimuli", "naturalstories_rt")


def loader_kind(name: str, allow_code: bool | None = False) -> str | None:
    """The kind of data set the loader ``name`` returns: ``"stimuli"`` (stimulus-level: stimuli
    without time, one response each), ``"story"`` (words with times), or None when that cannot
    be told without running code the config may not run (a ``"package.module:function"``
    loader without the opt-in, see :mod:`neuroenc.pipeline.trust`), or for a loader that is
    unknown or cannot be imported (loading it reports why).

    A registered loader's kind is known without importing it; a custom one says it is
    stimulus-level with an attribute ``stimulus_level = True``.
    """
    if name in LOADERS:
        return "stimuli" if name in STIMULUS_LOADERS else "story"
    try:
        loader = get_loader(name, allow_code=allow_code)
    except ConfigError:
        return None
    return "stimuli" if getattr(loader, "stimulus_level", False) else "story"


def is_stimulus_loader(name: str, allow_code: bool | None = False) -> bool:
    """Whether the loader ``name`` returns a stimulus-level data set (False for a custom loader
    that cannot be imported: loading it reports why)."""
    return loader_kind(name, allow_code) == "stimuli"

GROUP = "group"
#: The entry-point group in which installed packages declare more loaders (name -> function).
ENTRY_POINT_GROUP = "neuroenc.loaders"


def _entry_points() -> dict[str, Any]:
    """The loaders installed packages declare (group ``neuroenc.loaders``), by name."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_loaders() -> list[str]:
    """The loader names a config may use without the opt-in: registered, then declared by
    installed packages (entry-point group ``neuroenc.loaders``)."""
    return sorted(LOADERS) + sorted(set(_entry_points()) - set(LOADERS))


def check_loader(name: str, allow_code: bool | None = False, where: str = "") -> str:
    """How ``name`` is resolved: ``"registered"``, ``"entry point"`` or ``"code"`` (a
    ``"package.module:function"`` string, allowed only with the opt-in).

    Raises
    ------
    ConfigError
        For an unknown name, or a function named without the opt-in.
    """
    if name in LOADERS:
        return "registered"
    if name in _entry_points():
        return "entry point"
    if ":" not in str(name):
        raise ConfigError(
            f"Unknown data-set loader {name!r}{where}. Loaders are {available_loaders()} (installed "
            f"packages add more through the entry-point group {ENTRY_POINT_GROUP!r})."
        )
    if not code_allowed(allow_code):
        raise ConfigError(
            f"dataset.loader{where} is {name!r}, a Python function named by the config: loading it "
            f"runs code of the config's choosing. Use a registered loader ({available_loaders()}) or "
            f"one a package declares in the entry-point group {ENTRY_POINT_GROUP!r}; or, if you "
            f"trust this config, {OPT_IN}."
        )
    return "code"


def get_loader(name: str, allow_code: bool | None = False) -> Callable[..., EncodingDataset]:
    """The loader function of a name.

    Parameters
    ----------
    name : str
        A registered name (:data:`LOADERS`), a name declared by an installed package in the
        entry-point group ``neuroenc.loaders``, or ``"package.module:function"``.
    allow_code : bool | None
        Allow ``"package.module:function"`` (it imports and runs any function); also allowed
        by the environment variable ``NEUROENC_ALLOW_CODE=1``. Its use is logged.

    Raises
    ------
    ConfigError
        For an unknown name, a function named without ``allow_code``, or one that cannot be
        imported.
    """
    how = check_loader(name, allow_code)
    if how == "entry point":
        ep = _entry_points()[name]
        try:
            loader = ep.load()
        except Exception as err:  # noqa: BLE001 - a broken third-party package
            raise ConfigError(f"cannot load data-set loader {name!r} ({ep.value}, declared by an "
                              f"installed package): {type(err).__name__}: {err}") from err
        if not callable(loader):
            raise ConfigError(f"data-set loader {name!r} ({ep.value}, declared by an installed package) is "
                              f"{_describe(loader)}, not a function that returns a data set.")
        return loader
    target = LOADERS.get(name, name)
    if how == "code":
        logger.warning("importing and running the data-set loader %r named by the config "
                       "(code allowed by the opt-in)", target)
    module_name, func_name = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
        loader = getattr(module, func_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot import data-set loader {target!r}: {err}") from err
    if not callable(loader):
        raise ConfigError(f"data-set loader {target!r} is {_describe(loader)}, not a function: name a function "
                          "that returns a data set (package.module:function).")
    return loader


def _describe(value: Any) -> str:
    """``42 (an int)``, for messages: the value (shortened) and its type."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    name = type(value).__name__
    return f"{text} (a{'n' if name[:1].lower() in 'aeiou' else ''} {name})"


def _check_returned(name: str, dataset: Any) -> None:
    """A loader must return a data set (the run reads its transcripts and responses)."""
    from ..datasets.stimuli import StimulusDataset

    if not isinstance(dataset, (EncodingDataset, StimulusDataset)):
        raise ConfigError(
            f"data-set loader {name!r} returned {_describe(dataset)}; a loader must return a "
            "neuroenc.datasets._base.EncodingDataset (words with times and responses per run) or, for "
            "stimulus-level data, a StimulusDataset."
        )


def load_dataset(cfg: DatasetConfig, subjects: Sequence[str] | None = None,
                 allow_code: bool | None = False) -> EncodingDataset:
    """Load the data set of a config, restricted to its subjects and runs.

    Parameters
    ----------
    cfg : DatasetConfig
        The ``dataset`` section. Its transcripts are read with ``cfg.transcript_encoding``
        when it is set.
    subjects : sequence of str | None
        Load only these subjects (a task that fits one subject loads only its data). The
        pseudo-subject ``"group"`` (``group_mean: true``) needs every subject.
    allow_code : bool | None
        Allow a loader named as ``"package.module:function"`` (see :func:`get_loader`).
    """
    from ..stimuli.decode import default_encoding

    loader = get_loader(cfg.loader, allow_code=allow_code)
    kwargs = {k: os.path.expandvars(v) if isinstance(v, str) else v for k, v in cfg.args.items()}
    wanted = None if cfg.subjects in (None, "all") else [str(s) for s in _as_list(cfg.subjects)]
    if subjects is not None and GROUP not in subjects:
        wanted = [str(s) for s in subjects]
    params = inspect.signature(loader).parameters
    if wanted is not None:
        for key in ("subjects", "subject"):
            if key in params:
                kwargs[key] = wanted if key == "subjects" else (wanted[0] if len(wanted) == 1 else wanted)
                break
    _check_declared_args(cfg, loader, kwargs)
    with default_encoding(cfg.transcript_encoding):
        dataset = loader(**kwargs)
    _check_returned(cfg.loader, dataset)
    from ..datasets.stimuli import StimulusDataset

    if isinstance(dataset, StimulusDataset):  # one run, "stimuli", on the rows of the stimuli
        dataset = _select_stimulus_subjects(dataset, cfg, wanted).as_encoding_dataset()
    elif wanted is not None:
        missing = [s for s in wanted if s not in dataset.responses and s != GROUP]
        if missing:
            raise ConfigError(
                f"data set {dataset.name!r} has no subject(s) {missing}; it has {dataset.subjects}"
                + (f" (excluded: {dataset.excluded})" if dataset.excluded else "") + "."
            )
        dataset.responses = {s: dataset.responses[s] for s in wanted if s in dataset.responses}
        dataset.confounds = {s: v for s, v in dataset.confounds.items() if s in dataset.responses}
    if cfg.runs not in (None, "all"):
        runs = [str(r) for r in _as_list(cfg.runs)]
        unknown = [r for r in runs if r not in dataset.transcripts]
        if unknown:
            raise ConfigError(f"data set {dataset.name!r} has no run(s) {unknown}; runs are {dataset.runs}.")
        dataset.transcripts = {r: dataset.transcripts[r] for r in runs}
        dataset.responses = {s: {r: v for r, v in rs.items() if r in runs} for s, rs in dataset.responses.items()}
        dataset.confounds = {s: {r: v for r, v in rs.items() if r in runs} for s, rs in dataset.confounds.items()}
    if cfg.group_mean and (subjects is None or GROUP in subjects):
        add_group_mean(dataset)
        if subjects is not None:
            dataset.responses = {s: dataset.responses[s] for s in subjects if s in dataset.responses}
    return dataset


#: What a loader's required arguments look like, for messages.
_EXAMPLES = {"stories": "transcripts: 'stimuli/*.TextGrid', responses: 'sub-{subject}/{run}_bold.csv'"}


def check_args(cfg: DatasetConfig, where: str = "", allow_code: bool | None = False) -> None:
    """Check ``dataset.args`` against the parameters a registered loader declares (``@declare``:
    ``loader: stories``), when a config is read: an unknown key (with the nearest known one), a
    value of the wrong type, or a required argument missing is a ConfigError naming
    ``dataset.args.KEY`` and the config file. Other loaders are checked by their own call."""
    if cfg.loader not in LOADERS:
        return
    loader = get_loader(cfg.loader, allow_code=allow_code)
    _check_declared_args(cfg, loader, dict(cfg.args), where)


def _check_declared_args(cfg: DatasetConfig, loader: Callable[..., Any], kwargs: dict[str, Any],
                         where: str = "") -> None:
    """Check ``dataset.args`` against a loader that declares its parameters (``@declare``): an
    unknown key or a value of the wrong type is a ConfigError naming ``dataset.args.KEY``. A
    loader with ``config_folder_arg`` gets the config file's folder as that argument: its
    relative paths are relative to the config file (an argument given in the config that is
    relative is taken below that folder)."""
    from .._settings import Section, settings_of

    if not getattr(loader, "_parameter_constraints", None):
        return
    settings = settings_of(loader)
    try:
        Section("dataset.args", settings, cfg.args, where)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    params = inspect.signature(loader).parameters
    missing = [k for k in settings if params[k].default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ConfigError(f"dataset.args{where} lacks {', '.join(missing)}, required by loader {cfg.loader!r}; "
                          f"e.g. {_EXAMPLES.get(cfg.loader, 'see its documentation')}.")
    arg = getattr(loader, "config_folder_arg", None)
    folder = getattr(cfg, "config_dir", None)
    if arg and folder is not None:
        value = kwargs.get(arg)
        if value is None:
            kwargs[arg] = folder
        elif not os.path.isabs(os.path.expanduser(str(value))):
            kwargs[arg] = os.path.join(folder, str(value))


def _select_stimulus_subjects(dataset: Any, cfg: DatasetConfig, wanted: list[str] | None) -> Any:
    """A stimulus-level data set restricted to the config's subjects (``runs`` do not apply)."""
    if cfg.runs not in (None, "all"):
        raise ConfigError(
            f"dataset.runs applies to story data sets; {dataset.name!r} is stimulus-level (no runs): drop "
            "dataset.runs (select stimuli in the stimulus file instead)."
        )
    if wanted is not None:
        missing = [s for s in wanted if s not in dataset.responses and s != GROUP]
        if missing:
            raise ConfigError(f"data set {dataset.name!r} has no subject(s) {missing}; it has {dataset.subjects}.")
        dataset.responses = {s: dataset.responses[s] for s in wanted if s in dataset.responses}
    return dataset


def add_group_mean(dataset: EncodingDataset) -> None:
    """Add the pseudo-subject ``"group"``: per run, the mean of the subjects' z-scored responses.

    Every subject must have the run on the same grid (same TR, start and length) and the same
    targets. Confounds that do not vary across subjects (``word_rate``, ``sound_power``) are
    averaged too; per-subject ones (motion) are dropped. ``dataset.info["group_members"]``
    lists the subjects averaged.
    """
    subjects = [s for s in dataset.responses if s != GROUP]
    if len(subjects) < 2:
        raise ConfigError(f"group_mean needs at least 2 subjects; data set {dataset.name!r} has {subjects}.")
    group: dict[str, Response] = {}
    group_confounds: dict[str, Response] = {}
    for run in dataset.runs:
        have = [s for s in subjects if run in dataset.responses[s]]
        if not have:
            continue
        first = dataset.responses[have[0]][run]
        stack = []
        for s in have:
            resp = dataset.responses[s][run]
            if (resp.grid, resp.names) != (first.grid, first.names):
                raise ConfigError(
                    f"group_mean: subject {s!r} run {run!r} is on another grid or has other targets "
                    f"than subject {have[0]!r} ({resp!r} vs {first!r}); group means need identical grids."
                )
            data = resp.data
            std = data.std(axis=0)
            stack.append((data - data.mean(axis=0)) / np.where(std > 0, std, 1.0))
        group[run] = first.copy(data=np.mean(stack, axis=0), subject=GROUP,
                                info={"group_members": have})
        confs = [dataset.confounds.get(s, {}).get(run) for s in have]
        if all(c is not None for c in confs):
            shared = [n for n in confs[0].names if n in ("word_rate", "sound_power") or _same_column(confs, n)]
            if shared:
                cols = [confs[0].names.index(n) for n in shared]
                group_confounds[run] = confs[0].copy(
                    data=np.mean([c.data[:, cols] for c in confs], axis=0), names=shared, subject=GROUP)
    dataset.responses[GROUP] = group
    if group_confounds:
        dataset.confounds[GROUP] = group_confounds
    dataset.info["group_members"] = subjects


def _same_column(confounds: list[Response], name: str) -> bool:
    """Whether every subject has the confound ``name`` with the same values (a property of the
    stimulus, such as a sentence's length, rather than of the subject, such as motion)."""
    first = confounds[0]
    col = first.data[:, first.names.index(name)]
    return all(name in c.names and c.grid == first.grid and np.array_equal(c.data[:, c.names.index(name)], col)
               for c in confounds[1:])


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]
