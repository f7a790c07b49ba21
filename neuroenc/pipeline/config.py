"""The run configuration (YAML): data set, model, alignment, encoding, outputs, executor.

A config is plain YAML with six sections; every key has a default except ``dataset.loader``::

    name: alice_layers
    dataset:   {loader: alice, args: {resolution: 10mm}, subjects: all, group_mean: true}
    model:     {name: smollm2-135m, layers: all, context_tokens: 256, stride: 128,
                prepend_bos: false, last_layer: normed}
    alignment: {method: lanczos, delays: [1, 2, 3, 4], trim: [0, 0]}
    encoding:  {alphas: {logspace: [-1, 7, 17]}, cv: auto, n_permutations: 1000,
                baseline: [word_rate, sound_power]}
    output:    {dir: neuroenc-results, report: report.html}
    executor:  {kind: serial}

Unknown keys are errors (with a "did you mean" hint), so a typo never silently falls back to a
default.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .._validation import _check_option
from .dask_memory import MEMORY_FRACTION


class ConfigError(ValueError):
    """A run configuration is invalid."""


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


@dataclass
class ModelConfig:
    """The language model and how features are extracted (see
    :class:`neuroenc.features.FeatureExtractor`).

    ``context_tokens``: tokens of left context (an int), or ``full`` (the whole run in one
    forward pass); ``stride``: step between chunks of the strided policy (default
    ``context_tokens // 2``; not with ``full``); ``prepend_bos``: ``true``, ``false``
    (default: the tokenizer's own special tokens) or ``auto``, a BOS token before every
    sequence; ``last_layer``: ``normed`` (default, as transformers returns it) or
    ``pre-norm`` (the last block's output before the final norm).

    Stimulus-level data sets (``dataset.loader: stimuli``): ``pooling`` ``mean``, ``last`` or
    ``last-word`` over each stimulus's tokens; ``context``: ``none`` (each stimulus alone, the
    default) or ``group`` (after the earlier stimuli of its group; ``context_tokens`` then
    counts the group's tokens before it, ``full`` for all); ``padding_side``: ``right`` or
    ``left`` (see :class:`neuroenc.features.StimulusExtractor`)."""

    name: str = "smollm2-135m"
    layers: Any = "all"
    context_tokens: int | str = 256
    stride: int | None = None
    policy: str = "strided"
    pooling: str = "last"
    right_context: int = 0
    prepend_bos: bool | str = False
    last_layer: str = "normed"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: Any = "auto"
    intervention: Any = None
    gguf_file: str | None = None
    revision: str | None = None
    context: str | None = None
    padding_side: str = "right"

    def validate(self, where: str = "") -> "ModelConfig":
        """Check the extraction settings' types and values; returns self."""
        choices = [
            ("model.policy", self.policy, ("strided", "window")),
            ("model.pooling", self.pooling, ("last", "mean", "first", "last-word")),
            ("model.last_layer", self.last_layer, ("normed", "pre-norm")),
            ("model.context", self.context, (None, "none", "group")),
            ("model.padding_side", self.padding_side, ("right", "left")),
        ]
        for name, value, allowed in choices:
            try:
                _check_option(name, value, allowed, where.strip())
            except ValueError as err:
                raise ConfigError(str(err)) from None
        context = self.context_tokens
        if context != "full" and (isinstance(context, bool) or not isinstance(context, int) or context < 1):
            raise ConfigError(
                f"model.context_tokens{where} must be a number of tokens (an int >= 1) or 'full', "
                f"got {context!r}."
            )
        stride = self.stride
        if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int) or stride < 1):
            raise ConfigError(f"model.stride{where} must be an int >= 1 (or null: context_tokens // 2), "
                              f"got {stride!r}.")
        if context == "full" and stride is not None:
            raise ConfigError(
                f"model.stride{where} applies to a number of context_tokens, but context_tokens is "
                "'full' (the whole run in one forward pass); drop model.stride."
            )
        if not (isinstance(self.prepend_bos, bool) or self.prepend_bos == "auto"):
            raise ConfigError(
                f"model.prepend_bos{where} must be true, false or auto, got {self.prepend_bos!r}."
            )
        return self


@dataclass
class AlignmentConfig:
    """Word-rate features to the response grid (see ``neuroenc.align``)."""

    method: str = "lanczos"
    window: int = 3
    cutoff_mult: float = 1.0
    reference: str = "onset"
    trim: list[int] = field(default_factory=lambda: [0, 0])
    delays: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    hrf: str | None = None
    normalize: bool = False
    on_uncovered: str = "raise"
    zscore: bool = True
    tmin: float = -0.1
    tmax: float = 0.6
    decim: int = 1


@dataclass
class EncodingConfig:
    """Encoding models, cross-validation and statistics (see ``neuroenc.encoding``).

    ``blas_threads``: BLAS threads during the fits (1 by default: the decompositions of
    ROI-size problems are small, and extra threads only add synchronisation, which on a busy
    machine can make them hundreds of times slower; ``null`` lets BLAS use every core, which
    pays off for large voxel sets on a machine of one's own)."""

    alphas: Any = field(default_factory=lambda: {"logspace": [-1, 7, 17]})
    cv: Any = "auto"
    n_blocks: int = 5
    gap: int | None = None
    inner_cv: int = 5
    n_permutations: int = 1000
    permutation: str = "auto"
    baseline: list[str] | None = None
    nuisance: list[str] | None = None
    backend: str = "auto"
    n_targets_batch: int | None = None
    blas_threads: int | None = 1
    random_state: int = 0

    def alpha_grid(self) -> np.ndarray:
        """The ridge penalties as an array."""
        alphas = self.alphas
        if isinstance(alphas, dict):
            if set(alphas) != {"logspace"} or len(alphas["logspace"]) != 3:
                raise ConfigError(
                    "encoding.alphas must be a list of numbers or {logspace: [start, stop, num]} "
                    f"(powers of 10), got {alphas!r}."
                )
            start, stop, num = alphas["logspace"]
            return np.logspace(float(start), float(stop), int(num))
        grid = np.asarray(alphas, dtype=float).reshape(-1)
        if grid.size == 0 or (grid <= 0).any():
            raise ConfigError(f"encoding.alphas must be positive numbers, got {alphas!r}.")
        return grid


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


@dataclass
class RunConfig:
    """A whole run: every section, plus the name and the file it came from.

    ``caller_keys``: the dotted keys given by the caller (command line, ``overrides``) rather
    than read from the config file; ``allow_code``: the user's opt-in to what a config file may
    not do alone (see :mod:`neuroenc.pipeline.trust`). Neither can be set by a config file, and
    neither is part of :meth:`to_dict`.
    """

    name: str = "neuroenc-run"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    source: str | None = None
    caller_keys: frozenset[str] = frozenset()
    allow_code: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (as it would be written to YAML), for provenance."""
        out = dataclasses.asdict(self)
        for name in ("source", "caller_keys", "allow_code"):
            out.pop(name)
        return out

    def validate(self) -> "RunConfig":
        """Check values that have a fixed set of choices; returns self."""
        where = f" in {self.source!r}" if self.source else ""
        if not self.dataset.loader:
            raise ConfigError(f"dataset.loader is required{where}: e.g. 'alice'.")
        self.model.validate(where)
        choices = [
            ("alignment.method", self.alignment.method, ("lanczos", "sinc", "rect", "nearest")),
            ("alignment.reference", self.alignment.reference, ("onset", "midpoint")),
            ("alignment.hrf", self.alignment.hrf, (None, "glover", "spm")),
            ("alignment.on_uncovered", self.alignment.on_uncovered, ("raise", "warn", "ignore")),
            ("encoding.permutation", self.encoding.permutation, ("auto", "refit", "circular", "block")),
        ]
        for name, value, allowed in choices:
            try:
                _check_option(name, value, allowed, where.strip())
            except ValueError as err:
                raise ConfigError(str(err)) from None
        if len(self.alignment.trim) != 2 or any(int(t) < 0 for t in self.alignment.trim):
            raise ConfigError(f"alignment.trim must be [first, last] TR counts >= 0{where}, got {self.alignment.trim!r}.")
        if not self.alignment.delays or any(int(d) < 0 for d in self.alignment.delays):
            raise ConfigError(f"alignment.delays must be a non-empty list of TR counts >= 0{where}, got {self.alignment.delays!r}.")
        kind = self.executor.kind
        if not (kind in ("serial", "slurm", "dask") or kind.startswith("local:") or kind.startswith("dask:")):
            raise ConfigError(
                f"Invalid value for 'executor.kind'{where}. Allowed values are 'serial', 'local:N', "
                f"'dask:tcp://host:port', 'slurm', but got {kind!r} instead."
            )
        if self.dataset.transcript_encoding is not None:
            import codecs

            try:
                codecs.lookup(str(self.dataset.transcript_encoding))
            except LookupError:
                raise ConfigError(
                    f"dataset.transcript_encoding{where} is {self.dataset.transcript_encoding!r}, not an "
                    "encoding Python knows; use e.g. 'cp1252', 'latin-1', 'utf-16'."
                ) from None
        self.encoding.alpha_grid()
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
    "model": ModelConfig,
    "alignment": AlignmentConfig,
    "encoding": EncodingConfig,
    "output": OutputConfig,
    "executor": ExecutorConfig,
}


def _build(cls: type, values: Any, section: str, where: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r}{where} must be a mapping, got {type(values).__name__}.")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            raise ConfigError(
                f"unknown key {section}.{key}{where}"
                + (f"; did you mean {section}.{hint[0]}?" if hint else f"; allowed keys: {names}.")
            )
    return cls(**values)


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
    kwargs = {name: _build(cls, values.get(name), name, where) for name, cls in _SECTIONS.items()}
    return RunConfig(name=str(values.get("name", "neuroenc-run")), source=source,
                     caller_keys=frozenset(caller_keys), allow_code=bool(allow_code), **kwargs).validate()


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config.

    Parameters
    ----------
    path : path-like
        The YAML file.
    overrides : dict | None
        Dotted keys to override, e.g. ``{"output.dir": "out", "model.layers": [0, 5]}``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {str(path)!r}.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"could not parse {str(path)!r} as YAML: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(f"a run config must be a YAML mapping in {str(path)!r}.")
    return config_from_dict(apply_overrides(values, overrides), source=str(path),
                            caller_keys=frozenset(overrides or ()))


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
