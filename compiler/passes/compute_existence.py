"""When does each workflow node exist? (semantics §5.3–5.4)

exists(J) = filters_pass(J) and (J has no requires or any(exists(D) for D in requires(J)))

filters_pass on a branch pipeline: no `branches` filter → true; else match `only` (if given)
and not `ignore`. On a tag pipeline: false unless the node has a `tags` filter with `only`
and/or `ignore`. An expression filter (§5.5) is its own condition on both kinds.

A workflow `when`/`unless` known only at run time (§5.1, lowered by the front end) is a
condition on every node of the workflow: a job of a workflow that does not run does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.conditions import (
    FALSE,
    TRUE,
    Cond,
    Const,
    IsKind,
    Match,
    Pattern,
    RefKind,
    all_of,
    any_of,
    negate,
    restrict,
)
from cicompile.records import replace

if TYPE_CHECKING:
    from cicompile.passes import PassContext


def _match(kind: RefKind, p: Pattern) -> Cond:
    if p.regex and p.text in (".*", "^.*$", ".+", "^.+$"):
        return IsKind(kind)  # names are never empty: these match every branch or tag
    return Match(kind, p)


def _matches_any(kind: RefKind, patterns: tuple[Pattern, ...]) -> Cond:
    return any_of(_match(kind, p) for p in patterns)


def by_kind(c: Cond) -> Cond:
    """Canonical form: (branch part) or (tag part), each free of the other kind's atoms."""
    return any_of(
        all_of([IsKind(k), restrict(c, k)]) for k in (RefKind.BRANCH, RefKind.TAG)
    )


def filter_condition(f: ir.Filters) -> Cond:
    """The formula for a node's own `filters` (both pipeline kinds)."""
    if f.expression is not None:
        return f.expression
    b = f.branches
    on_branch: Cond = IsKind(RefKind.BRANCH)
    if b is not None:
        parts: list[Cond] = [IsKind(RefKind.BRANCH)]
        if b.only is not None:
            parts.append(_matches_any(RefKind.BRANCH, b.only))
        if b.ignore is not None:
            parts.append(negate(_matches_any(RefKind.BRANCH, b.ignore)))
        on_branch = all_of(parts)
    t = f.tags
    on_tag: Cond = FALSE
    if t is not None and (t.only is not None or t.ignore is not None):
        parts = [IsKind(RefKind.TAG)]
        if t.only is not None:
            parts.append(_matches_any(RefKind.TAG, t.only))
        if t.ignore is not None:
            parts.append(negate(_matches_any(RefKind.TAG, t.ignore)))
        on_tag = all_of(parts)
    return any_of([on_branch, on_tag])


def schedule_condition(wf: ir.Workflow) -> Cond:
    """When a scheduled run of `wf` happens: some schedule's branch filter holds (schedules
    run on branches only, semantics §5.7); TRUE for a push workflow."""
    if not wf.schedules:
        return TRUE
    return any_of(filter_condition(ir.Filters(branches=s.branches)) for s in wf.schedules)


def compute_existence(p: ir.Pipeline, ctx: PassContext) -> ir.Pipeline:
    workflows = []
    # Pure functions of hashable values that recur from node to node (most nodes have no
    # filters, or the same ones as their neighbours): computed once per pass.
    filter_conds: dict[ir.Filters, Cond] = {}
    canonical: dict[Cond, Cond] = {}
    for wf in p.workflows:
        exists: dict[str, Cond] = {}
        # Within a workflow a node's condition depends only on its filter formula and on the
        # conditions of its requirements, which are mostly the same objects from node to node
        # (the memos above hand them out): keyed by their identities, a repeated combination
        # costs no hashing of formulas. Every keyed object stays referenced (filter_conds,
        # exists) until the workflow is done, so no identity is reused meanwhile.
        formed: dict[tuple[int, ...], Cond] = {}
        nodes = []
        scheduled = schedule_condition(wf)
        for n in wf.nodes:  # topological order
            f = filter_conds.get(n.filters)
            if f is None:
                f = filter_conds[n.filters] = filter_condition(n.filters)
            required = [exists.get(r, FALSE) for r in n.requires]
            key = (id(f), *map(id, required))
            known = formed.get(key)
            if known is None:
                # A scheduled workflow's jobs exist only on the branches its schedules allow.
                own = all_of([scheduled, wf.condition, f])
                if n.requires:
                    own = all_of([own, any_of(required)])
                c = canonical.get(own)
                if c is None:
                    c = by_kind(own)
                    # Equal results as one object, so that the nodes requiring them share
                    # keys in `formed`.
                    c = canonical[own] = canonical.setdefault(c, c)
                known = formed[key] = c
            own = known
            exists[n.name] = own
            never = isinstance(own, Const) and not own.value  # `own == FALSE`, one test
            if never and wf.condition == FALSE:
                pass  # the front end already said why the workflow never runs
            elif never and n.filters != ir.Filters():
                ctx.diags.warning(
                    "never-runs",
                    f"{n.name!r} can never run: its filters and those of the jobs it requires"
                    " never hold together (a tag filter needs tag filters upstream too)",
                    n.span,
                )
            elif never:
                ctx.diags.warning(
                    "never-runs", f"{n.name!r} can never run: none of its requirements can", n.span
                )
            nodes.append(n if own is n.exists else replace(n, exists=own))
        workflows.append(replace(wf, nodes=tuple(nodes)))
    return replace(p, workflows=tuple(workflows))


__all__ = ["compute_existence", "filter_condition", "schedule_condition", "TRUE"]
