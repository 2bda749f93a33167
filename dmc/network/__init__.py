"""One network builder for search and deploy: the macro network around the cells or along the chain.

The supernet (:mod:`dmc.supernet`) and compiled networks (:mod:`dmc.compiler`) are both a
:class:`dmc.network.body.MacroNetwork`: the same stems, cells (or chain layers), residual blocks, stage ends and
strides, laid out by the network's family (:mod:`dmc.families`) from its macro. They differ only in the block each
slot holds (a mixed edge or layer while searching, the chosen op when deploying) and in how it runs, which each
passes in. (The package imports nothing: the families build their blocks from :mod:`dmc.network.cell`, and
:mod:`dmc.network.body` asks the families.)
"""
