"""The genotype compiler: genotype + build arguments -> a standalone PyTorch network (no supernet code)."""

from dmc.compiler.build import build_args_for, build_network
from dmc.compiler.build_args import STYLES, BuildArgs
from dmc.compiler.networks import CompiledNetwork
from dmc.compiler.saved import load_network, save_network

__all__ = ["STYLES", "BuildArgs", "CompiledNetwork", "build_args_for", "build_network", "load_network", "save_network"]
