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


def ancestors_in_order(nodes: list[WorkflowNode]) -> dict[str, tuple[str, ...]]:
    """For each node (given in topological order), all upstream nodes in that same order."""
    position = {n.name: i for i, n in enumerate(nodes)}
    anc: dict[str, set[str]] = {}
    for n in nodes:
        s: set[str] = set()
        for r in n.requires:
            s.add(r)
            s |= anc[r]
        anc[n.name] = s
    return {name: tuple(sorted(s, key=position.__getitem__)) for name, s in anc.items()}
