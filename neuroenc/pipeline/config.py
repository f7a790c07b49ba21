"""The run configuration (YAML): data set, model, alignment, encoding, outputs, executor.

A config is plain YAML with six sections; every key has a default except ``dataset.loader``::

    name: alice_layers
    dataset:   {loader: alice, args: {resolution: 10mm}, subjects: all, group_mean: true}
    model:     {name: smollm2-135m, layers: all, context_tokens: 256, stride: 128,
                prepend_bos: auto, last_layer: normed}
    alignment: {method: lanczos, delays: [1, 2, 3, 4], trim: [0, 0]}
    encoding:  {alphas: {logspace: [-1, 7, 17]}, cv: auto, n_permutations: 1000,
                baseline: [word_rate, sound_power]}
    output:    {dir: neuroenc-results, report: report.html}
    executor:  {kind: serial}

The ``model``, ``alignment`` and ``encoding`` sections are the parameters of the library calls
they configure (:class:`~neuroenc.features.FeatureExtractor`,
:func:`~neuroenc.align.make_fmri_design` / :func:`~neuroenc.align.make_meg_design`,
:func:`~neuroenc.encoding.fit_encoding`), read from their signatures, declared constraints and
docstrings (:func:`section_settings`): the same names, defaults and allowed values. A key the
config does not give is not passed, so the library's default applies; results record every
effective value (:meth:`RunConfig.to_dict` with ``effective=True``).

For a stimulus-level data set (``dataset.loader: stimuli``, ``naturalstories_rt``, or a custom
loader with ``stimulus_level = True``) the sections are those of its own calls:
``model`` is :class:`~neuroenc.features.StimulusExtractor`'s (pooling ``mean`` by default,
``context``, ``padding_side``; no ``policy``), ``encoding`` is
:func:`~neuroenc.encoding.stimulus_fit.fit_stimuli`'s (``cv: group-kfold:K`` or ``kfold:K``), and there is
no ``alignment`` (no time).

Unknown keys are errors (with a "did you mean" hint), so a typo never silently falls back to a
default; so are values of the wrong type (naming the field, the value and what it must be), a
key given twice in the file, and a file that is not UTF-8.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from .._settings import (
    Choices,
    Interval,
    ListOf,
    Pattern,
    Section,
    Setting,
    merge_settings,
    settings_of,
    union_settings,
)
from .._validation import ConfigError
from ..encoding.memory import MEMORY_FRACTION

#: Subject or run names: strings, or numbers (``subjects: [18, 22]``).
_NAMES = ListOf(str, Interval(Integral, None, None, closed="neither"))


@dataclass
class DatasetConfig:
    """Which data set, subjects and runs.

    ``loader`` is a registered name (``alice``, ``naturalstories``, ``lebel2023``,
    ``narratives``, ``lpp``, ``megmasc``), a name an installed package declares in the
    entry-point group ``neuroenc.loaders``, or ``"package.module:function"`` (runs code: needs
    ``--allow-code``, see :mod:`neuroenc.pipeline.trust`); ``args`` are passed to it.
    ``group_mean`` adds a subject ``"group"``: the mean response over subjects (for data sets
    where every subject heard the same runs, like Alice). ``transcript_encoding``: the encoding
    of the data set's transcript files when they are not UTF-8 (or UTF-16 with a byte-order
    mark), e.g. ``cp1252``; every transcript the loader reads uses it.
    """

    loader: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    subjects: Any = "all"
    runs: Any = "all"
    group_mean: bool = False
    transcript_encoding: str | None = None
    #: The config file's folder (set when a config is read, not a key): the ``stories`` loader's
    #: relative paths are relative to it.
    config_dir: ClassVar[str | None] = None

    #: The values each key takes (checked when a config is read, as the library sections are).
    _parameter_constraints: ClassVar[dict] = {
        "loader": [str],
        "args": [dict],
        "subjects": [None, str, Interval(Integral, None, None, closed="neither"), _NAMES],
        "runs": [None, str, Interval(Integral, None, None, closed="neither"), _NAMES],
        "group_mean": ["boolean"],
        "transcript_encoding": [None, str],
    }


# ---------------------------------------------------------------------- sections from the library
#: Settings of the config's own: not a parameter of a library call (declared here, once).
MODEL_ONLY = {
    "name": Setting.declare("name", "smollm2-135m", [str], """The language model: an alias
        (smollm2-135m, minilm-l6), hub id, local folder or .gguf file."""),
}
ENCODING_ONLY = {
    "baseline": Setting.declare("baseline", None, [None, ListOf(str)], """Names of the
        regressors fitted as a baseline model with the same folds: the data set's confounds
        (e.g. [word_rate, sound_power]), and for stimulus-level data sets also length, n_words,
        position, log_frequency or surprisal, computed from the stimuli; for stories word_rate,
        length, log_frequency, position (in the sentence), story_position or surprisal, computed
        from the words and aligned as a one-column layer (a data set's own confound of the same
        name takes precedence); null: none."""),
    "blas_threads": Setting.declare("blas_threads", 1, [None, Interval(Integral, 1, None, closed="left")],
        """BLAS threads during the fits (1 by default: the decompositions of ROI-size problems are
        small, and extra threads only add synchronisation, which on a busy machine can make them
        hundreds of times slower; null lets BLAS use every core, which pays off for large voxel
        sets on a machine of one's own)."""),
}
#: Parameters of the library calls that are not config keys: data, provenance, verbosity, and
#: what another section or the pipeline sets (the cache folder, the word time reference, the
#: surprisal, asked for by ``encoding.baseline``), per kind of data set.
_NOT_SETTINGS = {
    ("model", "story"): ("model", "cache_dir", "reference", "surprisal", "verbose"),
    ("model", "stimuli"): ("model", "cache_dir", "surprisal", "verbose"),
    ("alignment", "story"): ("features", "responses", "layers", "runs", "dtype"),
    ("encoding", "story"): ("designs", "Y", "groups", "targets", "nuisance", "noise_ceiling", "provenance",
                            "settings", "verbose", "baseline_models", "scoring"),
    ("encoding", "stimuli"): ("features", "responses", "baseline", "noise_ceiling", "layers", "provenance",
                              "settings", "verbose"),
}
#: The kinds of data set, each with the library calls of its own: ``story`` (words with times:
#: FeatureExtractor, make_fmri_design / make_meg_design, fit_encoding) and ``stimuli``
#: (stimulus-level, no time: StimulusExtractor, fit_stimuli; no alignment). ``"either"``: a
#: config whose loader's kind is not known yet (see :func:`data_kind`).
KINDS = {"story": "story data sets", "stimuli": "stimulus-level data sets"}
#: The config sections that map onto library calls.
LIBRARY_SECTIONS = ("model", "alignment", "encoding")


@functools.lru_cache(maxsize=None)
def section_settings(section: str, kind: str = "story") -> dict[str, Setting]:
    """The settings of a config section that maps onto library calls, from their signatures,
    declared constraints and numpydoc (:mod:`neuroenc._settings`):

    - ``model``: :class:`~neuroenc.features.FeatureExtractor` for stories,
      :class:`~neuroenc.features.StimulusExtractor` for stimulus-level data sets (and
      ``name``, the model);
    - ``alignment``: :func:`~neuroenc.align.make_fmri_design` and
      :func:`~neuroenc.align.make_meg_design` (their shared options agree); none for
      stimulus-level data sets (no time);
    - ``encoding``: :func:`~neuroenc.encoding.fit_encoding` for stories,
      :func:`~neuroenc.encoding.stimulus_fit.fit_stimuli` for stimulus-level data sets (and ``baseline``,
      ``blas_threads``).

    Parameters
    ----------
    section : {"model", "alignment", "encoding"}
    kind : {"story", "stimuli", "either"}
        The kind of data set (:data:`KINDS`); ``"either"``: every key either kind takes,
        with either kind's values (:func:`~neuroenc._settings.union_settings`), for a config
        whose loader's kind is known only once it may be imported.
    """
    from ..align import make_fmri_design, make_meg_design
    from ..encoding import LayerSweep, fit_encoding
    from ..encoding.stimulus_fit import fit_stimuli
    from ..features import FeatureExtractor, StimulusExtractor

    if section not in LIBRARY_SECTIONS:
        raise KeyError(section)
    if kind == "either":
        return union_settings({label: section_settings(section, k) for k, label in KINDS.items()})
    if kind not in KINDS:
        raise KeyError(kind)
    skip = _NOT_SETTINGS.get((section, kind), ())
    if section == "model":
        if kind == "stimuli":
            return {**MODEL_ONLY, **settings_of(StimulusExtractor, exclude=skip, docs=(FeatureExtractor,))}
        return {**MODEL_ONLY, **settings_of(FeatureExtractor, exclude=skip)}
    if section == "alignment":
        if kind == "stimuli":
            return {}
        return merge_settings(settings_of(make_fmri_design, exclude=skip),
                              settings_of(make_meg_design, exclude=skip))
    if kind == "stimuli":
        return {**settings_of(fit_stimuli, exclude=skip, docs=(LayerSweep, fit_encoding)), **ENCODING_ONLY}
    return {**settings_of(fit_encoding, exclude=skip, docs=(LayerSweep,)), **ENCODING_ONLY}


def data_kind(loader: str, allow_code: bool | None = False) -> str:
    """The kind of data set a config's loader gives (:data:`KINDS`), which says what its
    ``model``, ``alignment`` and ``encoding`` sections hold; ``"either"`` when it cannot be
    told without importing code the config may not run yet (a ``"package.module:function"``
    loader without the opt-in), or for an unknown loader (the run reports it)."""
    from .loaders import loader_kind  # the loaders and their packages, only when a config is read

    return loader_kind(loader, allow_code) or "either" if loader else "story"


class EncodingSection(Section):
    """The ``encoding`` section (:class:`~neuroenc._settings.Section`), with its penalties as
    an array."""

    __slots__ = ()

    def alpha_grid(self) -> np.ndarray:
        """The ridge penalties as an array (the library's default grid when none is given)."""
        from ..encoding.sweep import DEFAULT_ALPHAS

        alphas = self.alphas
        if alphas is None:
            return np.asarray(DEFAULT_ALPHAS, dtype=float)
        return np.asarray(self.settings["alphas"].to_value(alphas), dtype=float).reshape(-1)


def make_section(section: str, values: Any = None, where: str = "", kind: str = "story",
                 loader: str | None = None) -> Section:
    """A checked config section from its YAML mapping, for a kind of data set (a
    :class:`ConfigError` for an unknown key or a value of the wrong type, naming the field,
    the value and what it must be; a key or value of the other kind of data set says so)."""
    cls = EncodingSection if section == "encoding" else Section
    settings = section_settings(section, kind)
    values = {} if values is None else values
    if kind in KINDS and isinstance(values, dict) and values:
        what = f"dataset.loader {loader!r}" if loader else "the data set"
        if not settings:
            raise ConfigError(
                f"the {section} section{where} applies to {KINDS['story']} (words with times); "
                f"{what} is stimulus-level (one response per stimulus, no time): drop {section}."
            )
        other_kind = next(k for k in KINDS if k != kind)
        other = section_settings(section, other_kind)
        for key, value in values.items():
            if key not in settings and key in other:
                raise ConfigError(
                    f"unknown key {section}.{key}{where}: it applies to {KINDS[other_kind]} "
                    f"({other[key].owner}), and {what} is one of the {KINDS[kind]} "
                    f"({', '.join(dict.fromkeys(s.owner for s in settings.values() if s.owner != 'config'))}); "
                    f"drop {section}.{key}. Allowed keys: {list(settings)}."
                )
            if key in settings and not settings[key].is_valid(value) and key in other and other[key].is_valid(value):
                try:
                    settings[key].check(value, f"{section}.{key}", where)
                except ValueError as err:
                    raise ConfigError(f"{str(err).rstrip('.')}: {value!r} applies to {KINDS[other_kind]} "
                                      f"({other[key].owner}), and {what} is one of the {KINDS[kind]}.") from None
    try:
        return cls(section, settings, values, where)
    except ValueError as err:
        raise ConfigError(str(err)) from None


@dataclass
class OutputConfig:
    """Where results, the feature cache and the report go.

    ``dir``: the output folder, relative to the working directory (results in
    ``<dir>/results/``); ``cache_dir``: the features cache, relative to the config file's folder
    and inside it (default ``<dir>/cache``; share one across the configs of a folder to reuse
    features); ``report``: the report's file name inside ``dir`` (``null``: no report).
    Absolute paths, or paths that leave their folder, are accepted only from the command
    line (``--set``), never from a config file (see :mod:`neuroenc.pipeline.trust`)."""

    dir: str = "neuroenc-results"
    cache_dir: str | None = None
    report: str | None = "report.html"

    _parameter_constraints: ClassVar[dict] = {
        "dir": [str],
        "cache_dir": [None, str],
        "report": [None, str],
    }


@dataclass
class ExecutorConfig:
    """How tasks run: ``serial``, ``local:N`` (a Dask LocalCluster), ``dask:tcp://host:port``
    (an existing scheduler; or ``kind: dask`` with ``address``) or ``slurm`` (dask-jobqueue;
    options in ``slurm``).

    A config file may name only a scheduler on this machine; give another machine's address on
    the command line (``--executor dask:tls://host:8786``) or opt in with ``--allow-code``.
    ``security``: TLS certificates for a ``tls://`` scheduler, as dask's
    :class:`~distributed.security.Security` takes them: ``tls_ca_file``, ``tls_client_cert``,
    ``tls_client_key`` (paths relative to the config file's folder) and
    ``require_encryption``.

    ``retries``: retries of a failed task; ``layers_per_task`` / ``target_chunk``: the size of
    a fit task (default: from the workers' memory); ``memory_fraction``: the share of a
    worker's memory one fit task may plan to use; ``timeout``: seconds to wait for a
    scheduler and its first worker."""

    kind: str = "serial"
    address: str | None = None
    security: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    retries: int = 2
    layers_per_task: int | None = None
    target_chunk: int | None = None
    memory_fraction: float = MEMORY_FRACTION
    timeout: float = 30.0

    _parameter_constraints: ClassVar[dict] = {
        "kind": [Choices("serial", "slurm", "dask"), Pattern(r"local:[1-9]\d*", "local:N"),
                 Pattern(r"dask:\S+", "dask:tcp://host:port")],
        "address": [None, str],
        "security": [dict],
        "slurm": [dict],
        "retries": [Interval(Integral, 0, None, closed="left")],
        "layers_per_task": [None, Interval(Integral, 1, None, closed="left")],
        "target_chunk": [None, Interval(Integral, 1, None, closed="left")],
        "memory_fraction": [Interval(Real, 0, 1, closed="right")],
        "timeout": [Interval(Real, 0, None, closed="neither")],
    }


@dataclass
class RunConfig:
    """A whole run: every section, plus the name and the file it came from.

    ``model``, ``alignment`` and ``encoding`` are sections (:class:`~neuroenc._settings.Section`):
    ``config.model.context_tokens`` is the effective value, ``config.model.given`` what the
    config gave. They hold the settings of the library calls of the data set's ``kind``
    (:data:`KINDS`, from ``dataset.loader``: :func:`data_kind`): ``"story"`` or ``"stimuli"``,
    or ``"either"`` until a custom loader's kind is known (:func:`resolve_kind`).
    ``caller_keys``: the dotted keys given by the caller (command line, ``overrides``) rather
    than read from the config file; ``allow_code``: the user's opt-in to what a config file may
    not do alone (see :mod:`neuroenc.pipeline.trust`). Neither can be set by a config file,
    and neither (nor ``kind``) is part of :meth:`to_dict`.
    """

    name: str = "neuroenc-run"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: Section = field(default_factory=lambda: make_section("model"))
    alignment: Section = field(default_factory=lambda: make_section("alignment"))
    encoding: EncodingSection = field(default_factory=lambda: make_section("encoding"))
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    source: str | None = None
    caller_keys: frozenset[str] = frozenset()
    allow_code: bool = False
    kind: str = "story"

    def to_dict(self, effective: bool = False) -> dict[str, Any]:
        """A plain dict, as it would be written to YAML.

        ``effective=False``: the values the config gave (reading it back gives the same
        config); ``effective=True``: every setting's effective value, the library's default
        where none was given (for provenance and result keys)."""
        out: dict[str, Any] = {"name": self.name}
        for name in _SECTIONS:
            section = getattr(self, name)
            if isinstance(section, Section):
                out[name] = section.effective() if effective else dict(section.given)
            else:
                out[name] = dataclasses.asdict(section)
        return out

    def validate(self) -> "RunConfig":
        """Check what the sections cannot check alone; returns self.

        The model's settings are checked together by the extractor of the data set's kind
        itself (e.g. a ``stride`` with ``context_tokens: full``), before anything is loaded."""
        from ..features import FeatureExtractor, StimulusExtractor

        where = f" in {self.source!r}" if self.source else ""
        if not self.dataset.loader:
            raise ConfigError(f"dataset.loader is required{where}: e.g. 'alice'.")
        if self.kind in KINDS:
            extractor = StimulusExtractor if self.kind == "stimuli" else FeatureExtractor
            try:
                extractor(self.model.name, **self.model.kwargs(extractor)).check_params()
            except (ValueError, TypeError) as err:
                raise ConfigError(f"model settings{where}: {err}") from None
        from .loaders import check_args  # a registered loader's declared arguments

        check_args(self.dataset, where, self.allow_code)
        if self.dataset.transcript_encoding is not None:
            import codecs

            try:
                codecs.lookup(str(self.dataset.transcript_encoding))
            except LookupError:
                raise ConfigError(
                    f"dataset.transcript_encoding{where} is {self.dataset.transcript_encoding!r}, not an "
                    "encoding Python knows; use e.g. 'cp1252', 'latin-1', 'utf-16'."
                ) from None
        return self

    def resolve(self, path: str | None) -> Path | None:
        """A path from the config: absolute as is; relative to the config file's folder."""
        if path is None:
            return None
        p = Path(os.path.expandvars(str(path))).expanduser()
        if p.is_absolute() or self.source is None:
            return p
        return Path(self.source).parent / p


_SECTIONS = {
    "dataset": DatasetConfig,
    "model": "model",
    "alignment": "alignment",
    "encoding": "encoding",
    "output": OutputConfig,
    "executor": ExecutorConfig,
}


def _build(cls: Any, values: Any, section: str, where: str, kind: str = "story", loader: str | None = None) -> Any:
    if isinstance(cls, str):
        return make_section(cls, values, where, kind, loader)
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r}{where} must be a mapping, got {type(values).__name__}.")
    try:  # unknown keys and values of the wrong type, from the declared constraints
        Section(section, _dataclass_settings(cls), values, where)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return cls(**values)


@functools.lru_cache(maxsize=None)
def _dataclass_settings(cls: type) -> dict[str, Setting]:
    """The settings of a config section of its own (``dataset``, ``output``, ``executor``): its
    fields, their defaults and declared ``_parameter_constraints``."""
    declared = cls._parameter_constraints
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(cls)}
    return {name: Setting.declare(name, default, declared[name], "") for name, default in defaults.items()}


#: The run's name (a label of its results and report).
NAME = Setting.declare("name", "neuroenc-run", [str], "The run's name.")


def config_from_dict(values: dict[str, Any], source: str | None = None,
                     caller_keys: Any = (), allow_code: bool = False) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a dict (as parsed from YAML).

    ``source``: the config file the values came from (None: the caller's own values);
    ``caller_keys``: the dotted keys among them that the caller gave (overrides).
    """
    where = f" in {source!r}" if source else ""
    if not isinstance(values, dict):
        raise ConfigError(f"a run config must be a YAML mapping{where}.")
    allowed = ["name", *_SECTIONS]
    for key in values:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            raise ConfigError(
                f"unknown section {key!r}{where}"
                + (f"; did you mean {hint[0]!r}?" if hint else f"; sections are {allowed}.")
            )
    dataset = _build(DatasetConfig, values.get("dataset"), "dataset", where)
    dataset.config_dir = None if source is None else str(Path(source).absolute().parent)  # dataset.args paths
    kind = data_kind(dataset.loader, allow_code)
    kwargs = {name: _build(cls, values.get(name), name, where, kind, dataset.loader)
              for name, cls in _SECTIONS.items() if name != "dataset"}
    name = values.get("name", NAME.default)
    try:
        NAME.check(name, "name", where)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return RunConfig(name=name, dataset=dataset, source=source,
                     caller_keys=frozenset(caller_keys), allow_code=bool(allow_code), kind=kind,
                     **kwargs).validate()


def resolve_kind(config: RunConfig) -> RunConfig:
    """The config with the sections of its data set's kind: itself when they already are, else
    rebuilt from the values it gives (a :class:`ConfigError` for a key or value that kind does
    not take). For a config whose custom loader could not be imported when it was built
    (``kind="either"``), once the opt-in allows it (see :mod:`neuroenc.pipeline.trust`)."""
    kind = data_kind(config.dataset.loader, config.allow_code)
    if kind == config.kind:
        return config
    return config_from_dict(config.to_dict(), source=config.source, caller_keys=config.caller_keys,
                            allow_code=config.allow_code)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    one silently: a second ``model:`` section would replace the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML reports unhashable keys itself
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(key, line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file's content, read as a run config is: UTF-8 (a byte-order mark is allowed),
    safe types only, no key twice in a mapping.

    Raises
    ------
    ConfigError
        For a file that is not UTF-8, not YAML, or gives a key twice (naming the key and both
        lines).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {err.start}: "
            f"{err.object[err.start:err.start + 1]!r}); save it as UTF-8."
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as err:
        raise ConfigError(
            f"{str(path)!r} gives the key {err.key!r} twice (lines {err.first} and {err.line}); YAML "
            "would keep only the last one. Merge them into one."
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"could not parse {str(path)!r} as YAML: {err}") from err


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None,
                allow_code: bool = False) -> RunConfig:
    """Read a YAML run config.

    Parameters
    ----------
    path : path-like
        The YAML file.
    overrides : dict | None
        Dotted keys to override, e.g. ``{"output.dir": "out", "model.layers": [0, 5]}``.
    allow_code : bool
        The opt-in of :mod:`neuroenc.pipeline.trust` (a ``"package.module:function"`` loader
        is imported to tell its kind of data set only with it).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ConfigError
        For a file that is not UTF-8 or not YAML, a key given twice, an unknown key or a value
        of the wrong type.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {str(path)!r}.")
    values = read_yaml(path) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"a run config must be a YAML mapping in {str(path)!r}.")
    return config_from_dict(apply_overrides(values, overrides), source=str(path),
                            caller_keys=frozenset(overrides or ()), allow_code=allow_code)


def apply_overrides(values: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set dotted keys (``{"model.layers": [0, 5]}``) in a config dict (a copy); an empty
    section (``model:`` with nothing under it) is filled in."""
    import copy

    values = copy.deepcopy(values)
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for i, key in enumerate(parents):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"cannot set {dotted!r}: {'.'.join(parents[:i + 1])!r} is {child!r}, not a section."
                )
            node = child
        node[leaf] = value
    return values
