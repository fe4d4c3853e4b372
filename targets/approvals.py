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
    size,
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
    some path A → … → J has every job present. Decided per kind of pipeline: every
    assignment of the workflow's atoms a pipeline can have (`_consistent`, which treats
    regexes as independent: a wait may be reported for a combination no ref has, a possible
    one is never missed). Over more than `_MAX_ATOMS` atoms, or formulas too big to evaluate
    that often (`_MAX_WORK`), `_maybe_after` answers instead, more conservatively still."""
    nodes = wf.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    dependents = _dependents(wf)
    children = [[index[d] for d in dependents[n.name]] for n in nodes]
    # Descendants as bitsets, from the last node back.
    desc = [0] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):
        for c in children[i]:
            desc[i] |= (1 << c) | desc[c]
    below = [[i for i in range(len(nodes)) if desc[a] >> i & 1] for a in range(len(nodes))]
    # Approvals after which some job may be absent while the approval runs: nothing can wait
    # behind the others.
    candidates = [a for a, n in enumerate(nodes)
                  if n.kind is ir.NodeKind.APPROVAL and satisfiable(runs[n.name])
                  and any(not implies(runs[n.name], nodes[k].exists) for k in below[a])]
    if not candidates:
        return []
    found = sorted(set().union(*(atoms(n.exists) for n in nodes),
                               *(atoms(runs[nodes[a].name]) for a in candidates)), key=repr)
    pipelines = _pipelines(found)
    work = len(pipelines or ()) * sum(size(n.exists) for n in nodes)
    if pipelines is None or work > _MAX_WORK:
        return _conservative_waits(nodes, index, runs, candidates, below, desc)
    waits: dict[tuple[int, int], set[int]] = {}
    for v in pipelines:
        present = [_holds(n.exists, v) for n in nodes]
        # An approval GitHub skips (nobody waits for it) waits for nobody either.
        running = [_holds(runs[n.name], v) for n in nodes]
        for a in candidates:
            if not _holds(runs[nodes[a].name], v):
                continue
            reached = 1 << a  # through present jobs only
            for x in below[a]:  # topological order
                if present[x] and any(reached >> index[r] & 1 for r in nodes[x].requires):
                    reached |= 1 << x
            for j in below[a]:
                if running[j] and not reached >> j & 1:
                    waits.setdefault((a, j), set()).update(
                        k for k in below[a] if desc[k] >> j & 1 and not present[k])
    return [ApprovalWait(nodes[a].name, nodes[j].name,
                         tuple(nodes[k].name for k in sorted(waits[(a, j)])))
            for a, j in sorted(waits)]


def _conservative_waits(nodes: tuple[ir.WorkflowNode, ...], index: dict[str, int],
                        runs: dict[str, Cond], candidates: list[int], below: list[list[int]],
                        desc: list[int]) -> list[ApprovalWait]:
    out: list[ApprovalWait] = []
    for a in candidates:
        run_a = runs[nodes[a].name]
        maybe_absent = [k for k in below[a] if not implies(run_a, nodes[k].exists)]
        for j in below[a]:
            absent = [k for k in maybe_absent if desc[k] >> j & 1]
            if absent and _maybe_after(nodes, index, j, a, absent):
                out.append(ApprovalWait(nodes[a].name, nodes[j].name,
                                        tuple(nodes[k].name for k in absent)))
    return out


def _maybe_after(nodes: tuple[ir.WorkflowNode, ...], index: dict[str, int], j: int, a: int,
                 absent: list[int]) -> bool:
    """The answer over too many atoms: some of `absent` (below a, above j) may be missing
    while j exists, and no path a → … → j is made of nodes present whenever j is."""
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


_MAX_ATOMS = 12  # 4096 assignments to try at most; beyond, answers are conservative
_MAX_WORK = 1_000_000  # formula nodes evaluated by `approval_waits` (about a second)


def _pipelines(found: list[Atom]) -> list[dict[Atom, bool]] | None:
    """Every assignment of these atoms a pipeline can have (`_consistent`); None when there
    are too many atoms to try."""
    if len(found) > _MAX_ATOMS:
        return None
    out = []
    for values in itertools.product((False, True), repeat=len(found)):
        v = dict(zip(found, values, strict=True))
        if _consistent(v):
            out.append(v)
    return out


@functools.lru_cache(maxsize=4096)
def satisfiable(c: Cond) -> bool:
    """Whether some pipeline makes `c` true. The atoms are tried as independent booleans,
    kept only to what every pipeline obeys: one kind (branch or tag) and one trigger, a
    literal name deciding every other match on that name, a schedule's name only on a
    scheduled run. Regexes are not intersected, so an impossible combination of them counts
    as possible: a yes may be wrong, a no never is."""
    if isinstance(c, Const):
        return c.value
    pipelines = _pipelines(sorted(atoms(c), key=repr))
    return pipelines is None or any(_holds(c, v) for v in pipelines)


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
