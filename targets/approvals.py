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
  approval A runs for one of its descendants while another descendant K is filtered out, and
  a job J downstream of K can run without K: on GitHub J waits for A, on CircleCI it does not
  (unless J also waits for A through jobs that exist whenever J does). Warned per (A, J).
"""

from __future__ import annotations

from cicompile import ir
from cicompile.conditions import Cond, all_of, any_of, implies
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

    Conservative: `implies` may fail to prove an implication that holds, never the reverse,
    so a wait that can happen is always listed and one listed may be impossible."""
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
        if approval.kind is not ir.NodeKind.APPROVAL:
            continue
        run_a = runs[approval.name]
        absent: dict[int, list[str]] = {}
        for k in members(desc[a]):
            if implies(run_a, nodes[k].exists):
                continue  # present whenever the approval runs
            for j in members(desc[k]):
                if not implies(nodes[j].exists, nodes[k].exists):
                    absent.setdefault(j, []).append(nodes[k].name)
        for j in sorted(absent):
            if not _always_after(nodes, index, j, a):
                out.append(ApprovalWait(approval.name, nodes[j].name, tuple(absent[j])))
    return out


def _always_after(nodes: tuple[ir.WorkflowNode, ...], index: dict[str, int], j: int,
                  a: int) -> bool:
    """Whether node j requires node a through nodes that exist whenever j does: then j
    waits for a on CircleCI too, whenever both exist."""
    cond = nodes[j].exists
    seen = {j}
    stack = [j]
    while stack:
        x = stack.pop()
        for r in nodes[x].requires:
            i = index[r]
            if i == a:
                return True
            if i not in seen and implies(cond, nodes[i].exists):
                seen.add(i)
                stack.append(i)
    return False


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
