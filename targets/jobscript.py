"""The bash shared by the make and shell targets: one runtime, one script per workflow node.

Both targets run a whole CircleCI pipeline on the host (semantics §9.3). They differ only in
who schedules the nodes (make's prerequisites, or the scheduler in ci.sh); everything else is
the same bash, rendered here from the templates in `templates/`:

- `runtime.sh.j2`: the run directory, ref detection, node decisions (filters, requires,
  approvals), the step helpers, the scheduler and summary, and the node index;
- `node.sh.j2`: per node, `cc_exists_KEY` (the node's existence condition) and, for jobs,
  `cc_job_KEY` (its steps).

Every string from the config is quoted with the `sh` filter, which never produces a
multi-line word, and a command is a quoted heredoc unless a line of it could not be carried
by a make `define` block (then it is one `$'...'` word): so the same node text is valid in
ci.sh and, with `$` doubled, in the Makefile.
"""

from __future__ import annotations

import functools
import re
import shlex

from cicompile import ir
from cicompile.conditions import And, Cond, Match, Not, Or, ScheduleName
from cicompile.records import dataclass
from cicompile.targets.base import (
    MEMO_TEXT_MAX,
    EmitContext,
    glob_quote,
    heredoc_delimiter,
    join_circleci_path,
    on_scheduled_pipelines,
    unique_ids,
)
from cicompile.targets.cachekey import (
    CHECKSUM_FUNCTION,
    cache_step_lines,
    cache_store_functions,
)
from cicompile.targets.hoststeps import remote_docker_notes
from cicompile.targets.refmatch import (
    BASH_REF_FUNCTIONS,
    BASH_SCHEDULE_FUNCTIONS,
    bash_condition,
    unsupported_regex_features,
)
from cicompile.targets.runners import report_host_platform
from cicompile.targets.services import local_services, report_local_services
from cicompile.targets.shim import install_script, needs_shim
from cicompile.targets.watchdog import watchdog_functions
from jinja2 import Environment, PackageLoader, StrictUndefined

# ---- quoting and the jinja environment -----------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_C_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# What `sh` writes for each character inside `$'...'`: NUL dropped, the escapes above, other
# control characters as \xNN (a multi-line script is one such word: a table, not a loop).
_C_TABLE: dict[int, str | None] = {
    **{c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]},
    **{ord(k): v for k, v in _C_ESCAPES.items()},
    0: None,
}


def sh(s: str) -> str:
    """`shlex.quote`, but one `$'...'` word for text with control characters (never a
    multi-line word) or a backslash before a quote (`'a\\'` reads as a mistake: SC1003)."""
    # Memoised: pure, and the same words recur (names, directories); not long texts (inline
    # scripts), which a long batch would keep alive.
    return _sh_memo(s) if len(s) <= MEMO_TEXT_MAX else _sh(s)


def _sh(s: str) -> str:
    if not _CONTROL.search(s):
        quoted = shlex.quote(s)
        if "\\'" not in quoted:
            return quoted
    return "$'" + s.translate(_C_TABLE) + "'"


_sh_memo = functools.lru_cache(maxsize=8192)(_sh)


def glob(path: str) -> str:
    """A workspace path with its glob characters active (see `glob_quote`)."""
    quoted = glob_quote(path)
    return sh(path) if _CONTROL.search(path) or "\\'" in quoted else quoted


def make_escape(text: str) -> str:
    """Text for a make variable body or recipe: `$` is written `$$` (GNU make manual 6.1)."""
    return text.replace("$", "$$")


# A line make would not carry verbatim inside `define ... endef`: a nested `define`/`endef`
# (make counts them, even indented), or a trailing backslash (make joins the next line).
MAKE_HAZARD = re.compile(r"^[ \t]*(?:define|endef)(?:[ \t]|$)|\\\r?$", re.M)
# Control characters but the newline: a command with one is passed as one `$'...'` word.
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def make_hazard(text: str) -> re.Match[str] | None:
    """`MAKE_HAZARD.search(text)`. The regex scans slowly (an alternation tried at every
    character) and texts are long: substring tests, one per way it can match, rule out nearly
    all of them first."""
    if not ("define" in text or "endef" in text or "\\\n" in text or "\\\r" in text
            or text.endswith("\\")):
        return None
    return MAKE_HAZARD.search(text)


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cicompile.targets", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        # The templates ship with the package: without this, every get_template (one per node)
        # would stat the template file to see whether it changed.
        auto_reload=False,
    )
    env.filters.update({"sh": sh, "glob": glob, "make_escape": make_escape})
    # Every `x.y` of a template calls `environment.getattr`, whose Python frame (and fallback
    # to `x["y"]`) these templates do not need: they read attributes of the view records
    # only. The builtin is a third of node rendering faster; a misspelt attribute then raises
    # AttributeError where jinja would give an undefined value (StrictUndefined: an error too).
    env.getattr = getattr  # type: ignore[method-assign,assignment]
    return env


ENV = make_environment()


# ---- the view model the templates read -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepView:
    kind: str  # run | checkout | persist | attach | store | cache | docker | ssh | notice | fail
    when: str  # on_success | on_fail | always
    title: str
    command: str = ""
    inline: bool = False  # pass the command as one word instead of a heredoc
    delimiter: str = ""
    options: tuple[tuple[str, str | None], ...] = ()  # cc_run flags (value None: bare flag)
    path: str = ""  # a CircleCI path (`~` = the job's HOME), resolved at run time
    index: int = 0
    paths: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    dest: str = ""
    message: str = ""
    lines: tuple[str, ...] = ()  # cache: bash lines run in a subshell with the job's env


@dataclass(frozen=True, slots=True)
class JobView:
    name: str
    workdir: str
    shell: str | None
    env: tuple[str, ...]  # NAME=VALUE, later ones win
    steps: tuple[StepView, ...]
    parallelism: int = 1
    shim: bool = False  # install the `circleci` shim on the job's PATH
    # Secondary docker images: (host, `docker run` arguments...), started by cc_service.
    services: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class NodeView:
    key: str  # unique over the pipeline, [A-Za-z0-9_]: bash function names
    wf_id: str
    node_id: str  # unique in its workflow, [A-Za-z0-9_-]: directories and make targets
    wf_name: str
    name: str
    kind: str  # job | approval
    needs: tuple[str, ...]  # keys
    exists: str  # a bash command list
    job: JobView | None
    # Flexible requires: (needed key, the runtime statuses it may end in, comma-separated).
    accepts: tuple[tuple[str, str], ...] = ()
    serial_group: str | None = None

    @property
    def index_needs(self) -> tuple[str, ...]:
        """The needs as the runtime's node index lists them: `KEY` or `KEY:STATUS,...`."""
        accepts = dict(self.accepts)
        return tuple(f"{k}:{accepts[k]}" if k in accepts else k for k in self.needs)


@dataclass(frozen=True, slots=True)
class WorkflowView:
    id: str
    name: str
    nodes: tuple[NodeView, ...] = ()
    trigger: str = "push"  # push | schedule (runs only when CICOMPILE_TRIGGER=schedule) | any
    reruns: int = 0  # the workflow's max_auto_reruns: a failed job runs again up to this often


@dataclass(frozen=True, slots=True)
class ScriptModel:
    source: str
    workflows: tuple[WorkflowView, ...]

    @property
    def nodes(self) -> tuple[NodeView, ...]:
        return tuple(n for wf in self.workflows for n in wf.nodes)


def _keys(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Bash-function-safe unique keys for (workflow id, node id) pairs."""
    out: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for wf_id, node_id in pairs:
        base = re.sub(r"[^A-Za-z0-9_]", "_", f"{wf_id}__{node_id}")
        key, i = base, 2
        while key in used:
            key = f"{base}_{i}"
            i += 1
        used.add(key)
        out[(wf_id, node_id)] = key
    return out


def _artifact_dest(path: str) -> str:
    """A relative destination under the node's artifacts directory, never escaping it."""
    parts = [p for p in path.split("/") if p not in ("", ".", "~")]
    return "/".join("__" if p == ".." else p for p in parts) or "_"


def _patterns(c: Cond) -> list[str]:
    match c:
        case Match(_, pattern) | ScheduleName(pattern):
            return [pattern.text] if pattern.regex else []
        case Not(atom):
            return _patterns(atom)
        case And(items) | Or(items):
            return [p for i in items for p in _patterns(i)]
    return []


# `pipeline.trigger_source` in a make or shell run: CICOMPILE_TRIGGER=schedule stands for a
# scheduled pipeline, push (the default) for a push; no run is an API call.
_LOCAL_TRIGGER = {"scheduled_pipeline": "[[ $CC_TRIGGER == schedule ]]",
                  "webhook": "[[ $CC_TRIGGER == push ]]", "api": "false"}


def node_parallelism(pipeline: ir.Pipeline, wf: ir.Workflow, node: str) -> int:
    """How many shards a workflow node runs as (1 for approvals and plain jobs)."""
    job = wf.node(node).job
    return pipeline.job(job).parallelism if job is not None else 1


# The runtime's statuses for CircleCI's (semantics §5.3): a job that did not run because of
# its requirements is `blocked`. Nothing is canceled or unauthorized in a local run.
_RUNTIME_STATUS = {
    ir.JobStatus.SUCCESS: "success",
    ir.JobStatus.FAILED: "failed",
    ir.JobStatus.NOT_RUN: "blocked",
}


def runtime_statuses(allowed: frozenset[ir.JobStatus]) -> str:
    """The runtime statuses a flexible requirement accepts, comma-separated (`none`: none of
    them can occur, so the node never starts)."""
    return ",".join(v for k, v in _RUNTIME_STATUS.items() if k in allowed) or "none"


class _Builder:
    def __init__(self, pipeline: ir.Pipeline, ctx: EmitContext) -> None:
        self.pipeline = pipeline
        self.ctx = ctx
        # (step, working directory, layers) → its view: the same steps recur in a config's
        # jobs (steps compare by value), and a view depends on nothing else.
        self.views: dict[tuple[ir.Step, str, tuple[str, ...]], StepView] = {}

    def model(self) -> ScriptModel:
        wf_ids = unique_ids([wf.name for wf in self.pipeline.workflows])
        node_ids = {
            wf.name: unique_ids([n.name for n in wf.nodes]) for wf in self.pipeline.workflows
        }
        keys = _keys(
            [
                (wf_ids[wf.name], node_ids[wf.name][n.name])
                for wf in self.pipeline.workflows
                for n in wf.nodes
            ]
        )
        warned: set[str] = set()
        workflows = []
        for wf in self.pipeline.workflows:
            wid = wf_ids[wf.name]
            ids = node_ids[wf.name]
            nodes = []
            for n in wf.nodes:
                for regex in _patterns(n.exists):
                    for what in unsupported_regex_features(regex):
                        if regex not in warned:
                            warned.add(regex)
                            self.ctx.diags.warning(
                                "unsupported-feature",
                                f"filter /{regex}/ uses {what}, which bash regexes lack;"
                                " the make and shell targets may select jobs differently",
                                n.filters.span or n.span,
                            )
                job = self.pipeline.job(n.job) if n.job is not None else None
                nodes.append(
                    NodeView(
                        key=keys[(wid, ids[n.name])],
                        wf_id=wid,
                        node_id=ids[n.name],
                        wf_name=wf.name,
                        name=n.name,
                        kind="approval" if n.kind is ir.NodeKind.APPROVAL else "job",
                        needs=tuple(keys[(wid, ids[d])] for d in n.needs),
                        exists=bash_condition(n.exists, _LOCAL_TRIGGER.__getitem__),
                        job=self.job(job, wf, n, ids) if job is not None else None,
                        accepts=tuple(
                            (keys[(wid, ids[d])], runtime_statuses(n.allowed(d)))
                            for d in n.needs if n.allowed(d) != ir.SUCCESS_ONLY
                        ),
                        # `${CIRCLE_BRANCH}` → `@CIRCLE_BRANCH@`: plain text for bash and
                        # shellcheck, which cc_lock replaces (names have no `@`).
                        serial_group=None if n.serial_group is None
                        else ir.RUNTIME_REF.sub(r"@\1@", n.serial_group),
                    )
                )
            trigger = "schedule" if wf.schedules else "push"
            if on_scheduled_pipelines(self.pipeline, wf):
                trigger = "any"  # push and schedule runs alike: its conditions decide
            workflows.append(
                WorkflowView(id=wid, name=wf.name, nodes=tuple(nodes), trigger=trigger,
                             reruns=wf.max_auto_reruns)
            )
        return ScriptModel(source=self.pipeline.source, workflows=tuple(workflows))

    def job(
        self, job: ir.Job, wf: ir.Workflow, node: ir.WorkflowNode, ids: dict[str, str]
    ) -> JobView:
        report_local_services(self.ctx.diags, job)
        report_host_platform(self.ctx.diags, job)
        env: list[str] = []
        if job.executor.kind is ir.ExecutorKind.DOCKER and job.executor.images:
            # The primary image's environment, under the job's (semantics §10.1).
            env += [f"{k}={v}" for k, v in job.executor.images[0].environment]
        env += [f"{k}={v}" for k, v in job.environment]
        layers = tuple(
            name for layer in node.layers for name in self.layer_names(layer, wf, ids)
        )
        steps = tuple(self.view(job, s, layers) for s in job.steps)
        return JobView(
            name=job.name,
            workdir=job.working_directory,
            shell=job.shell,
            env=tuple(env),
            steps=steps,
            parallelism=job.parallelism,
            shim=needs_shim(job),
            services=local_services(job),
        )

    def layer_names(
        self, layer: ir.WorkspaceLayer, wf: ir.Workflow, ids: dict[str, str]
    ) -> list[str]:
        """The tarball names of one layer: `ID-LAYER`, or one `ID-LAYER@SHARD` per shard of a
        parallel job, in shard order (cc_pack names them so)."""
        base = f"{ids[layer.node]}-{layer.index}"
        shards = node_parallelism(self.pipeline, wf, layer.node)
        if shards <= 1:
            return [base]
        return [f"{base}@{i}" for i in range(shards)]

    def view(self, job: ir.Job, step: ir.Step, layers: tuple[str, ...]) -> StepView:
        """`step`, memoised (but for the steps that record diagnostics)."""
        if isinstance(step, ir.SetupRemoteDocker):
            return self.step(job, step, layers)
        key = (step, job.working_directory,
               layers if isinstance(step, ir.AttachWorkspace) else ())
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = self.step(job, step, layers)
        return view

    def step(self, job: ir.Job, step: ir.Step, layers: tuple[str, ...]) -> StepView:
        wd = job.working_directory
        match step:
            case ir.Run():
                options: list[tuple[str, str | None]] = [
                    ("--dir", join_circleci_path(wd, step.working_directory))
                ]
                if step.shell:
                    options.append(("--shell", step.shell))
                options += [("--env", f"{k}={v}") for k, v in step.environment]
                if step.background:
                    options.append(("--background", None))
                elif step.no_output_timeout is not None:
                    options.append(("--timeout", str(step.no_output_timeout)))
                if step.max_auto_reruns and not step.background:
                    options.append(("--reruns", str(step.max_auto_reruns)))
                    if step.auto_rerun_delay:
                        options.append(("--delay", str(step.auto_rerun_delay)))
                inline = bool(make_hazard(step.command)
                              or _CONTROL_BUT_NEWLINE.search(step.command))
                return StepView(
                    kind="run",
                    when=step.when.value,
                    title=step.name + (" (background)" if step.background else ""),
                    command=step.command.removesuffix("\n") if not inline else step.command,
                    inline=inline,
                    delimiter=heredoc_delimiter(step.command),
                    options=tuple(options),
                )
            case ir.Checkout():
                return StepView(
                    kind="checkout",
                    when="on_success",
                    title="Checkout code",
                    path=join_circleci_path(wd, step.path),
                )
            case ir.PersistToWorkspace():
                return StepView(
                    kind="persist",
                    when="on_success",
                    title="Persisting to Workspace",
                    path=join_circleci_path(wd, step.root),
                    index=step.layer,
                    paths=step.paths,
                )
            case ir.AttachWorkspace():
                return StepView(
                    kind="attach",
                    when="on_success",
                    title="Attaching Workspace",
                    path=join_circleci_path(wd, step.at),
                    layers=layers,
                )
            case ir.StoreArtifacts():
                return StepView(
                    kind="store",
                    when="always",
                    title="Uploading artifacts",
                    path=join_circleci_path(wd, step.path),
                    dest=_artifact_dest(step.destination or step.path),
                )
            case ir.StoreTestResults():
                return StepView(
                    kind="store",
                    when="always",
                    title="Uploading test results",
                    path=join_circleci_path(wd, step.path),
                    dest="test-results/" + _artifact_dest(step.path),
                )
            case ir.SaveCache() | ir.RestoreCache():
                return _cache_view(job, step)
            case ir.SetupRemoteDocker():
                # The host's engine stands in for the remote one: it must be there at run time.
                remote_docker_notes(self.ctx, step, "the job uses this host's Docker engine")
                return StepView(kind="docker", when="on_success",
                                title="Setup a remote Docker engine", message=step.version or "")
            case ir.AddSshKeys():
                return StepView(kind="ssh", when="on_success", title="Add SSH keys",
                                paths=step.fingerprints)
            case ir.Unsupported():
                return StepView(
                    kind="fail", when="on_success", title=step.name, message=step.reason
                )
        raise AssertionError(step)


def _cache_view(job: ir.Job, step: ir.SaveCache | ir.RestoreCache) -> StepView:
    """A cache step over the local store `$CC_CACHE`; `~` paths are kept relative to the
    job's HOME (root `home`), so one job's saved `~/.npm` restores into another's HOME."""
    paths = [
        '"$(cc_path ' + sh(join_circleci_path(job.working_directory, p)) + ')"'
        for p in (step.paths if isinstance(step, ir.SaveCache) else ())
    ]
    lines = cache_step_lines(step, '"$CC_CACHE"', ['"home=$CC_HOME"'], paths)
    if isinstance(step, ir.SaveCache):
        return StepView(kind="cache", when=step.when.value,
                        title=step.name or "Saving Cache", lines=tuple(lines))
    return StepView(kind="cache", when="on_success", title=step.name or "Restoring Cache",
                    lines=tuple(lines))


def build_model(pipeline: ir.Pipeline, ctx: EmitContext) -> ScriptModel:
    return _Builder(pipeline, ctx).model()


# ---- rendering -----------------------------------------------------------------------------


def render_runtime(model: ScriptModel) -> str:
    """The runtime plus the node index (no trailing newline). The shim is included only when
    some job needs it, so other outputs stay as small as before."""
    shim = any(n.job is not None and n.job.shim for n in model.nodes)
    # Likewise the cache store, only when some job saves or restores a cache.
    caches = any(s.kind == "cache" for n in model.nodes if n.job for s in n.job.steps)
    text = ENV.get_template("runtime.sh.j2").render(
        ref_functions=(BASH_REF_FUNCTIONS + (BASH_SCHEDULE_FUNCTIONS if any(
            "cc_schedule_" in n.exists for n in model.nodes) else "")).rstrip("\n"),
        cache_functions=CHECKSUM_FUNCTION + "\n\n" + cache_store_functions() if caches else "",
        workflows=model.workflows,
        shim=install_script('"$1"') if shim else "",
        watchdog=watchdog_functions().rstrip("\n"),
    )
    return text.rstrip("\n")


def render_nodes(nodes: tuple[NodeView, ...]) -> list[str]:
    """Each node's functions (no trailing newline). One render for all the nodes: a render
    costs about what a node's steps do (a context, a generator, the joins)."""
    template = ENV.get_template("node.sh.j2")
    texts = template.render(nodes=nodes, end=_NODE_END).split(_NODE_END)
    if len(texts) != len(nodes) + 1:
        # Some node's own text holds the marker: a filter pattern or a cache key is written
        # as `shlex.quote` gives it, NUL included. Then one render per node, as before.
        return [template.render(nodes=(n,), end="").rstrip("\n") for n in nodes]
    return [t.rstrip("\n") for t in texts[:-1]]


# Ends each node's text in the render of all nodes; never in the output.
_NODE_END = "\x00cicompile-node-end\x00"


def comment_safe(text: str) -> str:
    """Text for a `#` comment line: one line, no trailing backslash."""
    return _CONTROL.sub("?", text).rstrip("\\")


# ---- dropping the runtime functions a file never calls --------------------------------------

# Where make.py and shell.py first render the runtime: the file around it is what calls the
# runtime's functions. Only its first occurrence is the slot: nothing before it comes from
# the config but the comment-safe source path, while a node's text may hold a NUL (a filter
# pattern or cache key as `shlex.quote` writes it), even this marker.
RUNTIME_SLOT = "\x00cicompile-runtime\x00"

_NAME_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
# Text that starts a function line, a closing line or a heredoc; found with str.find, which
# is much faster than a regex or a loop over the lines.
_MARKERS = (("() {\n", "}"), ("() (\n", ")"), ("\n}\n", ""), ("\n)\n", ""), ("<<", ""))


class _Unfollowable(Exception):
    """The text has a shape the function reader does not follow."""


def _after_heredoc(text: str, at: int) -> int:
    """Where the text goes on after the heredoc whose `<<` is at AT; AT itself if that is no
    heredoc: a here-string, a shift, or quoted text from the config (`<< pipeline.id >>` in
    a step name), whose "delimiter" has no line of its own after it. (Quoted text whose word
    happens to have such a line only hides functions from this reader, which then keeps
    them: the runtime's own functions hold no config text.)"""
    op = _HEREDOC.match(text, at)
    if op is None or text.startswith("<", at - 1) or text.startswith("<", at + 2):
        return at
    eol = text.find("\n", op.end())
    if eol < 0:
        return at
    if "<<" in text[op.end():eol]:
        raise _Unfollowable  # (maybe) a second heredoc on the line
    delimiter = op[3]
    if op[1]:  # <<-: the delimiter may be indented with tabs
        end = re.compile(rf"^\t*{re.escape(delimiter)}$", re.M).search(text, eol + 1)
        return at if end is None else end.end() + 1
    found = text.find(f"\n{delimiter}\n", eol)
    if found >= 0:
        return found + len(delimiter) + 2
    return len(text) if text.endswith(f"\n{delimiter}") else at


def _functions(text: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of every `name() {` / `name() (` line up to its `}` / `)` line,
    both at column 0: from the comment lines right above to the closing line's newline.
    Heredocs are skipped (their text may look like code)."""
    events: list[tuple[int, str, str]] = []
    for marker, closing in _MARKERS:
        shift = 1 if marker.startswith("\n") else 0  # a closing line starts after the \n
        at = text.find(marker)
        while at >= 0:
            events.append((at + shift, marker, closing))
            at = text.find(marker, at + 1)
    events.sort()
    out: list[tuple[str, int, int]] = []
    floor = skip_to = 0  # floor: the end of the previous function
    current: tuple[str, int, str] | None = None  # (name, start, closing line)
    for at, marker, closing in events:
        if at < skip_to:
            continue
        if marker == "<<":
            skip_to = _after_heredoc(text, at)
        elif closing:  # `name() {`
            line = text.rfind("\n", 0, at) + 1
            if not _NAME_LINE.fullmatch(text, line, at):
                continue
            if current is not None:
                raise _Unfollowable  # a definition at column 0 inside a function
            start = line
            while start > floor:  # the comment lines right above go with the function
                above = text.rfind("\n", 0, start - 1) + 1
                if above < floor or not text.startswith("#", above):
                    break
                start = above
            current = (text[line:at], start, closing)
        elif current is not None and marker[1] == current[2]:
            out.append((current[0], current[1], at + 2))
            current, floor = None, at + 2
    if current is not None:
        raise _Unfollowable
    return out


_Analysis = tuple["re.Pattern[str]", dict[str, tuple[int, int]], dict[str, frozenset[str]],
                  frozenset[str], frozenset[str]]


@functools.lru_cache(maxsize=16)
def _analyse(functions_text: str) -> _Analysis | None:
    """For the runtime's text up to its last function: the pattern of the words that may name
    a function, each function's span and words, the words outside the functions, the run-time
    name prefixes (`cc_job_` of `cc_job_$`) anywhere; None when the text cannot be followed."""
    try:
        functions = _functions(functions_text)
    except _Unfollowable:
        return None
    if not functions:
        return None
    # The words that may name a function or start a run-time name: they begin like a
    # function (`cc_`…). One alternation of every name would be tried at every position.
    heads = sorted({name[: name.find("_") + 1] or name for name, _, _ in functions},
                   key=len, reverse=True)
    words = re.compile("(?:" + "|".join(map(re.escape, heads)) + r")[A-Za-z0-9_]*+\$?")
    spans: dict[str, tuple[int, int]] = {}
    bodies: dict[str, frozenset[str]] = {}
    outside: set[str] = set()
    done = 0
    for name, start, end in functions:
        outside.update(words.findall(functions_text, done, start))
        spans[name] = (start, end)
        bodies[name] = frozenset(words.findall(functions_text, start, end))
        done = end
    outside.update(words.findall(functions_text, done))
    dynamic = frozenset(w[:-1] for found in (outside, *bodies.values()) for w in found
                        if w.endswith("$"))
    return words, spans, bodies, frozenset(outside), dynamic


def functions_end(runtime: str) -> int:
    """Where the runtime's last function ends (after its closing line), -1 if it has none:
    the node index comes after it."""
    cut = max(runtime.rfind("\n}\n"), runtime.rfind("\n)\n"))
    return cut + 3 if cut >= 0 else -1


def drop_unused_functions(runtime: str, callers: str) -> str:
    """RUNTIME without the bash functions that nothing calls; CALLERS is the rest of the file
    (node scripts, recipes, `cc_shell_main "$@"`).

    The runtime is one text for every config; a config without caches, checkouts, SSH keys…
    needs only part of it. A function is kept when its name is a word of CALLERS, of the
    runtime outside its functions (the node index) or of a kept function, or starts with a
    name completed at run time (`x$`: `"cc_exists_$key"`, `cc_job_$$CC_KEY` in a Makefile).
    The comment lines right above a function go with it. A runtime this reading cannot follow
    (an unterminated function, two heredocs on one line, a definition at column 0 inside a
    function) is kept whole. A `}` line inside a multi-line quoted string would end a
    function early: the template has none (the validators' `bash -n` and shellcheck of every
    output would show it)."""
    cut = functions_end(runtime)
    if cut < 0:
        return runtime
    # The functions end where the node index begins; their analysis is the same for every
    # config with the same runtime features, so it is computed once.
    analysis = _analyse(runtime[:cut])
    if analysis is None:
        return runtime
    words, spans, bodies, outside, dynamic = analysis
    roots = set(outside)
    roots.update(words.findall(runtime, cut))
    roots.update(words.findall(callers))
    prefixes = tuple(dynamic | {w[:-1] for w in roots if w.endswith("$")})
    keep = {name for name in spans if name.startswith(prefixes)} if prefixes else set()
    todo = [roots, *(bodies[name] for name in keep)]
    while todo:
        for name in todo.pop() - keep:
            if name in spans:
                keep.add(name)
                todo.append(bodies[name])
    if len(keep) == len(spans):
        return runtime
    parts: list[str] = []
    done = 0
    for name, (start, end) in spans.items():
        if name in keep:
            continue
        parts.append(runtime[done:start])
        # One blank line between the neighbours, not two.
        if runtime.startswith("\n", end) and (start == 0 or runtime.startswith("\n\n", start - 2)):
            end += 1
        done = end
    parts.append(runtime[done:])
    return "".join(parts)
