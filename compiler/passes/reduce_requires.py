"""Transitive reduction of `requires` into `needs`, only where it is exact.

Dropping the edge J→D is safe when J also requires some C downstream of D *and* every node on
that path exists whenever D does: then C's success already implies D's. When filters can remove
an intermediate node while D stays, the edge is kept (the ordering would otherwise be lost on
targets such as GitLab, where an absent job orders nothing).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.conditions import Cond, implies

if TYPE_CHECKING:
    from cicompile.passes import PassContext


def reduce_requires(p: ir.Pipeline, ctx: PassContext) -> ir.Pipeline:
    workflows = []
    for wf in p.workflows:
        by_name = {n.name: n for n in wf.nodes}

        def reaches_via_existing(
            start: str, target: str, target_exists: Cond, by_name: dict[str, ir.WorkflowNode]
        ) -> bool:
            # Is there a path start → … → target through nodes that exist whenever target does?
            stack = [start]
            seen: set[str] = set()
            while stack:
                cur = stack.pop()
                if cur in seen:
                    continue
                seen.add(cur)
                node = by_name[cur]
                if not implies(target_exists, node.exists):
                    continue
                for r in node.requires:
                    if r == target:
                        return True
                    stack.append(r)
            return False

        nodes = []
        for n in wf.nodes:
            needs = tuple(
                d
                for d in n.requires
                if not any(
                    c != d and reaches_via_existing(c, d, by_name[d].exists, by_name)
                    for c in n.requires
                )
            )
            nodes.append(replace(n, needs=needs))
        workflows.append(replace(wf, nodes=tuple(nodes)))
    return replace(p, workflows=tuple(workflows))
