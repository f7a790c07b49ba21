"""Run a config end to end: extract, align, fit, map and write the report.

A config file cannot run code, reach another machine or write outside its output folder:
``--allow-code`` (or ``NEUROENC_ALLOW_CODE=1``) lets it name a loader as ``module:function``,
give SLURM shell code or options beyond the jobs' resources, and name a remote Dask scheduler
(see ``neuroenc.pipeline.trust``).
"""
from __future__ import annotations

import argparse

import yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the YAML run config (see analyses/*.yaml)")
    parser.add_argument("--executor", default=None,
                        help="serial (default), local:N, dask:tcp://host:port or slurm")
    parser.add_argument("--out", default=None, help="output folder (overrides output.dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set model.layers=[0,15,30] (YAML value)")
    parser.add_argument("--allow-code", action="store_true",
                        help="let the config run code: a loader given as module:function, SLURM shell "
                             "code (job_script_prologue...) and options beyond the jobs' resources "
                             "(scheduler_options, worker_extra_args...), a Dask scheduler on another "
                             "machine (also: NEUROENC_ALLOW_CODE=1)")


def parse_overrides(items: list[str], out: str | None = None) -> dict:
    """``["a.b=1", ...]`` -> ``{"a.b": 1}`` (values parsed as YAML)."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    if out is not None:
        overrides["output.dir"] = out
    return overrides


def run(args: argparse.Namespace) -> int:
    from ..pipeline import run_pipeline

    output = run_pipeline(args.config, executor=args.executor,
                          overrides=parse_overrides(args.overrides, args.out),
                          verbose=None,  # the logger's level, set by -q / -v (neuroenc.cli)
                          allow_code=getattr(args, "allow_code", False) or None)
    print_outcome(output)
    return 0


def print_outcome(output) -> None:
    """Print where the outputs are and the summary paragraph (after the warnings of the run)."""
    from .._logging import flush_repeated_warnings

    flush_repeated_warnings()
    print(f"results: {', '.join(str(p) for p in output.results.values())}"
          if len(output.results) <= 3 else
          f"results: {len(output.results)} files in {next(iter(output.results.values())).parent}")
    if output.report is not None:
        print(f"report:  {output.report.resolve()}")
    if output.tables:
        print(f"tables:  {next(iter(output.tables.values())).parent.resolve()} "
              f"({', '.join(p.name for p in output.tables.values())})")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in output.timings.items())
    if timing:
        print(f"time:    {timing}")
    summary = output.summary()
    if summary:
        print()
        print(summary)
