"""dmc's public API: one function per arrow of the pipeline, usable without the CLI.

    spaces/*.yaml --load_space--> SearchSpace --build_supernet--> Supernet
    SearchConfig --search--> run folder --derive_run--> Genotype      (alphas --derive--> Genotype)
    Genotype --build_network--> CompiledNetwork --train--> checkpoint --load_network--> CompiledNetwork
    CompiledNetwork --profile--> Profile

ONNX export (``dmc.exporters.onnx.export_onnx``) and MMDetection (``dmc.detection``) build on these.
"""

from dmc.compiler import BuildArgs, CompiledNetwork, build_network, load_network, save_network
from dmc.data import DataBundle, load_dataset
from dmc.derive import derive
from dmc.genotype import Genotype, load_genotype, published_genotypes
from dmc.profile import Profile, profile
from dmc.search import BetaSchedule, SearchConfig, SearchResult, derive_run, search, search_seeds
from dmc.space import SearchSpace, load_space
from dmc.supernet import Supernet, build_supernet
from dmc.train import TrainConfig, TrainResult, train

__all__ = ["BetaSchedule", "BuildArgs", "CompiledNetwork", "DataBundle", "Genotype", "Profile", "SearchConfig",
           "SearchResult", "SearchSpace", "Supernet", "TrainConfig", "TrainResult", "build_supernet", "build_network",
           "derive", "derive_run", "load_dataset", "load_genotype", "load_network", "load_space", "profile",
           "published_genotypes", "save_network", "search", "search_seeds", "train"]
