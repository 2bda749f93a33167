"""One network builder for search and deploy: the macro network around the cells, and the cell wiring.

The supernet (:mod:`dmc.supernet`) and compiled networks (:mod:`dmc.compiler`) are both a
:class:`CellNetwork`: the same stems, cells, residual blocks, stage ends and strides, built from one
:class:`Macro`. They differ only in the edge each cell holds (a mixed edge while searching, the chosen
op when deploying) and in how an edge runs, which each passes in.
"""

from dmc.network.body import CellNetwork, CellSlot
from dmc.network.cell import Cell
from dmc.network.macro import MACRO_KINDS, STEMS, Macro

__all__ = ["MACRO_KINDS", "STEMS", "Cell", "CellNetwork", "CellSlot", "Macro"]
