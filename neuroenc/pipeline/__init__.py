"""The pipeline: ``neuroenc run config.yaml`` = extract → align → fit → map → report."""
from .config import ConfigError, RunConfig, config_from_dict, load_config
from .loaders import LOADERS, add_group_mean, get_loader, load_dataset
from ..encoding.memory import FitShape, partition_fit, target_chunk_size
from .distributed import TaskError, run_distributed
from .run import RunOutput, group_best_table, run_pipeline

__all__ = [
    "LOADERS",
    "ConfigError",
    "RunConfig",
    "FitShape",
    "RunOutput",
    "TaskError",
    "add_group_mean",
    "config_from_dict",
    "get_loader",
    "group_best_table",
    "load_config",
    "load_dataset",
    "partition_fit",
    "run_distributed",
    "run_pipeline",
    "target_chunk_size",
]
