"""Post-training int8 quantization of float IR graphs (from ONNX or float TFLite models)."""

from edgekit.quantize.dataset import Calibration
from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db
from edgekit.quantize.quantizer import QuantConfig, calibrate, prepare, quantize

__all__ = [
    "Calibration",
    "QuantConfig",
    "calibrate",
    "dequantize_array",
    "prepare",
    "quantize",
    "quantize_array",
    "sqnr_db",
]
