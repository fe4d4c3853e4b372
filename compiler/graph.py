"""Drawing each workflow's DAG as Mermaid or Graphviz dot (`cicompile graph`)."""

from __future__ import annotations

from cicompile import ir
from cicompile.conditions import FALSE, IsKind, RefKind, restrict


def _filter_label(n: ir.WorkflowNode) -> str:
    """A short label of when the node exists, from its own `filters` (not the requires rule)."""
    parts = []
    f = n.filters
    for kind, rf in (("branches", f.branches), ("tags", f.tags)):
        if rf is None:
            continue
        if rf.only is not None:
            parts.append(f"{kind} only {', '.join(map(str, rf.only))}")
        if rf.ignore is not None:
            parts.append(f"{kind} ignore {', '.join(map(str, rf.ignore))}")
    if n.exists == FALSE:
        parts.append("never runs")
    elif restrict(n.exists, RefKind.TAG) != FALSE and n.exists != IsKind(RefKind.BRANCH):
        if not any(p.startswith("tags") for p in parts):
            parts.append("tags too")
    return "; ".join(parts)


def _status_label(n: ir.WorkflowNode, requirement: str) -> str:
    """The statuses a flexible requirement accepts (`failed`, `success, failed`), or ''."""
    allowed = n.allowed(requirement)
    if allowed == ir.SUCCESS_ONLY:
        return ""
    return "terminal" if allowed == ir.TERMINAL else ", ".join(
        s.value for s in ir.JobStatus if s in allowed)


def _ids(wf: ir.Workflow) -> dict[str, str]:
    return {n.name: f"n{i}" for i, n in enumerate(wf.nodes)}


def _mermaid_text(s: str) -> str:
    return s.replace('"', "#quot;")


def to_mermaid(pipeline: ir.Pipeline) -> str:
    out = []
    for wf in pipeline.workflows:
        ids = _ids(wf)
        out.append(f"%% workflow {wf.name}")
        out.append("flowchart LR")
        for n in wf.nodes:
            label = n.name
            extra = _filter_label(n)
            if extra:
                label += f"<br/><i>{extra}</i>"
            text = _mermaid_text(label)
            if n.kind is ir.NodeKind.APPROVAL:
                out.append(f'  {ids[n.name]}{{{{"⏸ {text}"}}}}')
            else:
                out.append(f'  {ids[n.name]}["{text}"]')
        for n in wf.nodes:
            for r in n.requires:
                arrow = "-->" if r in n.needs else "-.->"
                status = _status_label(n, r)
                if status:
                    arrow += f"|{status}|"
                out.append(f"  {ids[r]} {arrow} {ids[n.name]}")
        out.append("")
    return "\n".join(out)


def _dot_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(pipeline: ir.Pipeline) -> str:
    out = ["digraph circleci {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for w, wf in enumerate(pipeline.workflows):
        ids = {k: f"w{w}_{v}" for k, v in _ids(wf).items()}
        out.append(f'  subgraph cluster_{w} {{')
        out.append(f'    label="{_dot_text(wf.name)}";')
        for n in wf.nodes:
            label = _dot_text(n.name)
            extra = _filter_label(n)
            if extra:
                label += "\\n(" + _dot_text(extra) + ")"
            shape = "octagon" if n.kind is ir.NodeKind.APPROVAL else "box"
            out.append(f'    {ids[n.name]} [label="{label}", shape={shape}];')
        for n in wf.nodes:
            for r in n.requires:
                attrs = [] if r in n.needs else ["style=dashed"]
                status = _status_label(n, r)
                if status:
                    attrs.append(f'label="{status}"')
                style = f" [{', '.join(attrs)}]" if attrs else ""
                out.append(f"    {ids[r]} -> {ids[n.name]}{style};")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"
