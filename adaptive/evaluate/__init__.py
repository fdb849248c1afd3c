"""Batch evaluation: configs, the resumable runner, and reports."""
from .config import EvalConfig, load_config, parse_config
from .report import write_report
from .runner import run_eval

__all__ = ["EvalConfig", "load_config", "parse_config", "run_eval", "write_report"]
