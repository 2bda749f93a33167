"""DARTS- search: configuration, beta schedules, the bi-level loop, resume, and derivation from runs."""

from dmc.runfolder import read_history
from dmc.search.ablation import AblationResult, AblationRun, ablate
from dmc.search.beta import SCHEDULES, BetaSchedule
from dmc.search.config import METHODS, SearchConfig
from dmc.search.derive_run import derive_run
from dmc.search.run import SearchResult, search, search_seeds
from dmc.search.space_settings import load_search_config, search_config_for_space

__all__ = ["METHODS", "SCHEDULES", "AblationResult", "AblationRun", "BetaSchedule", "SearchConfig", "SearchResult",
           "ablate", "derive_run", "load_search_config", "read_history", "search", "search_config_for_space",
           "search_seeds"]
