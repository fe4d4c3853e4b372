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


def _ids(wf: ir.Workflow, prefix: str = "") -> dict[str, str]:
    return {n.name: f"{prefix}n{i}" for i, n in enumerate(wf.nodes)}


# Mermaid labels are HTML with its own entity syntax (`#quot;`, `#35;`): names and regexes
# are shown literally, never as markup or as an entity they happen to spell.
_MERMAID_ESCAPES = str.maketrans({"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;",
                                  "&": "#amp;", "\n": " "})


def _mermaid_text(s: str) -> str:
    return s.translate(_MERMAID_ESCAPES)


def to_mermaid(pipeline: ir.Pipeline) -> str:
    """One flowchart (a Mermaid block holds one diagram): with several workflows, each is a
    subgraph titled with its name."""
    several = len(pipeline.workflows) > 1
    out = []
    if not several:
        out += [f"%% workflow {wf.name}".replace("\n", " ") for wf in pipeline.workflows]
    out.append("flowchart LR")
    for w, wf in enumerate(pipeline.workflows):
        prefix = f"w{w}_" if several else ""
        ids = _ids(wf, prefix)
        indent = "    " if several else "  "
        if several:
            out.append(f'  subgraph w{w}["{_mermaid_text(wf.name)}"]')
        for n in wf.nodes:
            label = _mermaid_text(n.name)
            extra = _filter_label(n)
            if extra:
                label += f"<br/><i>{_mermaid_text(extra)}</i>"
            if n.kind is ir.NodeKind.APPROVAL:
                out.append(f'{indent}{ids[n.name]}{{{{"⏸ {label}"}}}}')
            else:
                out.append(f'{indent}{ids[n.name]}["{label}"]')
        for n in wf.nodes:
            for r in n.requires:
                arrow = "-->" if r in n.needs else "-.->"
                status = _status_label(n, r)
                if status:
                    arrow += f"|{status}|"
                out.append(f"{indent}{ids[r]} {arrow} {ids[n.name]}")
        if several:
            out.append("  end")
    return "\n".join(out) + "\n"


def _dot_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(pipeline: ir.Pipeline) -> str:
    out = ["digraph circleci {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for w, wf in enumerate(pipeline.workflows):
        ids = _ids(wf, f"w{w}_")
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
