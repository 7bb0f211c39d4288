"""Graph passes. Lowerings kept outside passes/lower.py register themselves into its table when
imported, which importing this package does before any pass runs."""

from edgekit.passes import lower_activations, lower_transpose_conv  # noqa: F401
