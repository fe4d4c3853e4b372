"""`cicompile audit`: compile many configs for several targets and summarise what it takes.

For migration scripts over many repositories: per config and in total, the jobs and workflows,
the constructs translated, approximated or unsupported, and the manual tasks left. One bad
config never stops the batch: its errors (or an internal error) are recorded and the audit
goes on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import field
from pathlib import Path

from cicompile.diagnostics import Diagnostic, Severity
from cicompile.records import dataclass

# Diagnostic codes by what they say about the translation. Manual tasks are counted as the
# migration report lists them (targets/report.py: its task list and its secrets table).
UNSUPPORTED_PREFIXES = ("unsupported-",)


@dataclass
class TargetResult:
    target: str
    ok: bool
    errors: int = 0
    approximated: int = 0  # warnings other than unsupported-*
    unsupported: int = 0
    manual_tasks: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    internal_error: str = ""
    # The first error as `path:line:col: message [code]`: why the config did not compile.
    first_error: str = ""


@dataclass
class ConfigAudit:
    path: str
    workflows: int = 0
    jobs: int = 0
    approvals: int = 0
    steps: int = 0  # the steps of every job invocation: what there is to translate
    results: list[TargetResult] = field(default_factory=list)
    unreadable: str = ""  # why the file could not be read (then `results` say so too)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def manual_tasks(self) -> int:
        """The config's manual tasks: the most any of its targets leaves."""
        return max((r.manual_tasks for r in self.results), default=0)


# Folders never searched for configs: version control data, and installed dependencies
# (npm packages often ship their own .circleci/config.yml).
_SKIPPED_FOLDERS = {".git", ".hg", ".svn", "node_modules"}


def find_configs(paths: list[Path]) -> list[Path]:
    """Files as given; for folders, every `.circleci/config.yml` (or .yaml) below them, also a
    broken link or an unreadable one (the audit reports it rather than missing it)."""
    import os

    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found: list[Path] = []
        for folder, dirs, _files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_FOLDERS)
            if os.path.basename(folder) != ".circleci":
                continue
            for name in ("config.yml", "config.yaml"):
                if os.path.lexists(os.path.join(folder, name)):
                    found.append(Path(folder, name))
        out.extend(sorted(found))
    return list(dict.fromkeys(out))


def _classify(result: TargetResult, diags: list[Diagnostic], path: str) -> None:
    from cicompile.targets.report import TASK_CODES

    for d in diags:
        result.codes[d.code] += 1
        if d.severity is Severity.ERROR:
            if not result.errors:
                result.first_error = d.render() if d.span is not None else f"{path}: {d.render()}"
            result.errors += 1
        elif d.code in TASK_CODES:
            result.manual_tasks += 1
        elif d.severity is Severity.WARNING and d.code.startswith(UNSUPPORTED_PREFIXES):
            result.unsupported += 1
        elif d.severity is Severity.WARNING:
            result.approximated += 1


def audit_config(path: Path, targets: list[str]) -> ConfigAudit:
    from cicompile import FrontEnd, front_end
    from cicompile.ir import NodeKind, Pipeline
    from cicompile.targets.report import IMAGE_VARIABLES, undefined_variables

    audit = ConfigAudit(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The user's file, not a bug in cicompile: an error of every target, not a crash.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        audit.unreadable = reason
        audit.results = [TargetResult(t, ok=False, errors=1,
                                      first_error=f"{path}: error: cannot read: {reason}")
                         for t in targets]
        return audit
    # One front-end run for all the targets (what `compile_config` would do for each).
    front: FrontEnd | Exception
    try:
        front = front_end(text, path=str(path), keep_expanded="circleci" in targets)
    except Exception as exc:  # a bug in cicompile's front end: every target has it
        front = exc
    for target in targets:
        result = TargetResult(target, ok=False)
        try:
            if isinstance(front, Exception):
                raise front
            compiled = front.emit(target)
        except Exception as exc:  # a bug in cicompile: record it, keep auditing
            result.internal_error = f"{type(exc).__name__}: {exc}"
            result.errors = 1
            audit.results.append(result)
            continue
        result.ok = compiled.ok
        _classify(result, compiled.diagnostics, str(path))
        pipeline = compiled.pipeline
        if isinstance(pipeline, Pipeline):
            nodes = [n for wf in pipeline.workflows for n in wf.nodes]
            audit.workflows = len(pipeline.workflows)
            audit.jobs = sum(n.kind is NodeKind.JOB for n in nodes)
            audit.approvals = sum(n.kind is NodeKind.APPROVAL for n in nodes)
            audit.steps = sum(len(pipeline.job(n.job).steps) for n in nodes if n.job)
            # The report's other rows: one secret per variable, one task per context use
            # and, on GitLab, per approval (a manual job to protect).
            secrets = {v for n in nodes if n.job
                       for v in undefined_variables(pipeline.job(n.job))} - IMAGE_VARIABLES
            result.manual_tasks += len(secrets) + sum(len(n.context) for n in nodes)
            if target == "gitlab":
                result.manual_tasks += audit.approvals
        audit.results.append(result)
    return audit


def _status(r: TargetResult, unreadable: bool = False) -> str:
    if r.internal_error:
        return "CRASH"
    if unreadable:
        return "unreadable"
    if not r.ok:
        return f"{r.errors} error" + ("s" if r.errors != 1 else "")
    if r.unsupported or r.approximated:
        return f"{r.approximated}~ {r.unsupported}!"
    return "clean"


def table_rows(audits: list[ConfigAudit], targets: list[str]) -> list[list[str]]:
    rows = [["config", "workflows", "jobs", "approvals", "steps", *targets, "manual tasks"]]
    for a in audits:
        rows.append([a.path, str(a.workflows), str(a.jobs), str(a.approvals), str(a.steps),
                     *(_status(r, bool(a.unreadable)) for r in a.results), str(a.manual_tasks)])
    ok = sum(a.ok for a in audits)
    rows.append([f"TOTAL ({ok}/{len(audits)} compiled)", str(sum(a.workflows for a in audits)),
                 str(sum(a.jobs for a in audits)), str(sum(a.approvals for a in audits)),
                 str(sum(a.steps for a in audits)),
                 *(f"{sum(a.results[i].ok for a in audits)} ok" for i in range(len(targets))),
                 str(sum(a.manual_tasks for a in audits))])
    return rows


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n" + LEGEND + "\n"


LEGEND = ("status per target: clean | N~ approximated, M! unsupported constructs | N errors"
          " | unreadable | CRASH (a bug in cicompile)")


def render_markdown(audits: list[ConfigAudit], targets: list[str]) -> str:
    rows = table_rows(audits, targets)
    out = ["# cicompile audit", "", "S" + LEGEND[1:].replace(" | ", "; ") + ".", "",
           "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    codes: Counter[str] = Counter()
    for a in audits:
        for r in a.results:
            codes.update(r.codes)
    if codes:
        out += ["", "## Diagnostics by code (all configs, all targets)", "",
                "| code | count |", "| --- | --- |"]
        out += [f"| `{c}` | {n} |" for c, n in sorted(codes.items(), key=lambda x: (-x[1], x[0]))]
    failed = [(a.path, next(r.first_error for r in a.results if r.first_error))
              for a in audits if any(r.first_error for r in a.results)]
    if failed:
        out += ["", "## Configs that did not compile (first error)", ""]
        out += [f"- `{p}`: {_md_inline(e.removeprefix(p + ':'))}" for p, e in failed]
    crashes = [(a.path, r.target, r.internal_error) for a in audits for r in a.results
               if r.internal_error]
    if crashes:
        out += ["", "## Internal errors (please report)", ""]
        out += [f"- `{p}` ({t}): {e}" for p, t, e in crashes]
    return "\n".join(out) + "\n"


def _md_inline(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_json(audits: list[ConfigAudit], targets: list[str]) -> str:
    """The schema is documented in docs/cli.md (`version` changes when a field does)."""
    return json.dumps({
        "version": 1,
        "targets": targets,
        "configs": [{
            "path": a.path, "ok": a.ok, "unreadable": a.unreadable or None,
            "workflows": a.workflows, "jobs": a.jobs, "approvals": a.approvals,
            "steps": a.steps,
            "manual_tasks": a.manual_tasks,
            "targets": {r.target: {
                "ok": r.ok, "errors": r.errors, "approximated": r.approximated,
                "unsupported": r.unsupported, "manual_tasks": r.manual_tasks,
                "codes": dict(sorted(r.codes.items())), "first_error": r.first_error or None,
                "internal_error": r.internal_error or None,
            } for r in a.results},
        } for a in audits],
        "totals": {
            "configs": len(audits), "compiled": sum(a.ok for a in audits),
            "workflows": sum(a.workflows for a in audits), "jobs": sum(a.jobs for a in audits),
            "approvals": sum(a.approvals for a in audits),
            "steps": sum(a.steps for a in audits),
            "manual_tasks": sum(a.manual_tasks for a in audits),
            "targets": {t: {
                "ok": sum(r.ok for a in audits for r in a.results if r.target == t),
                **{k: sum(getattr(r, k) for a in audits for r in a.results if r.target == t)
                   for k in ("errors", "approximated", "unsupported", "manual_tasks")},
            } for t in targets},
        },
    }, indent=2) + "\n"
