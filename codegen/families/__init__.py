"""Optimised kernel families. Each module here registers its variants on import.

codegen.kernels imports every module in this package, so adding a family is adding a module
(and its templates under codegen/templates/<family>/); nothing else changes.
"""
