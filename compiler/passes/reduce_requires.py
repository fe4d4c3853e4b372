"""Transitive reduction of `requires` into `needs`, only where it is exact.

Dropping the edge J→D is safe when J also requires some C downstream of D *and* every node on
that path (C included) exists whenever D does: then C's success already implies D's. When
filters can remove an intermediate node while D stays, the edge is kept (the ordering would
otherwise be lost on targets such as GitLab, where an absent job orders nothing).

Flexible requires (semantics §5.3): "C succeeded" implies "D succeeded" only along edges that
accept nothing but success, so only those edges form the paths, J must accept only success
from C and from D, and an edge accepting another status is never dropped (targets read the
status from it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.conditions import Cond, implies
from cicompile.passes.graph import ancestor_masks
from cicompile.records import replace

if TYPE_CHECKING:
    from cicompile.passes import PassContext


def _masks(
    nodes: tuple[ir.WorkflowNode, ...], c: Cond,
    cache: dict[int, tuple[list[int], list[bool]]],
) -> tuple[list[int], list[bool]]:
    # Keyed by identity (`c` is some node's `exists`, alive as long as `nodes`): hashing a
    # formula walks all of it, and equal conditions are mostly one object already.
    found = cache.get(id(c))
    if found is None:
        # Most nodes share their existence condition object (compute_existence hands out
        # one per distinct formula): `implies` once per object.
        known: dict[int, bool] = {}
        member = []
        for n in nodes:
            e = n.exists
            holds = known.get(id(e))
            if holds is None:
                holds = known[id(e)] = implies(c, e)
            member.append(holds)
        found = cache[id(c)] = (ancestor_masks(nodes, member), member)
    return found


def _success_edges_only(nodes: tuple[ir.WorkflowNode, ...]) -> tuple[ir.WorkflowNode, ...]:
    """The graph the reachability runs on: flexible edges removed (see the module doc)."""
    if not any(n.flexible for n in nodes):
        return nodes
    return tuple(
        replace(n, requires=tuple(d for d in n.requires if n.allowed(d) == ir.SUCCESS_ONLY))
        if n.flexible else n
        for n in nodes
    )


def reduce_requires(p: ir.Pipeline, ctx: PassContext) -> ir.Pipeline:
    workflows = []
    for wf in p.workflows:
        nodes = _success_edges_only(wf.nodes)  # topological order
        index = {n.name: i for i, n in enumerate(nodes)}
        # One reachability relation per distinct existence condition of a dropped endpoint D:
        # paths may only go through nodes that exist whenever D exists.
        masks_for: dict[int, tuple[list[int], list[bool]]] = {}

        out = []
        for n in wf.nodes:
            if len(n.requires) < 2:  # nothing else can make the one edge redundant
                reduced = n.requires
            else:
                # The requirements that accept only success (all, unless some are flexible).
                plain = [c for c in n.requires if n.allowed(c) == ir.SUCCESS_ONLY]
                needs = []
                for d in n.requires:
                    if d not in plain:
                        needs.append(d)
                        continue
                    anc, member = _masks(nodes, nodes[index[d]].exists, masks_for)
                    # A shift, not `& (1 << i)`: that mask would be as wide as the workflow
                    # up to D, for every pair (quadratic in 10,000-job workflows).
                    i = index[d]
                    redundant = any(
                        c != d and member[index[c]] and anc[index[c]] >> i & 1 for c in plain
                    )
                    if not redundant:
                        needs.append(d)
                reduced = tuple(needs)
            out.append(n if reduced == n.needs else replace(n, needs=reduced))
        workflows.append(replace(wf, nodes=tuple(out)))
    return replace(p, workflows=tuple(workflows))
