"""Check that every workflow entry and `requires` resolves, and that there is no cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.passes.graph import topological_order
from cicompile.records import replace

if TYPE_CHECKING:
    from cicompile.passes import PassContext


def _unique_names(wf: ir.Workflow, ctx: PassContext) -> tuple[ir.WorkflowNode, ...]:
    counts: dict[str, int] = {}
    for n in wf.nodes:
        counts[n.name] = counts.get(n.name, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for n in wf.nodes:
        if counts[n.name] > 1:
            seen[n.name] = seen.get(n.name, 0) + 1
            new = f"{n.name}-{seen[n.name]}"
            ctx.diags.warning(
                "duplicate-invocation",
                f"job {n.name!r} appears {counts[n.name]} times in workflow {wf.name!r};"
                f" this one is named {new!r} (give each a `name` to `require` it reliably)",
                n.span,
            )
            n = replace(n, name=new)
        out.append(n)
    return tuple(out)


def resolve_references(p: ir.Pipeline, ctx: PassContext) -> ir.Pipeline:
    workflows = []
    for wf in p.workflows:
        nodes = _unique_names(wf, ctx)
        names = {n.name for n in nodes}
        checked = []
        for n in nodes:
            requires = []
            for r in dict.fromkeys(n.requires):
                if r not in names:
                    ctx.diags.error(
                        "unknown-requires",
                        f"{n.name!r} requires {r!r}, which is not a job of workflow {wf.name!r}",
                        n.span,
                    )
                    continue
                requires.append(r)
            kept = tuple(requires)
            # Most nodes keep their requires: the node itself then (one copy less per node).
            checked.append(n if kept == n.requires else replace(n, requires=kept))
        order = topological_order(tuple(checked))
        if order is None:
            placed = {x.name for x in (topological_order_partial(tuple(checked)))}
            stuck = [n for n in checked if n.name not in placed]
            cycle = " -> ".join(n.name for n in stuck)
            ctx.diags.error(
                "requires-cycle",
                f"workflow {wf.name!r} has a cycle in `requires` among: {cycle}",
                stuck[0].span,
            )
            workflows.append(replace(wf, nodes=tuple(checked)))
            continue
        workflows.append(replace(wf, nodes=tuple(order)))
    return replace(p, workflows=tuple(workflows))


def topological_order_partial(nodes: tuple[ir.WorkflowNode, ...]) -> list[ir.WorkflowNode]:
    """The nodes Kahn's algorithm can place before it gets stuck on a cycle."""
    done: set[str] = set()
    out: list[ir.WorkflowNode] = []
    progress = True
    while progress:
        progress = False
        for n in nodes:
            if n.name not in done and all(r in done for r in n.requires):
                done.add(n.name)
                out.append(n)
                progress = True
    return out
