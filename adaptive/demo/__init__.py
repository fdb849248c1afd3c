"""`adaptive demo`: prove adaptive compute on held-out prompts (pipeline.py: stages; report.py: figures)."""
from .config import DemoConfig, load_demo_config, parse_demo_config
from .pipeline import run_demo

__all__ = ["DemoConfig", "load_demo_config", "parse_demo_config", "run_demo"]
