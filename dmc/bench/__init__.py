"""Look-ups in NAS benchmarks: NAS-Bench-201 through NATS-Bench's topology archive, read as data only."""

from dmc.bench.archive import RestrictedUnpickler, read_pickle_bz2
from dmc.bench.nb201 import Accuracy, DatasetResult, NB201Bench, NB201Result, nb201_arch_string, resolve_nb201_arch

__all__ = ["Accuracy", "DatasetResult", "NB201Bench", "NB201Result", "RestrictedUnpickler", "nb201_arch_string",
           "read_pickle_bz2", "resolve_nb201_arch"]
