"""GitLab CI target: one `.gitlab-ci.yml` for all workflows (semantics §9.2).

Pipeline shape: a stageless DAG. Every job has `needs:` (`[]` for roots), so the default
stages never serialise anything. A job is named after its workflow node when that name is
unique across all workflows and is not a GitLab keyword; otherwise `<workflow>:<node>`.

Filters: each node's existence formula (own filters AND "some requirement exists", computed
by the passes) becomes the job's `rules:if`; every `needs` entry on a job that might be absent
when the needing job exists is `optional: true`, so GitLab drops it instead of refusing to
create the pipeline.

Steps: CircleCI runs each step in a new shell process and keeps going after a failure only
for `when: always`/`on_fail` steps. GitLab runs all `script` lines in one shell and stops at
the first failure. So a small POSIX-sh step driver (`cicompile_step`, defined once in
`default: before_script`) runs each step's text, passed in a quoted heredoc, in a fresh shell
with stdin from /dev/null, records failures instead of stopping, and `cicompile_finish` fails
the job at the end. Workspaces, checkout and artifact copies are steps of the same driver, so
they obey the same `when` rules and run at their CircleCI positions.

Directories: CircleCI's `~/project` is GitLab's clone directory `$CI_PROJECT_DIR`; other `~`
paths live under `$HOME`; absolute paths are kept.

Workspaces: each `persist_to_workspace` writes a tarball (keeps modes and hidden files) under
`$CI_PROJECT_DIR/.cicompile/workspace/`, uploaded as a job artifact; an attaching job `needs`
(with artifacts) every ancestor that persists — GitLab's artifact passing is not transitive —
and unpacks the tarballs in topological order. A filtered-out ancestor simply has no tarball.

Clone: GitLab clones before every job. Jobs without a `checkout` step get
`GIT_STRATEGY: none` (CircleCI gives them no sources; artifacts, hence workspaces, still
arrive). On runners that reuse build directories such a job may see a previous job's files.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections import Counter
from functools import lru_cache
from typing import Any

from cicompile import ir
from cicompile.conditions import FALSE, TRUE, implies
from cicompile.targets.base import (
    GENERATED_NOTICE,
    EmitContext,
    Target,
    glob_quote,
    heredoc_delimiter,
    join_circleci_path,
    on_scheduled_pipelines,
    sh_quote,
    step_index,
    unique_ids,
)
from cicompile.targets.cachekey import (
    CHECKSUM_FUNCTION,
    cache_step_lines,
    cache_store_functions,
)
from cicompile.targets.hoststeps import (
    dind_image,
    docker_check_script,
    remote_docker_notes,
    ssh_agent_script,
    ssh_key_secrets,
)
from cicompile.targets.refmatch import gitlab_condition
from cicompile.targets.report import describe_branches
from cicompile.targets.runners import WINDOWS, Placement, job_placement
from cicompile.targets.services import (
    Service,
    entrypoint_script,
    report_services,
    rewrite_localhost,
    services,
)
from cicompile.targets.shim import install_script, needs_shim
from cicompile.targets.watchdog import step_timeout, watchdog_functions
from cicompile.targets.yamldump import anchored, dump_yaml

# Top-level keywords (and YAML/Ruby literals) a job may not be named after (semantics §9.2).
RESERVED_NAMES = frozenset({
    "image", "services", "stages", "before_script", "after_script", "variables", "cache",
    "include", "default", "workflow", "true", "false", "nil",
})
MAX_JOB_NAME = 128  # the limit for jobs used in `needs`
# GitLab's predefined variables for the CircleCI values a serial-group name may read (the same
# ones STEP_DRIVER exports for every job).
GITLAB_VALUES = {
    "CIRCLE_BRANCH": "CI_COMMIT_BRANCH",
    "CIRCLE_TAG": "CI_COMMIT_TAG",
    "CIRCLE_SHA1": "CI_COMMIT_SHA",
    "CIRCLE_BUILD_NUM": "CI_JOB_ID",
    "CIRCLE_PIPELINE_ID": "CI_PIPELINE_ID",
    "CIRCLE_PIPELINE_NUMBER": "CI_PIPELINE_IID",
    "CIRCLE_PROJECT_REPONAME": "CI_PROJECT_NAME",
    "CIRCLE_PROJECT_USERNAME": "CI_PROJECT_NAMESPACE",
    "CIRCLE_REPOSITORY_URL": "CI_PROJECT_URL",
}
NEEDS_LIMIT = 50
STATE_DIR = ".cicompile"
WS_DIR = f"{STATE_DIR}/workspace"
ARTIFACTS_DIR = f"{STATE_DIR}/artifacts"
TEST_RESULTS_DIR = f"{STATE_DIR}/test-results"
CACHE_DIR = f"{STATE_DIR}/cache"
# The one GitLab cache that carries the CircleCI cache store between pipelines.
GITLAB_CACHE_KEY = "cicompile-circleci-caches"
PROJECT_DIR = '"$CI_PROJECT_DIR"'

# Defined once for every job (`default: before_script`). POSIX sh, because GitLab runs the
# script with bash when the image has it and with sh otherwise.
STEP_DRIVER = r"""# cicompile step driver: CircleCI runs every step in a new shell process and,
# after a failed step, only runs the steps marked `when: always` or `when: on_fail`.
#   cicompile_step [--name NAME] [--dir DIR] [--when on_success|on_fail|always]
#                  [--shell CMD] [--background] [--timeout SECONDS] [--reruns N]
#                  [--delay SECONDS] [VAR=VALUE...] <<'EOF' ...step text... EOF
# NAME defaults to the first line of the text, DIR to the job's working directory; a step
# silent for SECONDS is killed (cicompile_watch above), a failed one runs up to N more times.
cicompile_failed=0
cicompile_bg=''
cicompile_dir=$CI_PROJECT_DIR
cicompile_step() {
  cc_name=''; cc_dir=$cicompile_dir; cc_when=on_success; cc_shell=''; cc_background=0
  cc_timeout=0; cc_reruns=0; cc_delay=0
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) cc_timeout=$2; shift 2 ;;
      --reruns) cc_reruns=$2; shift 2 ;;
      --delay) cc_delay=$2; shift 2 ;;
      --name) cc_name=$2; shift 2 ;;
      --dir) cc_dir=$2; shift 2 ;;
      --when) cc_when=$2; shift 2 ;;
      --shell) cc_shell=$2; shift 2 ;;
      --background) cc_background=1; shift ;;
      *) break ;;
    esac
  done
  cc_file=$(mktemp)
  cat > "$cc_file"
  [ -n "$cc_name" ] || cc_name=$(head -n 1 "$cc_file")
  if [ -n "${CICOMPILE_HALT:-}" ] && [ -e "$CICOMPILE_HALT" ]; then
    printf 'cicompile: skipped (the job halted): %s\n' "$cc_name"
    rm -f "$cc_file"
    return 0
  fi
  case $cc_when:$cicompile_failed in
    on_success:1|on_fail:0)
      printf 'cicompile: skipped (when: %s): %s\n' "$cc_when" "$cc_name"
      rm -f "$cc_file"
      return 0 ;;
  esac
  if [ -z "$cc_shell" ]; then
    if [ -x /bin/bash ]; then cc_shell='/bin/bash -eo pipefail'; else cc_shell='/bin/sh -e'; fi
  fi
  # PowerShell runs a script file only if its name ends in .ps1.
  case ${cc_shell%% *} in
    pwsh|pwsh.exe|powershell|powershell.exe|*/pwsh|*/pwsh.exe|*/powershell|*/powershell.exe)
      mv "$cc_file" "$cc_file.ps1" && cc_file=$cc_file.ps1 ;;
  esac
  if ! mkdir -p "$cc_dir"; then
    cicompile_failed=1
    return 0
  fi
  if [ "$cc_background" = 1 ]; then
    (cd "$cc_dir" && exec env "$@" $cc_shell "$cc_file") </dev/null >"$cc_file.log" 2>&1 &
    cicompile_bg="$cicompile_bg $!:$cc_file.log"
    printf 'cicompile: started in the background (pid %s): %s\n' "$!" "$cc_name"
    return 0
  fi
  cc_rc=0
  (cd "$cc_dir" && cicompile_watch "$cc_timeout" "$cc_reruns" "$cc_delay" \
    env "$@" $cc_shell "$cc_file") </dev/null || cc_rc=$?
  rm -f "$cc_file"
  if [ "$cc_rc" != 0 ]; then
    printf 'cicompile: step failed (exit code %s): %s\n' "$cc_rc" "$cc_name" >&2
    cicompile_failed=1
  fi
  return 0
}
# The job's end: stop background steps, show their output, fail if a step failed.
cicompile_finish() {
  for cc_bg_item in $cicompile_bg; do
    kill "${cc_bg_item%%:*}" 2>/dev/null || true
    printf 'cicompile: output of background step (pid %s):\n' "${cc_bg_item%%:*}"
    cat "${cc_bg_item#*:}" 2>/dev/null || true
  done
  if [ "$cicompile_failed" != 0 ]; then
    echo 'cicompile: a step failed; the job fails' >&2
    return 1
  fi
  return 0
}
# CircleCI's built-in variables, from GitLab's predefined ones.
export CI=true CIRCLECI=true
export CIRCLE_BRANCH="${CI_COMMIT_BRANCH:-}"
if [ -n "${CI_COMMIT_TAG:-}" ]; then export CIRCLE_TAG="$CI_COMMIT_TAG"; fi
export CIRCLE_SHA1="${CI_COMMIT_SHA:-}" CIRCLE_BUILD_NUM="${CI_JOB_ID:-}"
export CIRCLE_BUILD_URL="${CI_JOB_URL:-}"
export CIRCLE_PIPELINE_ID="${CI_PIPELINE_ID:-}" CIRCLE_PIPELINE_NUMBER="${CI_PIPELINE_IID:-}"
export CIRCLE_PROJECT_REPONAME="${CI_PROJECT_NAME:-}"
export CIRCLE_PROJECT_USERNAME="${CI_PROJECT_NAMESPACE:-}"
export CIRCLE_REPOSITORY_URL="${CI_PROJECT_URL:-}"
export CIRCLE_NODE_INDEX=0 CIRCLE_NODE_TOTAL=1
# cicompile keeps workspace tarballs and artifact copies in $CI_PROJECT_DIR/.cicompile;
# keep them out of `git status` for the job's scripts.
if [ -d "$CI_PROJECT_DIR/.git" ]; then
  mkdir -p "$CI_PROJECT_DIR/.git/info"
  grep -qx '/.cicompile/' "$CI_PROJECT_DIR/.git/info/exclude" 2>/dev/null ||
    echo '/.cicompile/' >> "$CI_PROJECT_DIR/.git/info/exclude"
fi
# Steps persist variables for later steps by appending to $BASH_ENV, as on CircleCI.
BASH_ENV=$(mktemp)
export BASH_ENV
"""


# The `circleci` shim, for jobs that run in parallel or call it: outside the project directory
# (never in artifacts), on PATH for every later step (the step driver inherits the export).
# One object, so the file holds its text once (`&circleci-shim`) and other jobs the alias.
SHIM_INSTALL = anchored("circleci-shim", (
    "# The circleci CLI shim\n"
    "cicompile_bin=$(mktemp -d)\n"
    + install_script('"$cicompile_bin"')
    + 'export PATH="$cicompile_bin:$PATH" CICOMPILE_HALT="$cicompile_bin/halted"\n'
))
# The hidden job the jobs with cache steps extend: its before_script (which replaces the
# default one) is the step driver and the cache store library, so other jobs carry no library.
CACHE_TEMPLATE = ".cicompile-cache"


# ---- names and paths ---------------------------------------------------------------------


def gitlab_job_names(pipeline: ir.Pipeline) -> dict[tuple[str, str], str]:
    """(workflow, node) → GitLab job name: the node name if it is unique and allowed."""
    counts = Counter(n.name for wf in pipeline.workflows for n in wf.nodes)
    out: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for wf in pipeline.workflows:
        for n in wf.nodes:
            plain = counts[n.name] == 1 and n.name not in RESERVED_NAMES
            base = n.name if plain and not n.name.startswith(".") else f"{wf.name}:{n.name}"
            if base.startswith("."):  # a leading dot hides a job
                base = "_" + base
            base = base[:MAX_JOB_NAME]
            name, i = base, 2
            while name in used:
                suffix = f"-{i}"
                name = base[: MAX_JOB_NAME - len(suffix)] + suffix
                i += 1
            used.add(name)
            out[(wf.name, n.name)] = name
    return out


def _home_relative(path: str) -> str | None:
    """The part after `~/` of a CircleCI path that lives in the home directory, else None."""
    if path.startswith("/"):
        return None
    if path in ("~", "~/"):
        return ""
    if path.startswith("~/"):
        return path[2:]
    if path.startswith("~"):
        return None  # ~user/…
    return path  # CircleCI resolves a relative job working_directory from $HOME


@lru_cache(maxsize=4096)  # pure, and every step of a job asks for the same directories
def shell_dir(path: str) -> str:
    """A CircleCI directory as a shell word on GitLab: `~/project` is `$CI_PROJECT_DIR`."""
    rest = _home_relative(path)
    if rest is None:
        user = re.match(r"~[A-Za-z0-9._-]*(?=/|$)", path)
        if user:  # ~user/…: the shell expands it, as CircleCI's does
            tail = path[user.end() :]
            return user.group() + (sh_quote(tail) if tail else "")
        return sh_quote(path)
    norm = posixpath.normpath(rest) if rest else "."
    if norm == "project":
        return PROJECT_DIR
    if norm.startswith("project/"):
        return PROJECT_DIR + "/" + sh_quote(norm[len("project/") :])
    if norm == ".":
        return '"$HOME"'
    return '"$HOME"/' + sh_quote(norm)


def _project_relative(path: str) -> str | None:
    """For a directory inside `~/project`: its path relative to the clone ("." for itself)."""
    rest = _home_relative(path)
    if rest is None:
        return None
    norm = posixpath.normpath(rest) if rest else "."
    if norm == "project":
        return "."
    if norm.startswith("project/"):
        return norm[len("project/") :]
    return None


def _names_first_line(name: str, text: str) -> bool:
    """Whether `name` is CircleCI's default step name for `text` (its first line, maybe cut)."""
    end = text.find("\n")  # (not `split`, which would copy the rest of a long script)
    first = text if end < 0 else text[:end]  # what the driver shows by default
    return name == first or (name.endswith("...") and first.startswith(name[:-3]))


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "step"


def _artifact_name(path: str) -> str:
    """A safe relative location under the artifacts directory for a stored path."""
    parts = [p for p in re.split(r"/+", path.lstrip("~")) if p not in ("", ".", "..")]
    name = "/".join(re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in parts)
    return name or "artifacts"


def workflow_id_prefix(workflow: str) -> str:
    """The first four groups of a workflow's CIRCLE_WORKFLOW_ID, which the job completes with
    the pipeline id in hex: CircleCI gives each workflow of a pipeline its own UUID (semantics
    §7), a GitLab pipeline holds them all. A UUID of version 8 (RFC 9562: custom), stable for
    one workflow of one pipeline, distinct between workflows and pipelines."""
    h = hashlib.sha256(workflow.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-8{h[12:15]}-{'89ab'[int(h[15], 16) % 4]}{h[16:19]}-"


def _escape_dollars(s: str) -> str:
    """GitLab expands `$VAR` in `variables` values; CircleCI values are literal."""
    return s.replace("$", "$$")


# ---- jobs --------------------------------------------------------------------------------


class _JobEmitter:
    def __init__(
        self,
        pipeline: ir.Pipeline,
        wf: ir.Workflow,
        node: ir.WorkflowNode,
        names: dict[tuple[str, str], str],
        ids: dict[str, str],
        ctx: EmitContext,
    ) -> None:
        self.pipeline = pipeline
        self.wf = wf
        self.node = node
        self.names = names
        self.ids = ids  # GitLab job name → file-safe id
        self.ctx = ctx
        self.name = names[(wf.name, node.name)]
        self.id = ids[self.name]
        self.artifact_paths: list[str] = []
        self.junit: list[str] = []
        self.artifacts_always = False

    def gl_name(self, node: str) -> str:
        return self.names[(self.wf.name, node)]

    def layer_names(self, layer: ir.WorkspaceLayer) -> list[str]:
        """A layer's tarball names: one, or one per node of a parallel job, in node order."""
        base = f"{self.ids[self.gl_name(layer.node)]}-{layer.index}"
        job = self.wf.node(layer.node).job
        shards = self.pipeline.job(job).parallelism if job is not None else 1
        return [base] if shards <= 1 else [f"{base}-node{i}" for i in range(shards)]

    # ---- header: needs and rules -----------------------------------------------------

    def needs(self, attaches: bool) -> list[dict[str, Any]]:
        layer_nodes = list(dict.fromkeys(layer.node for layer in self.node.layers))
        wanted = list(self.node.needs)
        if attaches:
            wanted += [n for n in layer_nodes if n not in wanted]
        out = []
        for name in wanted:
            upstream = self.wf.node(name)
            out.append({
                "job": self.gl_name(name),
                "artifacts": attaches and name in layer_nodes,
                "optional": not implies(self.node.exists, upstream.exists),
            })
        if len(out) > NEEDS_LIMIT:
            self.ctx.diags.warning(
                "gitlab-needs-limit",
                f"{self.node.name!r} needs {len(out)} jobs; GitLab allows {NEEDS_LIMIT} by"
                " default (raise the instance limit or split the fan-in)",
                self.node.span,
            )
        return out

    def source_condition(self) -> str | None:
        """The pipeline source this job's workflow runs on, when schedules are in play.

        CircleCI runs a scheduled workflow only on its schedule and, when a config has such
        workflows, a GitLab schedule stands for theirs: the other workflows are push-only,
        except those whose conditions read the pipeline source. Without scheduled workflows a
        GitLab schedule is a scheduled pipeline of CircleCI's schedule triggers, which runs
        every workflow its conditions allow (`on_scheduled_pipelines`).
        """
        if self.wf.schedules:
            return '$CI_PIPELINE_SOURCE == "schedule"'
        if on_scheduled_pipelines(self.pipeline, self.wf):
            return None  # pushes and schedules alike: its conditions decide
        return '$CI_PIPELINE_SOURCE != "schedule"'

    def rules(self, extra: dict[str, Any] | None = None) -> list[dict[str, Any]] | None:
        source = self.source_condition()
        if self.node.exists == FALSE:
            return [{"when": "never"}]
        if self.node.exists == TRUE:
            return None if source is None else [{"if": source, **(extra or {})}]
        cond = gitlab_condition(self.node.exists)
        if source is not None:
            cond = f"{source} && ({cond})"
        return [{"if": cond, **(extra or {})}]

    def status_when(self, needs: list[dict[str, Any]]) -> str | None:
        """GitLab's `when` for flexible requires (semantics §9.2), or None for the default.

        GitLab's job-level `when` looks at all needed jobs together: `on_failure` runs when
        any of them failed, `always` whatever they did. Exact: every requirement accepting
        any status (`always`), or a single requirement accepting only `failed` and no other
        need (`on_failure`). Otherwise the nearest one, with a warning saying how it differs.
        """
        node = self.node
        if not node.flexible:
            return None
        seen = {ir.JobStatus.SUCCESS, ir.JobStatus.FAILED, ir.JobStatus.CANCELED,
                ir.JobStatus.NOT_RUN}  # what GitLab can report (no `unauthorized`)
        sets = [node.allowed(d) & seen for d in node.requires]
        if all(s == seen for s in sets):
            return "always"
        # Needs added for workspace artifacts would count for `on_failure` too.
        if len(sets) == 1 and sets[0] == {ir.JobStatus.FAILED} and len(needs) == 1:
            return "on_failure"
        wanted = "; ".join(
            f"{d}: {', '.join(s for s in ir.JobStatus if s in node.allowed(d))}"
            for d in node.requires)
        when: str | None
        if any(ir.JobStatus.SUCCESS not in s for s in sets):
            when, how = "on_failure", "`when: on_failure` runs it when any job it needs failed"
        elif all(ir.JobStatus.FAILED in s for s in sets):
            when, how = "always", ("`when: always` runs it whatever the jobs it needs did"
                                   " (also when they were skipped or canceled)")
        else:
            when, how = None, "it runs only when every job it needs succeeded"
        self.ctx.diags.warning(
            "approximated-requires",
            f"{node.name!r} starts on CircleCI only when each requirement ends as listed"
            f" ({wanted}); GitLab has no per-need status: {how}",
            node.span,
        )
        return when

    def approval(self) -> dict[str, Any]:
        out: dict[str, Any] = {"needs": self.needs(False)}
        if self.node.flexible:
            self.ctx.diags.warning(
                "approximated-requires",
                f"approval {self.node.name!r} has flexible requires; a GitLab manual job"
                " becomes available only when the jobs it needs succeeded",
                self.node.span,
            )
        manual = {"when": "manual", "allow_failure": False}
        rules = self.rules(manual)
        if rules is None:
            out.update(manual)
        else:
            out["rules"] = rules
        out["variables"] = {"GIT_STRATEGY": "none"}
        out["script"] = [f"echo {sh_quote(self.node.name)} approved"]
        return out

    def resource_group(self, group: str) -> str:
        """`serial-group` → `resource_group` (semantics §9.2), which GitLab queues per
        project; its names take letters, digits, `-_/.{}$` and spaces, and expand variables:
        a pipeline value in the name becomes GitLab's variable for it."""
        parts = ir.RUNTIME_REF.split(group)  # text, variable, text, ...
        name = "".join(
            re.sub(r"[^A-Za-z0-9_./ -]", "_", part) if i % 2 == 0
            else "${" + GITLAB_VALUES.get(part, part) + "}"
            for i, part in enumerate(parts)
        ).strip("/") or "_"
        self.ctx.diags.warning(
            "approximated-serial-group",
            f"serial-group {group!r} becomes the GitLab resource_group {name!r}: per project"
            " (CircleCI: per organization); GitLab's default process mode `unordered` starts"
            " waiting jobs in any order, where CircleCI goes by pipeline number and skips"
            " older ones (set `oldest_first` through the API for the nearest behaviour)",
            self.node.span,
        )
        return name

    # ---- build jobs ------------------------------------------------------------------

    def build(self, job: ir.Job) -> dict[str, Any]:
        attaches = any(isinstance(s, ir.AttachWorkspace) for s in job.steps)
        out: dict[str, Any] = {}
        if _has_caches(job):
            out["extends"] = CACHE_TEMPLATE
        placement = job_placement(self.ctx, "gitlab", job, self.node.name)
        if job.executor.kind is ir.ExecutorKind.DOCKER:
            job, rewrites = rewrite_localhost(job)
            report_services(self.ctx.diags, job, services(job.executor), rewrites, "GitLab")
        out.update(self.executor(job.executor, placement))
        out["needs"] = self.needs(attaches)
        when = self.status_when(out["needs"])
        rules = self.rules({"when": when} if when else None)
        if rules is not None:
            out["rules"] = rules
        elif when:
            out["when"] = when
        if self.node.serial_group is not None:
            out["resource_group"] = self.resource_group(self.node.serial_group)
        if not any(isinstance(s, ir.Checkout) for s in job.steps):
            out["variables"] = {"GIT_STRATEGY": "none"}
        self.remote_docker(job, out)
        if self.wf.max_auto_reruns:
            out["retry"] = min(self.wf.max_auto_reruns, 2)
            if self.wf.max_auto_reruns > 2:
                self.ctx.diags.warning(
                    "workflow-reruns",
                    f"`max_auto_reruns: {self.wf.max_auto_reruns}`: GitLab retries a failed job"
                    " at most twice (`retry: 2`)", self.wf.span)
        if job.parallelism > 1:
            out["parallel"] = job.parallelism
        script = [self.job_environment(job)]
        if job.executor.kind is ir.ExecutorKind.DOCKER and job.executor.images:
            start = entrypoint_script(job.executor.images[0], "/tmp/cicompile-entrypoint.log")
            if start:
                self.ctx.diags.warning(
                    "primary-entrypoint",
                    "GitLab starts the job image with a shell: the primary image's"
                    " `entrypoint`/`command` is started in the background before the steps",
                    job.executor.images[0].span,
                )
                script.append(start)
        if needs_shim(job):
            script.append(SHIM_INSTALL)
        for step in job.steps:
            script.append(self.step(job, step))
        script.append("cicompile_finish")
        out["script"] = script
        cache = _gitlab_cache(job)
        if cache is not None:
            out["cache"] = cache
        persists = [s for s in job.steps if isinstance(s, ir.PersistToWorkspace)]
        # A parallel job's nodes each upload their own tarball (`-nodeI`, 0-based).
        shards = "-node*" if job.parallelism > 1 else ""
        paths = [f"{WS_DIR}/{self.id}-{s.layer}{shards}.tar" for s in persists]
        paths += self.artifact_paths
        if paths or self.junit:
            artifacts: dict[str, Any] = {}
            if paths:
                artifacts["paths"] = paths
            if self.junit:
                artifacts["reports"] = {"junit": self.junit}
            artifacts["when"] = "always" if self.artifacts_always else "on_success"
            out["artifacts"] = artifacts
        return out

    def executor(self, ex: ir.Executor, placement: Placement) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if placement.os == WINDOWS:
            self.ctx.diags.warning(
                "unsupported-executor",
                "the Windows executor: GitLab's Windows runners run PowerShell, and this job's"
                " steps are driven by bash; the job is tagged for a Windows runner but needs"
                " its script rewritten",
                ex.span,
            )
        if placement.gitlab_image and ex.kind is not ir.ExecutorKind.DOCKER:
            out["image"] = placement.gitlab_image
        if ex.kind is ir.ExecutorKind.DOCKER and ex.images:
            out.update(self.docker(ex))
        if placement.gitlab_tags:
            out["tags"] = list(placement.gitlab_tags)
        return out

    def docker(self, ex: ir.Executor) -> dict[str, Any]:
        primary = ex.images[0]
        # CircleCI ignores the image's ENTRYPOINT; GitLab runs it unless told otherwise. A
        # configured entrypoint is started in the background by the script (see build()).
        image: dict[str, Any] = {"name": primary.image, "entrypoint": [""]}
        if primary.user:
            image["docker"] = {"user": primary.user}
        out: dict[str, Any] = {"image": image}
        for img in ex.images:
            if img.has_auth:
                self.ctx.diags.note(
                    "registry-auth",
                    f"`{img.image}` needs registry credentials (`auth`/`aws_auth`), which"
                    " .gitlab-ci.yml cannot hold: set the DOCKER_AUTH_CONFIG CI/CD variable"
                    " (a Docker config.json with that registry's auth)",
                    img.span,
                )
        svcs = services(ex)
        if svcs:
            out["services"] = [self.service(s) for s in svcs]
        return out

    @staticmethod
    def service(s: Service) -> dict[str, Any]:
        img = s.image
        svc: dict[str, Any] = {"name": img.image, "alias": s.host}
        if img.entrypoint:
            svc["entrypoint"] = list(img.entrypoint)
        if img.command:
            svc["command"] = list(img.command)
        if img.environment:
            svc["variables"] = {k: _escape_dollars(v) for k, v in img.environment}
        if img.user:
            svc["docker"] = {"user": img.user}
        return svc

    def remote_docker(self, job: ir.Job, out: dict[str, Any]) -> None:
        """`setup_remote_docker`: a Docker-in-Docker service the job reaches over TLS."""
        step = next((s for s in job.steps if isinstance(s, ir.SetupRemoteDocker)), None)
        if step is None:
            return
        remote_docker_notes(self.ctx, step, f"the job uses a `{dind_image(step)}` service",
                            versioned=True)
        out.setdefault("services", []).append({"name": dind_image(step), "alias": "docker"})
        out.setdefault("variables", {}).update({
            "DOCKER_HOST": "tcp://docker:2376",
            "DOCKER_TLS_CERTDIR": "/certs",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": "/certs/client",
        })
        self.ctx.diags.note(
            "remote-docker-runner",
            f"job {self.node.name!r} runs Docker in a `docker:dind` service: its runner must"
            " use the Docker executor with `privileged = true` and share `/certs/client`"
            " (`volumes = [\"/certs/client\"]` in the runner's config.toml)",
            step.span)

    def job_environment(self, job: ir.Job) -> str:
        lines = [
            "# CircleCI job environment",
            f"export CIRCLE_JOB={sh_quote(self.node.name)}",
            'export CIRCLE_WORKFLOW_ID="' + workflow_id_prefix(self.wf.name)
            + '$(printf %012x "${CI_PIPELINE_ID:-0}")"',
            f"cicompile_dir={shell_dir(job.working_directory)}",
            'export CIRCLE_WORKING_DIRECTORY="$cicompile_dir"',
        ]
        if job.parallelism > 1:
            # `parallel: N` numbers the jobs 1..N; CircleCI's nodes are 0..N-1.
            lines.append(
                'export CIRCLE_NODE_INDEX="$((CI_NODE_INDEX - 1))"'
                ' CIRCLE_NODE_TOTAL="$CI_NODE_TOTAL"'
            )
        env: dict[str, str] = {}
        if job.executor.kind is ir.ExecutorKind.DOCKER and job.executor.images:
            env.update(job.executor.images[0].environment)
        env.update(job.environment)
        lines += [f"export {k}={sh_quote(v)}" for k, v in env.items()]
        return "\n".join(lines) + "\n"

    # ---- steps -----------------------------------------------------------------------

    def call(
        self,
        name: str | None,
        text: str,
        directory: str | None = None,
        *,
        when: ir.StepWhen = ir.StepWhen.ON_SUCCESS,
        shell: str | None = None,
        background: bool = False,
        env: ir.Env = (),
        watch: tuple[int, int, int] = (0, 0, 0),
    ) -> str:
        """One `script` entry: the driver call with the step text in a quoted heredoc.
        `watch`: the no-output timeout, reruns and rerun delay (0: none)."""
        args = ["cicompile_step"]
        if name is not None and not _names_first_line(name, text):
            args += ["--name", sh_quote(_one_line(name))]
        if directory is not None:
            args += ["--dir", directory]
        if when is not ir.StepWhen.ON_SUCCESS:
            args += ["--when", str(when)]
        if shell:
            args += ["--shell", sh_quote(shell)]
        if background:
            args.append("--background")
        for flag, value in zip(("--timeout", "--reruns", "--delay"), watch, strict=True):
            if value:
                args += [flag, str(value)]
        args += [sh_quote(f"{k}={v}") for k, v in env]
        body = text if text.endswith("\n") else text + "\n"
        delim = heredoc_delimiter(body)
        return f"{' '.join(args)} <<'{delim}'\n{body}{delim}\n"

    def step(self, job: ir.Job, step: ir.Step) -> str:
        wd = job.working_directory
        match step:
            case ir.Run():
                watch = (0, 0, 0) if step.background else (
                    step_timeout(step), step.max_auto_reruns, step.auto_rerun_delay)
                return self.call(
                    step.name,
                    step.command,
                    shell_dir(join_circleci_path(wd, step.working_directory))
                    if step.working_directory
                    else None,
                    when=step.when,
                    shell=step.shell or job.shell,
                    background=step.background,
                    env=step.environment,
                    watch=watch,
                )
            case ir.Checkout():
                return self.call("Checkout code", self.checkout(wd, step))
            case ir.PersistToWorkspace():
                root = join_circleci_path(wd, step.root)
                shard = "-node$CIRCLE_NODE_INDEX" if job.parallelism > 1 else ""
                tar = f'"$CI_PROJECT_DIR/{WS_DIR}/{self.id}-{step.layer}{shard}.tar"'
                exclude = f" --exclude=./{STATE_DIR}" if _project_relative(root) == "." else ""
                text = (
                    f'mkdir -p "$CI_PROJECT_DIR/{WS_DIR}"\n'
                    f"cd {shell_dir(root)}\n"
                    f"tar -cpf {tar}{exclude} "
                    + " ".join(glob_quote(p) for p in step.paths)
                )
                return self.call(f"Persisting to Workspace ({step.root})", text)
            case ir.AttachWorkspace():
                at = shell_dir(join_circleci_path(wd, step.at))
                layers = [name for x in self.node.layers for name in self.layer_names(x)]
                text = f"mkdir -p {at}\n"
                if layers:
                    text += (
                        "# The upstream layers in order; a filtered-out job left none.\n"
                        f"for layer in {' '.join(layers)}; do\n"
                        f'  tar="$CI_PROJECT_DIR/{WS_DIR}/$layer.tar"\n'
                        f'  if [ -f "$tar" ]; then tar -xpf "$tar" -C {at}; fi\n'
                        "done\n"
                    )
                return self.call(f"Attaching Workspace at {step.at}", text)
            case ir.StoreArtifacts():
                self.artifacts_always = True
                dest = f"{ARTIFACTS_DIR}/{self.id}/{_artifact_name(step.destination or step.path)}"
                self.add_artifact_path(f"{ARTIFACTS_DIR}/{self.id}/")
                text = self.copy_in(join_circleci_path(wd, step.path), dest)
                return self.call(f"Uploading artifacts ({step.path})", text,
                                 when=ir.StepWhen.ALWAYS)
            case ir.StoreTestResults():
                self.artifacts_always = True
                index = sum(isinstance(s, ir.StoreTestResults)
                            for s in job.steps[: step_index(job.steps, step)])
                base = f"{TEST_RESULTS_DIR}/{self.id}/{index}"
                src = join_circleci_path(wd, step.path)
                if step.path.lower().endswith(".xml"):
                    dest = f"{base}/{_artifact_name(posixpath.basename(step.path))}"
                    self.junit.append(dest)
                else:
                    dest = base
                self.add_artifact_path(f"{TEST_RESULTS_DIR}/{self.id}/")
                return self.call(f"Uploading test results ({step.path})",
                                 self.copy_in(src, dest), when=ir.StepWhen.ALWAYS)
            case ir.SaveCache() | ir.RestoreCache():
                return self.cache(job, step)
            case ir.SetupRemoteDocker():
                # The dind service (build) may still be starting: wait for it a little.
                return self.call("Setup a remote Docker engine", docker_check_script(30))
            case ir.AddSshKeys():
                pairs = ssh_key_secrets(step)
                self.ctx.diags.note(
                    "ssh-key-secrets",
                    "add_ssh_keys: create the CI/CD variable(s) "
                    + ", ".join(f"`{name}`" for _, name in pairs)
                    + " of type File, each holding a private key"
                    + (f" ({', '.join(step.fingerprints)})" if step.fingerprints else ""),
                    step.span)
                script = ssh_agent_script([(f, name, f"the CI/CD variable {name}")
                                           for f, name in pairs])
                # Later steps find the agent through the job shell's environment.
                return ('export SSH_AUTH_SOCK="${TMPDIR:-/tmp}/cicompile-ssh-agent-$$.sock"\n'
                        + self.call("Add SSH keys", script))
            case ir.Unsupported():
                msg = sh_quote("cicompile: " + step.reason)
                return self.call(step.name, f"echo {msg} >&2\nexit 1")
        raise AssertionError(step)

    def cache(self, job: ir.Job, step: ir.SaveCache | ir.RestoreCache) -> str:
        """A cache step over the store in CACHE_DIR (shared bash: cachekey.py); the paths
        are kept relative to the clone or HOME, which differ between jobs."""
        paths = [
            shell_dir(join_circleci_path(job.working_directory, p))
            for p in (step.paths if isinstance(step, ir.SaveCache) else ())
        ]
        roots = ['"project=$CI_PROJECT_DIR"', '"home=$HOME"']
        lines = cache_step_lines(step, f'"$CI_PROJECT_DIR/{CACHE_DIR}"', roots, paths)
        text = '. "$CICOMPILE_CACHE_LIB"\n' + "\n".join(lines) + "\n"
        if isinstance(step, ir.SaveCache):
            return self.call(step.name or "Saving Cache", text, when=step.when)
        return self.call(step.name or "Restoring Cache", text)

    def add_artifact_path(self, path: str) -> None:
        if path not in self.artifact_paths:
            self.artifact_paths.append(path)

    @staticmethod
    def copy_in(src: str, dest: str) -> str:
        """Copy a file or directory under $CI_PROJECT_DIR for GitLab's artifacts upload."""
        s = shell_dir(src)
        d = f'"$CI_PROJECT_DIR/{dest}"'
        return (
            f"if [ -d {s} ]; then\n"
            f"  mkdir -p {d} && cp -a {s}/. {d}/\n"
            f"elif [ -e {s} ]; then\n"
            f'  mkdir -p "$(dirname {d})" && cp -a {s} {d}\n'
            "else\n"
            f"  echo {sh_quote('cicompile: no such file or directory: ' + src)} >&2\n"
            "fi\n"
        )

    def checkout(self, wd: str, step: ir.Checkout) -> str:
        dest = join_circleci_path(wd, step.path)
        rel = _project_relative(dest)
        if rel == ".":
            return 'echo "cicompile: GitLab already cloned the repository into $CI_PROJECT_DIR"\n'
        excludes = f"--exclude=./{STATE_DIR}"
        if rel is not None:
            excludes += " " + sh_quote(f"--exclude=./{rel}")
        target = shell_dir(dest)
        return (
            "# GitLab cloned the repository into $CI_PROJECT_DIR; copy it where CircleCI would.\n"
            f"mkdir -p {target}\n"
            f'tar -C "$CI_PROJECT_DIR" {excludes} -cf - . | tar -C {target} -xpf -\n'
        )


def _has_caches(job: ir.Job) -> bool:
    return any(isinstance(s, ir.SaveCache | ir.RestoreCache) for s in job.steps)


def _gitlab_cache(job: ir.Job) -> list[dict[str, Any]] | None:
    """The GitLab cache entry that brings the store in and, for saving jobs, takes it back.

    Uploaded even when the job fails (`save_cache` may have `when: always`/`on_fail`); jobs
    that only restore never upload (`policy: pull`).
    """
    if not _has_caches(job):
        return None
    saves = any(isinstance(s, ir.SaveCache) for s in job.steps)
    return [{
        "key": GITLAB_CACHE_KEY,
        "paths": [f"{CACHE_DIR}/"],
        "policy": "pull-push" if saves else "pull",
        "when": "always",
    }]


def _cache_library(pipeline: ir.Pipeline, ctx: EmitContext) -> list[str]:
    """The `before_script` entry of the jobs with cache steps that writes the cache store
    functions to a file those steps source (steps run in fresh shells, which inherit no
    functions); none when no job has cache steps."""
    steps = [s for j in pipeline.jobs for s in j.steps
             if isinstance(s, ir.SaveCache | ir.RestoreCache)]
    if not steps:
        return []
    ctx.diags.warning(
        "approximated-cache",
        "CircleCI caches are kept as tarballs in one GitLab cache (key"
        f" `{GITLAB_CACHE_KEY}`); save/restore follow CircleCI's rules (immutable keys,"
        " newest prefix match), but GitLab uploads that cache only at the end of a job, so a"
        " job restores only what jobs finished before it saved, concurrent jobs can lose each"
        " other's new entries, and protected and unprotected branches get separate caches",
        steps[0].span,
    )
    lib = CHECKSUM_FUNCTION + "\n" + cache_store_functions() + "\n"
    delim = heredoc_delimiter(lib)
    return [
        "# CircleCI cache store functions, sourced by the save_cache / restore_cache steps\n"
        "CICOMPILE_CACHE_LIB=$(mktemp)\n"
        "export CICOMPILE_CACHE_LIB\n"
        f"cat > \"$CICOMPILE_CACHE_LIB\" <<'{delim}'\n{lib}{delim}\n"
    ]


def _schedule_notes(wf: ir.Workflow, ctx: EmitContext) -> None:
    """GitLab schedules live in the project settings, not in YAML: say which to create."""
    for s in wf.schedules:
        ctx.diags.note(
            "gitlab-schedule",
            f"workflow {wf.name!r} runs on a schedule: create a GitLab pipeline schedule"
            f" (Build > Pipeline schedules) with cron `{s.cron}` (UTC) for each branch"
            f" {describe_branches(s.branches)}",
            s.span,
        )


class GitLabTarget(Target):
    name = "gitlab"

    def emit(self, pipeline: ir.Pipeline, ctx: EmitContext) -> dict[str, str]:
        names = gitlab_job_names(pipeline)
        ids = unique_ids(list(names.values()))
        driver = anchored("cicompile-step-driver", watchdog_functions() + STEP_DRIVER)
        doc: dict[str, Any] = {"default": {"before_script": [driver]}}
        library = _cache_library(pipeline, ctx)
        if library:
            doc[CACHE_TEMPLATE] = {"before_script": [driver, *library]}
        for wf in pipeline.workflows:
            _schedule_notes(wf, ctx)
            for n in wf.nodes:
                em = _JobEmitter(pipeline, wf, n, names, ids, ctx)
                if n.kind is ir.NodeKind.APPROVAL:
                    doc[em.name] = em.approval()
                else:
                    assert n.job is not None
                    doc[em.name] = em.build(pipeline.job(n.job))
        header = GENERATED_NOTICE.format(source=pipeline.source.rsplit("/", 1)[-1])
        header += "\nCircleCI workflows: " + ", ".join(wf.name for wf in pipeline.workflows)
        return {".gitlab-ci.yml": dump_yaml(doc, header=header)}
