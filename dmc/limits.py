"""Upper bounds on the sizes users give (spec fields, genotypes): far beyond any network that fits a machine,
so that a typo such as ``channels: 1000000000000`` is refused in one line before terabytes are allocated."""

MAX_CHANNELS = 1024
"""Initial channels of a network (DARTS uses 16 to search, 36 and 48 to train)."""
MAX_LAYERS = 256
"""Cells of a network (cells per stage for NAS-Bench-201)."""
MAX_STEM_MULTIPLIER = 16
MAX_CELL_NODES = 16
"""Intermediate nodes of a cell (DARTS: 4, NAS-Bench-201: 3)."""
MAX_CELL_STATES = 2 + MAX_CELL_NODES
"""States of a cell: its inputs (at most 2) and its nodes."""
MAX_INPUT_SIZE = 4096
"""Height and width of the images a network is profiled or checked at (ImageNet: 224, COCO: up to 1333)."""
