"""The migration report: what a user must still do by hand after compiling, with positions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cicompile import ir
from cicompile.conditions import Pattern
from cicompile.diagnostics import Diagnostic, Severity
from cicompile.records import dataclass

BUILTIN_VARS = {
    "CI", "CIRCLECI", "HOME", "PATH", "PWD", "OLDPWD", "USER", "SHELL", "BASH_ENV", "TERM",
    "HOSTNAME", "LANG", "RANDOM", "SECONDS", "LINENO", "IFS", "UID", "EUID", "PPID", "OSTYPE",
    "BASH_SOURCE", "BASH_VERSION", "FUNCNAME", "PIPESTATUS", "REPLY", "OPTARG", "OPTIND",
}
# Variables that images and tools set themselves: never secrets, never to be overwritten.
IMAGE_VARIABLES = {
    "JAVA_HOME", "GOPATH", "GOROOT", "GOBIN", "PYTHONPATH", "VIRTUAL_ENV", "NODE_ENV",
    "NODE_OPTIONS", "NVM_DIR", "RAILS_ENV", "RACK_ENV", "GEM_HOME", "BUNDLE_PATH", "CARGO_HOME",
    "RUSTUP_HOME", "ANDROID_HOME", "ANDROID_SDK_ROOT", "DISPLAY", "LC_ALL", "LC_CTYPE", "TZ",
    "TMPDIR", "XDG_CACHE_HOME", "DEBIAN_FRONTEND", "MAVEN_OPTS", "GRADLE_OPTS", "JAVA_OPTS",
}
SECRET_KIND = {
    "github": "repository or environment secrets (`secrets.NAME`), exposed to the jobs as env",
    "gitlab": "CI/CD variables (masked and protected where they are secrets)",
    "make": "environment variables in the shell that runs make",
    "shell": "environment variables in the shell that runs the script",
    "circleci": "CircleCI contexts or project settings, as for the original config",
}
_VAR_USE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_VAR_SET = re.compile(r"(?:^|[\s;&|(])(?:export\s+|local\s+|readonly\s+|declare\s+(?:-\w+\s+)?)?"
                      r"([A-Za-z_][A-Za-z0-9_]*)=")
_LOOP_VAR = re.compile(r"\b(?:for|read(?:\s+-\w+)*)\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Row:
    where: str
    text: str


@dataclass(frozen=True)
class Secret:
    name: str
    jobs: list[str]
    contexts: list[str]


@dataclass(frozen=True)
class RunnerRow:
    where: str
    executor: str
    runner: str
    origin: str
    jobs: list[str]


@dataclass(frozen=True)
class Finding:
    where: str
    severity: str
    code: str
    message: str


def _where(span: object) -> str:
    return f"{span.line}:{span.col}" if span is not None else "—"  # type: ignore[attr-defined]


def undefined_variables(job: ir.Job) -> set[str]:
    """Variables a job's commands read that neither the config nor the scripts define."""
    defined = {k for k, _ in job.environment}
    for img in job.executor.images:
        defined |= {k for k, _ in img.environment}
    used: set[str] = set()
    for step in job.steps:
        if isinstance(step, ir.Run):
            defined |= {k for k, _ in step.environment}
            defined |= set(_VAR_SET.findall(step.command)) | set(_LOOP_VAR.findall(step.command))
            used |= set(_VAR_USE.findall(step.command))
    return {
        v for v in used - defined
        if v not in BUILTIN_VARS and not v.startswith(("CIRCLE_", "GITHUB_", "CI_", "RUNNER_"))
    }


def _secrets(pipeline: ir.Pipeline) -> list[Secret]:
    users: dict[str, set[str]] = {}
    contexts: dict[str, set[str]] = {}
    for wf in pipeline.workflows:
        for node in wf.nodes:
            if node.job is None:
                continue
            for var in undefined_variables(pipeline.job(node.job)) - IMAGE_VARIABLES:
                users.setdefault(var, set()).add(node.name)
                contexts.setdefault(var, set()).update(node.context)
    return [Secret(v, sorted(users[v]), sorted(contexts[v])) for v in sorted(users)]


def describe_branches(f: ir.RefFilter) -> str:
    """A schedule's branch filter in words (`/re/` is a regex matching the whole name)."""

    def names(patterns: tuple[Pattern, ...]) -> str:
        return ", ".join(f"`/{p.text}/`" if p.regex else f"`{p.text}`" for p in patterns)

    text = f"among {names(f.only)}" if f.only is not None else "of the project"
    if f.ignore:
        text += f" except {names(f.ignore)}"
    return text


# Notes that are things to do by hand: they go to the report's task list.
# Diagnostics that are work for the user (listed as tasks, not as findings). A setup config's
# continuation must be compiled and wired by hand.
TASK_CODES = frozenset({"approval-environment", "gitlab-schedule", "setup-config",
                        "registry-auth", "ssh-key-secrets", "remote-docker-runner"})


def _runner_rows(runners: Sequence[Any], target: str) -> list[RunnerRow]:
    """One row per distinct placement, naming the jobs that use it (first use's position)."""
    rows: dict[tuple[str, str], RunnerRow] = {}
    for use in runners:
        key = (use.executor, use.placement.describe(target))
        if key not in rows:
            origin = f"--runner-map rule {use.placement.rule}" if use.placement.rule else "default"
            rows[key] = RunnerRow(_where(use.span), use.executor, key[1], origin, [])
        if use.job not in rows[key].jobs:
            rows[key].jobs.append(use.job)
    return list(rows.values())


def render_report(pipeline: ir.Pipeline, target: str, diagnostics: list[Diagnostic],
                  runners: Sequence[Any] = ()) -> str:
    """`runners`: each job's `targets.runners.RunnerUse` (GitHub and GitLab only)."""
    tasks: list[Row] = []
    findings: list[Finding] = []
    for d in diagnostics:
        where = _where(d.span)
        if d.code in TASK_CODES:
            tasks.append(Row(where, d.message))
        elif d.severity in (Severity.WARNING, Severity.ERROR):
            findings.append(Finding(where, str(d.severity), d.code, d.message.replace("|", "\\|")))
    for wf in pipeline.workflows:
        for node in wf.nodes:
            if node.kind is ir.NodeKind.APPROVAL and target == "gitlab":
                tasks.append(Row(_where(node.span), f"approval {node.name!r} is a manual job:"
                                 " protect it (protected environment) to choose who may run it"))
            for ctx in node.context:
                tasks.append(Row(_where(node.span), f"{node.name!r} uses CircleCI context"
                                 f" {ctx!r}: create its variables ({SECRET_KIND[target]})"))
    import jinja2  # only when a report is asked for (start-up time)

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cicompile.targets", "templates"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
        lstrip_blocks=True, autoescape=False,
    )
    return env.get_template("report.md.j2").render(
        source=pipeline.source.rsplit("/", 1)[-1],
        target=target,
        workflows=pipeline.workflows,
        jobs=sum(1 for wf in pipeline.workflows for n in wf.nodes if n.kind is ir.NodeKind.JOB),
        approvals=sum(1 for wf in pipeline.workflows for n in wf.nodes
                      if n.kind is ir.NodeKind.APPROVAL),
        tasks=tasks,
        secrets=_secrets(pipeline),
        secret_kind=SECRET_KIND[target],
        findings=findings,
        runners=_runner_rows(runners, target),
    )
