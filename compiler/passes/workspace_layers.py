"""For every node, the workspace layers it sees: its ancestors' persists, in topological order.

A layer is one `persist_to_workspace` step of one upstream node; siblings and descendants never
contribute (semantics §3.11).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.passes.graph import ancestor_masks
from cicompile.records import replace

if TYPE_CHECKING:
    from cicompile.passes import PassContext


def persist_count(job: ir.Job) -> int:
    return sum(isinstance(s, ir.PersistToWorkspace) for s in job.steps)


def workspace_layers(p: ir.Pipeline, ctx: PassContext) -> ir.Pipeline:
    jobs = {j.name: j for j in p.jobs}
    counts = {j.name: persist_count(j) for j in p.jobs}
    workflows = []
    for wf in p.workflows:
        masks = ancestor_masks(wf.nodes)
        # Each persisting node's layers, built once and shared by all its descendants.
        persisting = [
            (i, tuple(ir.WorkspaceLayer(node=n.name, index=k) for k in range(counts[n.job])))
            for i, n in enumerate(wf.nodes)
            if n.job is not None and counts[n.job]
        ]
        nodes = []
        for pos, n in enumerate(wf.nodes):
            layers: list[ir.WorkspaceLayer] = []
            mask = masks[pos]
            for i, own in persisting:  # topological order
                if mask >> i & 1:
                    layers.extend(own)
            job = jobs[n.job] if n.job else None
            if not layers and job and any(isinstance(s, ir.AttachWorkspace) for s in job.steps):
                ctx.diags.warning(
                    "empty-workspace",
                    f"{n.name!r} attaches a workspace, but no job upstream of it persists one",
                    n.span,
                )
            seen = tuple(layers)
            nodes.append(n if seen == n.layers else replace(n, layers=seen))
        workflows.append(replace(wf, nodes=tuple(nodes)))
    return replace(p, workflows=tuple(workflows))
