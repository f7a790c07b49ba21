"""Run the Alice demo end to end and write the report (the config of make demo)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="neuroenc-demo", help="output folder (default: ./neuroenc-demo)")


def run(args: argparse.Namespace) -> int:
    print("demo not built yet")
    return 0
