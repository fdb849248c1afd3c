"""`adaptive tune`: search sampling-policy parameters on a sample bank (tuning split), report held-out
Pareto frontiers, write the best policy per budget. See search.py (families, selection), config.py (search
space), frontier.py, plot.py, outputs.py (files and report); the command is adaptive/cli/tune.py."""
from .outputs import run_tune
from .config import TuneConfig, load_tune_config, parse_tune_config
from .frontier import cheapest_matching, pareto
from .search import Candidate, Tuner, TuneResult

__all__ = ["Candidate", "TuneConfig", "TuneResult", "Tuner", "cheapest_matching", "load_tune_config",
           "parse_tune_config", "pareto", "run_tune"]
