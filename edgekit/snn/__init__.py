"""Spiking networks with learned synaptic delays: IR ops, quantisation, golden model, importers.

The flow is importer -> `FloatSnn` (float parameters, integer delays) -> `quantize` -> IR graph
of `snn_*` ops (docs/snn.md) -> `compile_snn` -> C with a per-time-step API. The golden model
(`golden.GoldenSnn`) executes the same integer graph in numpy and is what the C is checked against.
"""
