"""For every node, the workspace layers it sees: its ancestors' persists, in topological order.

A layer is one `persist_to_workspace` step of one upstream node; siblings and descendants never
contribute (semantics §3.11).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicompile import ir
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
        # Each persisting node's layers, built once and shared by all its descendants.
        persisting = [
            (i, tuple(ir.WorkspaceLayer(node=n.name, index=k) for k in range(counts[n.job])))
            for i, n in enumerate(wf.nodes)
            if n.job is not None and counts[n.job]
        ]
        masks = _persisting_ancestors(wf.nodes, [i for i, _ in persisting])
        nodes = []
        for pos, n in enumerate(wf.nodes):
            layers: list[ir.WorkspaceLayer] = []
            mask = masks[pos]
            if mask:
                for k, (_, own) in enumerate(persisting):  # topological order
                    if mask >> k & 1:
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


def _persisting_ancestors(nodes: tuple[ir.WorkflowNode, ...], persisting: list[int]) -> list[int]:
    """Each node's upstream persisting nodes as a bitset over `persisting` (bit k = the node
    at `persisting[k]`); `nodes` in topological order. `graph.ancestor_masks` would give
    bitsets as wide as the workflow: quadratic in its size, where these are as wide as the
    persisting nodes (none in many workflows)."""
    index = {n.name: i for i, n in enumerate(nodes)}
    bit = [0] * len(nodes)
    for k, i in enumerate(persisting):
        bit[i] = 1 << k
    masks: list[int] = []
    for n in nodes:
        m = 0
        for r in n.requires:
            i = index[r]
            m |= masks[i] | bit[i]
        masks.append(m)
    return masks
