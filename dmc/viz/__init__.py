"""Pictures of searches and genotypes: derived cells or chain layers (PNG + SVG), alpha trajectories, the beta
curve and the tracked Hessian eigenvalue."""

from dmc.viz.cell import draw_cell, draw_genotype
from dmc.viz.chain import draw_chain
from dmc.viz.history import alpha_figure, plot_alphas, plot_beta, plot_hessian
from dmc.viz.visualize import visualize

__all__ = ["alpha_figure", "draw_cell", "draw_chain", "draw_genotype", "plot_alphas", "plot_beta", "plot_hessian",
           "visualize"]
