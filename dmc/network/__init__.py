"""One network builder for search and deploy: the macro network around the cells or along the chain.

The supernet (:mod:`dmc.supernet`) and compiled networks (:mod:`dmc.compiler`) are both a
:class:`MacroNetwork`: the same stems, cells (or chain layers), residual blocks, stage ends and strides, built
from one :class:`Macro` (cell networks) or :class:`ChainMacro` (chain networks). They differ only in the
block each slot holds (a mixed edge or layer while searching, the chosen op when deploying) and in how it
runs, which each passes in.
"""

from typing import Any

from dmc.network.body import CellSlot, MacroNetwork
from dmc.network.cell import Cell
from dmc.network.chain_macro import ChainMacro, LayerSlot, Stage
from dmc.network.macro import MACRO_KINDS, STEMS, Macro


def macro_from_dict(data: Any, source: str = "macro") -> Macro | ChainMacro:
    """A :class:`ChainMacro` for ``kind: chain``, else a cell network's :class:`Macro`."""
    if isinstance(data, dict) and data.get("kind") == "chain":
        return ChainMacro.from_dict(data, source)
    return Macro.from_dict(data, source)


__all__ = ["MACRO_KINDS", "STEMS", "Cell", "CellSlot", "ChainMacro", "LayerSlot", "Macro", "MacroNetwork", "Stage",
           "macro_from_dict"]
