"""Graph helpers over a workflow's `requires` edges, shared by the passes."""

from __future__ import annotations

import heapq

from cicompile.ir import WorkflowNode


def topological_order(nodes: tuple[WorkflowNode, ...]) -> list[WorkflowNode] | None:
    """Kahn's algorithm, ties broken by source order. None if the graph has a cycle."""
    index = {n.name: i for i, n in enumerate(nodes)}
    indegree = {n.name: 0 for n in nodes}
    children: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for r in dict.fromkeys(n.requires):
            if r in index:
                indegree[n.name] += 1
                children[r].append(n.name)
    ready = [index[name] for name, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    out: list[WorkflowNode] = []
    while ready:
        n = nodes[heapq.heappop(ready)]
        out.append(n)
        for c in children[n.name]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, index[c])
    return out if len(out) == len(nodes) else None


def ancestor_masks(
    nodes: tuple[WorkflowNode, ...], member: list[bool] | None = None
) -> list[int]:
    """Upstream sets as bitsets (bit i = nodes[i]); `nodes` must be in topological order.

    With `member`, a path may only pass *through* member nodes: mask[j] holds i when some
    path i → … → j has every node strictly between i and j in `member`. Python ints make
    this linear in edges times words, instead of quadratic sets of names.
    """
    index = {n.name: i for i, n in enumerate(nodes)}
    masks: list[int] = []
    for n in nodes:
        m = 0
        for r in n.requires:
            i = index[r]
            m |= 1 << i
            if member is None or member[i]:
                m |= masks[i]
        masks.append(m)
    return masks
