"""Run the Alice demo (smollm2-135m, 27 subjects) end to end and write its report."""
from __future__ import annotations

import argparse
from importlib import resources


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="neuroenc-demo", help="output folder (default: ./neuroenc-demo)")
    parser.add_argument("--executor", default=None, help="serial (default), local:N, dask:..., slurm")


def run(args: argparse.Namespace) -> int:
    from ..pipeline import run_pipeline
    from .run import print_outcome

    config = resources.files("neuroenc.pipeline").joinpath("configs", "alice_layers.yaml")
    with resources.as_file(config) as path:
        output = run_pipeline(path, executor=args.executor, overrides={"output.dir": args.out},
                              verbose=None)  # the logger's level, set by -q / -v
    print_outcome(output)
    return 0
