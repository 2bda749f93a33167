"""dmc.detection: dmc networks as MMDetection backbones.

The only part of dmc that imports mmdet, mmcv and mmengine; it builds on the core, never the reverse.
"""
