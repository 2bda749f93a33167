"""Pictures of searches and genotypes: derived cells (PNG + SVG), alpha trajectories and the beta curve."""

from dmc.viz.cell import draw_cell, draw_genotype
from dmc.viz.history import plot_alphas, plot_beta
from dmc.viz.visualize import visualize

__all__ = ["draw_cell", "draw_genotype", "plot_alphas", "plot_beta", "visualize"]
