"""The pipeline: ``neuroenc run config.yaml`` = extract → align → fit → map → report."""
from .config import ConfigError, RunConfig, load_config
from .loaders import load_dataset
from .run import run_pipeline

__all__ = [
    "run_pipeline",
    "load_config",
    "load_dataset",
    "RunConfig",
    "ConfigError",
]

