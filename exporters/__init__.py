"""dmc.exporters: turns compiled dmc networks into deployable formats (ONNX).

The only part of dmc that imports onnx and onnxruntime; it builds on the core, never the reverse.
"""
