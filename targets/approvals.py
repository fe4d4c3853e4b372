"""Approvals on GitHub: when an approval job runs, and which jobs wait for it when CircleCI's
would not (semantics §5.3, "filtered-out dependencies are ignored").

GitHub evaluates a job's `if:` only once every job in its `needs` has finished, and `needs`
cannot change per event. A job K that is filtered out for this event therefore still waits
for everything it needs before it is skipped, and so do its dependents. CircleCI drops the
requirement on K at once: a job J that requires K (and L) starts after L alone.

For timing only (K needs ordinary jobs) that costs a delay and nothing else. Behind an
approval it costs the approval: J waits for someone to approve a hold CircleCI would not have
made it wait for. Two measures:

- `github_existence`: an approval runs only when one of the jobs that require it runs. An
  approval nobody waits for has no effect on any job, and skipping it lets a filtered-out K
  behind it be skipped at once. This is the gate's output for the approval.
- `approval_waits`: what is left, decided statically from the existence conditions. An
  approval A runs for some jobs after it while another, K, is filtered out, and a job J after
  K runs without any path of present jobs from A: on GitHub J waits for A, on CircleCI it
  does not. Warned per (A, J), naming the Ks.
"""

from __future__ import annotations

import functools
import itertools

from cicompile import ir
from cicompile.conditions import (
    SCHEDULED,
    TRIGGER_SOURCES,
    TRUE,
    And,
    Atom,
    Cond,
    Const,
    IsKind,
    Match,
    Not,
    Or,
    RefKind,
    ScheduleName,
    Trigger,
    all_of,
    any_of,
    atoms,
    implies,
    negate,
)
from cicompile.diagnostics import Diagnostics
from cicompile.records import dataclass


def _dependents(wf: ir.Workflow) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n.name: [] for n in wf.nodes}
    for n in wf.nodes:
        for r in dict.fromkeys(n.requires):
            out[r].append(n.name)
    return out


def github_existence(wf: ir.Workflow) -> dict[str, Cond]:
    """{node: when its GitHub job runs}: `exists`, except that an approval some node requires
    runs only when one of the nodes requiring it runs (decided from the last node back)."""
    dependents = _dependents(wf)
    out: dict[str, Cond] = {}
    for n in reversed(wf.nodes):  # topological order reversed: dependents first
        deps = dependents[n.name]
        if n.kind is not ir.NodeKind.APPROVAL or not deps:
            out[n.name] = n.exists
            continue
        anyone = any_of(out[d] for d in deps)
        out[n.name] = n.exists if implies(n.exists, anyone) else all_of([n.exists, anyone])
    return out


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """On GitHub, `job` may wait for `approval` when one of `absent` is filtered out."""

    approval: str
    job: str
    absent: tuple[str, ...]


def approval_waits(wf: ir.Workflow, runs: dict[str, Cond]) -> list[ApprovalWait]:
    """The residual waits (module doc), in topological order of approval, then job.

    J, downstream of approval A, waits for A on GitHub whenever A runs; on CircleCI only when
    some path A → … → J has every job present. So the wait is GitHub's own when
    `runs(A) ∧ exists(J) ∧ ¬path(J)` can hold, `path` built from A down. Decided with
    `satisfiable` (which may answer yes for an impossible case, never no for a possible one);
    for a large part of a workflow after A, whose path formulas grow too big to decide,
    `_maybe_after` answers instead, more conservatively still."""
    nodes = wf.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    children: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        for r in dict.fromkeys(n.requires):
            children[index[r]].append(i)
    # Descendants as bitsets, from the last node back.
    desc = [0] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):
        for c in children[i]:
            desc[i] |= (1 << c) | desc[c]

    def members(bits: int) -> list[int]:
        return [i for i in range(len(nodes)) if bits >> i & 1]

    out: list[ApprovalWait] = []
    for a, approval in enumerate(nodes):
        run_a = runs[approval.name]
        if approval.kind is not ir.NodeKind.APPROVAL or not satisfiable(run_a):
            continue
        below = members(desc[a])
        # Nothing can wait without a job after the approval that may be absent while it runs.
        maybe_absent = [k for k in below if not implies(run_a, nodes[k].exists)]
        if not maybe_absent:
            continue
        path = _paths(nodes, index, a, below)
        for j in below:
            absent = [k for k in maybe_absent if desc[k] >> j & 1]
            if not absent:
                continue
            if path is None:
                if not _maybe_after(nodes, index, j, a, absent):
                    continue
            else:
                bad = all_of([run_a, nodes[j].exists, negate(path[j])])
                if not satisfiable(bad):
                    continue
                # The ones that can be absent then (all of them, if none is shown to be).
                absent = [k for k in absent
                          if satisfiable(all_of([bad, negate(nodes[k].exists)]))] or absent
            out.append(ApprovalWait(approval.name, nodes[j].name,
                                    tuple(nodes[k].name for k in absent)))
    return out


_MAX_PATH_SIZE = 400  # nodes of one path formula: beyond, `_maybe_after` decides


def _paths(nodes: tuple[ir.WorkflowNode, ...], index: dict[str, int], a: int,
           below: list[int]) -> dict[int, Cond] | None:
    """{x below node a: some path a → … → x has every node present (x included)}, or None
    when a formula grows too big (they share subformulas, which `negate` would unfold)."""
    path: dict[int, Cond] = {}
    sizes: dict[int, int] = {}
    for x in below:  # topological order
        via: list[Cond] = []
        size = 1
        for r in nodes[x].requires:
            i = index[r]
            if i == a:
                via.append(TRUE)
            elif i in path:
                via.append(path[i])
                size += sizes[i]
        if size > _MAX_PATH_SIZE:
            return None
        path[x] = all_of([nodes[x].exists, any_of(via)])
        sizes[x] = size + 1
    return path


def _maybe_after(nodes: tuple[ir.WorkflowNode, ...], index: dict[str, int], j: int, a: int,
                 absent: list[int]) -> bool:
    """The large-graph answer: some of `absent` (below a, above j) may be missing while j
    exists, and no path a → … → j is made of nodes present whenever j is."""
    if all(implies(nodes[j].exists, nodes[k].exists) for k in absent):
        return False
    cond = nodes[j].exists
    seen = {j}
    stack = [j]
    while stack:
        x = stack.pop()
        for r in nodes[x].requires:
            i = index[r]
            if i == a:
                return False
            if i not in seen and implies(cond, nodes[i].exists):
                seen.add(i)
                stack.append(i)
    return True


_MAX_ATOMS = 12  # 4096 assignments; a condition over more atoms counts as satisfiable


@functools.lru_cache(maxsize=4096)
def satisfiable(c: Cond) -> bool:
    """Whether some pipeline makes `c` true. The atoms are tried as independent booleans,
    kept only to what every pipeline obeys: one kind (branch or tag) and one trigger, a
    literal name deciding every other match on that name, a schedule's name only on a
    scheduled run. Regexes are not intersected, so an impossible combination of them counts
    as possible: a yes may be wrong, a no never is."""
    if isinstance(c, Const):
        return c.value
    found = sorted(atoms(c), key=repr)
    if len(found) > _MAX_ATOMS:
        return True
    for values in itertools.product((False, True), repeat=len(found)):
        v = dict(zip(found, values, strict=True))
        if _consistent(v) and _holds(c, v):
            return True
    return False


def _consistent(v: dict[Atom, bool]) -> bool:
    kinds = {a.kind for a, on in v.items() if on and isinstance(a, IsKind | Match)}
    if len(kinds) > 1:
        return False
    kind = next(iter(kinds), None)
    if any(isinstance(a, IsKind) and not on and a.kind == kind for a, on in v.items()):
        return False
    if kind is None and all(v.get(IsKind(k)) is False for k in RefKind):
        return False  # every pipeline is a branch or a tag pipeline
    literals = {a.pattern.text for a, on in v.items()
                if on and isinstance(a, Match) and not a.pattern.regex}
    if len(literals) > 1:
        return False
    for name in literals:
        if any(isinstance(a, Match) and a.kind == kind and a.pattern.matches(name) != on
               for a, on in v.items()):
            return False
    sources = {a.source for a, on in v.items() if on and isinstance(a, Trigger)}
    if any(on and isinstance(a, ScheduleName) for a, on in v.items()):
        sources.add(SCHEDULED)
    if len(sources) > 1:
        return False
    if not sources and all(v.get(Trigger(s)) is False for s in TRIGGER_SOURCES):
        return False
    return not (sources and any(isinstance(a, Trigger) and not on and a.source in sources
                                for a, on in v.items()))


def _holds(c: Cond, v: dict[Atom, bool]) -> bool:
    match c:
        case Const(value):
            return value
        case Not(atom):
            return not v[atom]
        case And(items):
            return all(_holds(i, v) for i in items)
        case Or(items):
            return any(_holds(i, v) for i in items)
    return v[c]


def _names(names: tuple[str, ...]) -> str:
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def warn_approval_waits(wf: ir.Workflow, runs: dict[str, Cond], diags: Diagnostics) -> None:
    for w in approval_waits(wf, runs):
        diags.warning(
            "approval-wait",
            f"on GitHub (workflow `{wf.name}`), `{w.job}` waits for approval `{w.approval}`"
            f" even in pipelines where {_names(w.absent)} is filtered out and CircleCI starts"
            f" it without that approval: GitHub skips a filtered-out job only once everything"
            f" it needs has finished, and `{w.approval}` still runs there for other jobs",
            wf.node(w.job).span,
        )
