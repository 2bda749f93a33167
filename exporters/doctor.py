"""`dmc doctor` checks for the packages the exporters use."""

from __future__ import annotations

from dmc.doctor import Check, package_check


def _onnxruntime_probe() -> str:
    import onnxruntime

    return "providers: " + ", ".join(onnxruntime.get_available_providers())


def checks() -> list[Check]:
    """onnx, onnxscript (the dynamo exporter needs it) and onnxruntime with its providers."""
    return [
        package_check("onnx"),
        package_check("onnxscript"),
        package_check("onnxruntime", probe=_onnxruntime_probe),
    ]
