"""For every node, the workspace layers it sees: its ancestors' persists, in topological order.

A layer is one `persist_to_workspace` step of one upstream node; siblings and descendants never
contribute (semantics §3.11).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.passes.graph import ancestor_masks

if TYPE_CHECKING:
    from cicompile.passes import PassContext


def persist_count(job: ir.Job) -> int:
    return sum(isinstance(s, ir.PersistToWorkspace) for s in job.steps)


def workspace_layers(p: ir.Pipeline, ctx: PassContext) -> ir.Pipeline:
    jobs = {j.name: j for j in p.jobs}
    workflows = []
    for wf in p.workflows:
        masks = ancestor_masks(wf.nodes)
        persisting = [
            (i, n.name, persist_count(jobs[n.job]))
            for i, n in enumerate(wf.nodes)
            if n.job is not None and persist_count(jobs[n.job])
        ]
        nodes = []
        for pos, n in enumerate(wf.nodes):
            layers: list[ir.WorkspaceLayer] = []
            for i, name, count in persisting:  # topological order
                if masks[pos] >> i & 1:
                    layers.extend(ir.WorkspaceLayer(node=name, index=k) for k in range(count))
            job = jobs[n.job] if n.job else None
            if job and any(isinstance(s, ir.AttachWorkspace) for s in job.steps) and not layers:
                ctx.diags.warning(
                    "empty-workspace",
                    f"{n.name!r} attaches a workspace, but no job upstream of it persists one",
                    n.span,
                )
            nodes.append(replace(n, layers=tuple(layers)))
        workflows.append(replace(wf, nodes=tuple(nodes)))
    return replace(p, workflows=tuple(workflows))
