"""dmc's public API: one function per arrow of the pipeline, usable without the CLI.

    spaces/*.yaml --load_space--> CellSpace | ChainSpace (any family's space) --build_supernet--> Supernet
    SearchConfig --search--> run folder --derive_run--> Genotype | ChainGenotype   (alphas --derive--> ...)
    Genotype | ChainGenotype --build_network--> CompiledNetwork --train--> checkpoint --load_network--> ...
    model name (list_models) --create_model--> CompiledNetwork   (pretrained=PATH: a checkpoint's weights)
    CompiledNetwork --profile--> Profile

ONNX export (``dmc.exporters.onnx.export_onnx``) and MMDetection (``dmc.detection``) build on these. The
command line (``dmc.cli``) reaches the core only through this module.
"""

from dmc.bench import NB201Bench, NB201Result, nb201_arch_string, resolve_nb201_arch
from dmc.compiler import (
                        STYLES,
                        BuildArgs,
                        CompiledNetwork,
                        load_network,
                        save_network,
)
from dmc.compiler.build_args import builds_style, family_of_style
from dmc.compiler.source import (
                        genotype_or_network,
                        network_from_source,
                        resolve_genotype,
)
from dmc.cuda_graphs import CUDA_GRAPH_CHOICES
from dmc.data import DataBundle, load_dataset
from dmc.data.detection_demo import DemoSpec, write_detection_demo
from dmc.derive import derive
from dmc.distributed import is_main_process, launch_environment, launch_local, run_and_exit
from dmc.doctor import diagnose
from dmc.families import family_of
from dmc.families.cell.genotype import Genotype
from dmc.families.cell.space import CellSpace
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.space import ChainSpace
from dmc.genotype import load_genotype, published_genotypes
from dmc.latency import LatencyTable, load_latency_table
from dmc.limits import MAX_INPUT_SIZE
from dmc.models import (
                        DataConfig,
                        ModelEntry,
                        build_network,
                        create_model,
                        list_models,
                        load_pretrained,
                        model_entry,
                        register_model,
)
from dmc.network.feature_info import FeatureInfo
from dmc.out_of_memory import is_out_of_memory
from dmc.outputs import refuse_overwriting_inputs
from dmc.profile import Profile, count_macs, profile
from dmc.report import write_report
from dmc.search import (
                        METHODS,
                        SCHEDULES,
                        AblationResult,
                        BetaSchedule,
                        SearchConfig,
                        SearchResult,
                        ablate,
                        derive_run,
                        search,
                        search_seeds,
)
from dmc.search.beta import CONVENTIONS
from dmc.search.cost import CostTable
from dmc.search.space_settings import load_search_config, search_config_for_space
from dmc.space import bundled_spaces, load_space
from dmc.supernet import Supernet, build_supernet
from dmc.train import TrainConfig, TrainResult, train
from dmc.version import __version__
from dmc.viz import visualize

SearchSpace = CellSpace
"""The cell families' space under its name before network families were units (deprecated: use CellSpace)."""

__all__ = ["CONVENTIONS", "MAX_INPUT_SIZE", "METHODS", "AblationResult", "ablate", "SCHEDULES", "STYLES",
           "__version__", "BetaSchedule", "BuildArgs", "ChainGenotype", "ChainSpace", "CompiledNetwork", "DataBundle",
           "DemoSpec", "Genotype", "NB201Bench", "NB201Result", "Profile", "SearchConfig", "SearchResult", "CellSpace",
           "SearchSpace", "Supernet", "TrainConfig", "TrainResult", "build_network", "build_supernet",
           "bundled_spaces", "count_macs", "derive", "derive_run", "diagnose", "genotype_or_network",
           "is_main_process", "is_out_of_memory", "launch_environment", "launch_local", "load_dataset",
           "load_genotype", "load_network", "load_search_config", "load_space", "nb201_arch_string",
           "network_from_source", "profile", "published_genotypes", "refuse_overwriting_inputs", "resolve_genotype",
           "resolve_nb201_arch", "run_and_exit", "save_network", "search", "search_seeds", "train", "visualize",
           "write_detection_demo", "write_report", "family_of", "family_of_style", "builds_style",
           "search_config_for_space", "DataConfig", "FeatureInfo", "ModelEntry", "create_model", "list_models",
           "load_pretrained", "model_entry", "register_model", "LatencyTable", "load_latency_table", "CostTable",
           "CUDA_GRAPH_CHOICES"]
