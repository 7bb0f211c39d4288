"""Vitis HLS C++ generation: the design (layers, reuse, buffers) and its rendering."""
