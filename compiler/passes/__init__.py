"""Pure IR → IR passes, listed once, in the order they run (like sqlglot's optimizer RULES)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field

from cicompile.diagnostics import Diagnostics
from cicompile.ir import Pipeline
from cicompile.passes.compute_existence import compute_existence
from cicompile.passes.reduce_requires import reduce_requires
from cicompile.passes.resolve_references import resolve_references
from cicompile.passes.workspace_layers import workspace_layers
from cicompile.records import dataclass


@dataclass
class PassContext:
    diags: Diagnostics = field(default_factory=Diagnostics)


Pass = Callable[[Pipeline, PassContext], Pipeline]

PASSES: tuple[Pass, ...] = (
    resolve_references,  # unknown jobs/requires, cycles, duplicate names; topological order
    compute_existence,  # filters + "all requirements filtered out" rule → WorkflowNode.exists
    reduce_requires,  # transitive reduction of requires, where it is exact → WorkflowNode.needs
    workspace_layers,  # ancestors' persist_to_workspace layers, in apply order
)


def run_passes(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Run every pass in order; later passes assume a valid graph, so stop at the first error."""
    for p in PASSES:
        pipeline = p(pipeline, ctx)
        if ctx.diags.has_errors:
            break
    return pipeline
