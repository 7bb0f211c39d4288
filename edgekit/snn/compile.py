"""Spiking graph -> kernels chosen -> activations and state planned -> C. The SNN pipeline.

The .ekir that `edgekit snn generate` writes records each layer's kernel (attrs.snn_kernel), so
compiling that file again, without a kernel option, reproduces the same C.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from codegen.families.snn import FAMILY, NEURON_TEMPLATE, apply_kernel
from codegen.render import GeneratedModel
from codegen.snn_render import render_snn
from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph
from edgekit.passes.memory import MemoryPlan, plan_memory
from edgekit.pipeline import Compiled
from edgekit.snn import cost, ops
from edgekit.snn.state import StatePlan, plan_state

DEFAULT_HARNESS_STEPS = 64


@dataclass
class SnnCompiled:
    graph: Graph
    plan: MemoryPlan
    state: StatePlan
    generated: GeneratedModel
    target: str
    harness_steps: int
    choices: list[cost.LayerChoice] = field(default_factory=list)

    @property
    def kernels(self) -> list[str]:
        return [str(layer.synapse.attrs["snn_kernel"]) for layer in ops.layers(self.graph)]

    def as_compiled(self) -> Compiled:
        """The generic record pipeline.write_output() takes."""
        return Compiled(
            self.graph, self.plan, self.generated, self.target,
            str(self.graph.meta.get("source_sha256", "")),
        )  # fmt: skip

    def report(self) -> dict[str, Any]:
        layers = ops.layers(self.graph)
        flash = sum(
            t.nbytes for t in self.graph.tensors.values() if t.is_const and t.name in _used(self)
        )
        return {
            "name": self.generated.name,
            "target": self.target,
            "layers": [
                {
                    "synapse": layer.synapse.name,
                    "neuron": layer.kind,
                    "n_in": layer.n_in,
                    "n_out": layer.n_out,
                    "max_delay": layer.max_delay,
                    "kernel": layer.synapse.attrs["snn_kernel"],
                    "synapses": int((layer.weights != 0).sum()),
                    "state_bytes": sum(
                        self.state.sizes[t]
                        for op in (layer.synapse, layer.neuron)
                        for t in op.attrs["state"].values()
                    ),
                    **({"estimates": self.choices[layer.index].estimates} if self.choices else {}),
                }
                for layer in layers
            ],
            "state_bytes": self.state.state_bytes,
            "arena_bytes": self.plan.arena_bytes,
            "ram_bytes": self.state.state_bytes + self.plan.arena_bytes,
            "const_bytes": flash,
            "memory_plan": self.plan.to_json(),
            "state_plan": self.state.to_json(),
        }


def _used(c: SnnCompiled) -> set[str]:
    return set(c.generated.consts)


def parse_kernels(spec: str | list[str] | None) -> str | list[str] | None:
    """'auto', one kernel name, or a comma list with one per layer."""
    if spec is None or isinstance(spec, list):
        return spec
    return spec.split(",") if "," in spec else spec


def assign_kernels(
    graph: Graph, kernel: str | list[str] | None = "auto", rate: float = 0.05,
    ram_budget: int | None = None,
) -> list[cost.LayerChoice]:  # fmt: skip
    """Choose and prepare every synapse op's kernel; None keeps the kernels the graph records."""
    layers = ops.layers(graph)
    recorded = [layer.synapse.attrs.get("snn_kernel") for layer in layers]
    if kernel is None:
        kernel = [str(k) for k in recorded] if all(k in ops.KERNELS for k in recorded) else "auto"
    try:
        choices = cost.choose(graph, kernel, rate, ram_budget)
    except ValueError as exc:
        raise EdgekitError(
            str(exc), hint="--snn-kernel auto|dense|gather|scatter; --ram-budget BYTES bounds auto"
        ) from None
    for layer, choice in zip(layers, choices, strict=True):
        apply_kernel(graph, layer.synapse, choice.kernel)
        layer.neuron.attrs["kernel"] = {"family": FAMILY, "template": NEURON_TEMPLATE}
    return choices


def compile_snn(
    graph: Graph,
    target: str = "host",
    kernel: str | list[str] | None = "auto",
    rate: float = 0.05,
    harness_steps: int = DEFAULT_HARNESS_STEPS,
    ram_budget: int | None = None,
) -> SnnCompiled:
    """Compile a spiking graph for `target`; the input graph is not changed. `ram_budget` bounds
    the state bytes (membranes, delay lines) that `auto` kernel choices may use."""
    from edgekit.targets import load_target

    load_target(target)  # an unknown target is an error here, before any work
    if not ops.is_snn(graph):
        raise EdgekitError(
            f"'{graph.name}' is not a spiking graph", hint="use `edgekit generate` for it"
        )
    if harness_steps < 1:
        raise EdgekitError("harness steps must be at least 1")
    g = copy.deepcopy(graph)
    choices = assign_kernels(g, parse_kernels(kernel), rate, ram_budget)
    plan = plan_memory(g)
    state = plan_state(g)
    generated = render_snn(g, plan, state, harness_steps)
    return SnnCompiled(g, plan, state, generated, target, harness_steps, choices)
