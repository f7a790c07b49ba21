"""The pipeline: ``neuroenc run config.yaml`` = extract → align → fit → map → report."""
from .config import ConfigError, RunConfig, config_from_dict, load_config
from .distributed import TaskError, run_distributed
from .loaders import LOADERS, add_group_mean, get_loader, load_dataset
from .output import RunOutput
from .run import run_pipeline

__all__ = [
    "LOADERS",
    "ConfigError",
    "RunConfig",
    "RunOutput",
    "TaskError",
    "add_group_mean",
    "config_from_dict",
    "get_loader",
    "load_config",
    "load_dataset",
    "run_distributed",
    "run_pipeline",
]
