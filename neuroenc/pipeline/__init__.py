"""The pipeline: ``neuroenc run config.yaml`` = extract → align → fit → map → report."""
from .config import ConfigError, RunConfig, config_from_dict, load_config

__all__ = ["ConfigError", "RunConfig", "config_from_dict", "load_config"]
