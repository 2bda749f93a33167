"""dmc's public API: one function per arrow of the pipeline, usable without the CLI.

    spaces/*.yaml --load_space--> SearchSpace --build_supernet--> Supernet
    SearchConfig --search--> run folder --derive_run--> Genotype      (alphas --derive--> Genotype)
"""

from dmc.data import DataBundle, load_dataset
from dmc.derive import derive
from dmc.genotype import Genotype, load_genotype, published_genotypes
from dmc.search import BetaSchedule, SearchConfig, SearchResult, derive_run, search, search_seeds
from dmc.space import SearchSpace, load_space
from dmc.supernet import Supernet, build_supernet

__all__ = ["BetaSchedule", "DataBundle", "Genotype", "SearchConfig", "SearchResult", "SearchSpace", "Supernet",
           "build_supernet", "derive", "derive_run", "load_dataset", "load_genotype", "load_space",
           "published_genotypes", "search", "search_seeds"]
