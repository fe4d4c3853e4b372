"""GitHub Actions target: one workflow file per CircleCI workflow (semantics §9.1).

Filters: GitHub expressions have no regex and compare strings case-insensitively, so exact
CircleCI filters are evaluated by a first job, `circleci-gate`, in bash (the same rendering the
make/shell targets use) and published as outputs; every job's `if:` reads them. When every job
simply runs on every branch push (no filters anywhere), there is no gate.

Workspaces: each `persist_to_workspace` becomes a tarball (keeps modes and hidden files, which
artifacts alone lose) uploaded as its own artifact; an attaching job downloads exactly its
ancestors' tarballs and unpacks them in topological order.

Every string taken from the config passes through `literal()`, so a `${{` in the source never
reaches GitHub's expression evaluator.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from cicompile import ir
from cicompile.conditions import (
    FALSE,
    TRUE,
    Cond,
    IsKind,
    RefKind,
    restrict,
    uses_schedule_name,
    uses_trigger,
)
from cicompile.targets.approvals import github_existence, warn_approval_waits
from cicompile.targets.base import (
    GENERATED_NOTICE,
    EmitContext,
    Target,
    heredoc_delimiter,
    join_circleci_path,
    on_scheduled_pipelines,
    path_quote,
    sh_quote,
    step_index,
    unique_ids,
)
from cicompile.targets.cachekey import CHECKSUM_FUNCTION, cache_key_lines, needs_checksum
from cicompile.targets.hoststeps import (
    DOCKER_SOCKET,
    docker_check_script,
    remote_docker_notes,
    ssh_agent_script,
    ssh_key_secrets,
)
from cicompile.targets.refmatch import (
    BASH_REF_FUNCTIONS,
    BASH_SCHEDULE_FUNCTIONS,
    GATE_TRIGGER_SOURCE,
    bash_condition,
)
from cicompile.targets.runners import (
    LINUX,
    MACOS,
    WINDOWS,
    Placement,
    github_shell,
    job_placement,
)
from cicompile.targets.services import (
    Service,
    entrypoint_script,
    image_repo,
    report_services,
    rewrite_localhost,
    secret_reference,
    services,
)
from cicompile.targets.shim import install_script, may_halt, needs_shim
from cicompile.targets.watchdog import (
    WATCH_COMMAND,
    install_watch_command,
    needs_watch_command,
    step_timeout,
)
from cicompile.targets.yamldump import anchored, dump_yaml

CHECKOUT = "actions/checkout@v5"
UPLOAD = "actions/upload-artifact@v7"
DOWNLOAD = "actions/download-artifact@v8"
CACHE_RESTORE = "actions/cache/restore@v5"
CACHE_SAVE = "actions/cache/save@v5"
GATE = "circleci-gate"
PROJECT = "~/project"
WS_DIR = "cicompile-workspace"
NODE_AXIS = "circleci_node_index"  # the matrix axis of a parallel job (0-based, as CircleCI)
SHIM_DIR = "$RUNNER_TEMP/cicompile-bin"
_NO_WATCH = {"pwsh", "powershell", "cmd"}  # GitHub shells a custom `{0}` shell cannot wrap
# Registries of CircleCI's convenience images, which run as the user `circleci`.
CONVENIENCE_IMAGES = ("cimg", "circleci")
HALTED = "env.CICOMPILE_HALTED != 'true'"  # set in $GITHUB_ENV by `circleci-agent step halt`

# CircleCI's built-in variables that are the same for every job of a run.
WORKFLOW_ENV = {
    "CI": "true",
    "CIRCLECI": "true",
    "CIRCLE_BRANCH": "${{ github.ref_type == 'branch' && github.ref_name || '' }}",
    "CIRCLE_TAG": "${{ github.ref_type == 'tag' && github.ref_name || '' }}",
    "CIRCLE_SHA1": "${{ github.sha }}",
    # One run of a workflow file is one CircleCI workflow; a rerun is a new one (semantics §7).
    "CIRCLE_WORKFLOW_ID": "${{ github.run_id }}-${{ github.run_attempt }}",
    "CIRCLE_BUILD_NUM": "${{ github.run_number }}",
    # The run's page: GitHub has no per-job URL in its contexts (semantics §7).
    "CIRCLE_BUILD_URL": "${{ github.server_url }}/${{ github.repository }}/actions/runs/"
                        "${{ github.run_id }}",
    "CIRCLE_PIPELINE_ID": "${{ github.run_id }}",
    # `<< pipeline.number >>` in commands (CircleCI itself has no such variable).
    "CIRCLE_PIPELINE_NUMBER": "${{ github.run_number }}",
    "CIRCLE_PROJECT_USERNAME": "${{ github.repository_owner }}",
    "CIRCLE_PROJECT_REPONAME": "${{ github.event.repository.name }}",
    "CIRCLE_REPOSITORY_URL": "${{ github.server_url }}/${{ github.repository }}",
    "CIRCLE_NODE_INDEX": "0",
    "CIRCLE_NODE_TOTAL": "1",
}

# `needs.<id>.result` for CircleCI's job statuses (semantics §9.1); `unauthorized` has none.
RESULTS = {
    ir.JobStatus.SUCCESS: "success",
    ir.JobStatus.FAILED: "failure",
    ir.JobStatus.CANCELED: "cancelled",
    ir.JobStatus.NOT_RUN: "skipped",
}


# CircleCI's checkout directory spelt out in a command.
_PROJECT_PATH = re.compile(r"~/project\b|\$HOME/project\b")


def literal(s: str) -> str:
    """Neutralise GitHub expression syntax in text copied from the config."""
    return s.replace("${{", "${{ '${{' }}")


def _github_dir(path: str) -> tuple[str | None, str | None]:
    """A CircleCI directory as (GitHub `working-directory`, or a bash `cd` target).

    `~/project` is the checkout directory, which on GitHub is `$GITHUB_WORKSPACE` (the default
    working directory). Absolute paths go to `working-directory`; other `~` paths need bash's
    tilde expansion, so they become a `cd` at the top of the script.
    """
    if path in (PROJECT, PROJECT + "/"):
        return None, None
    if path.startswith(PROJECT + "/"):
        return path[len(PROJECT) + 1 :].rstrip("/"), None
    if path.startswith("/"):
        return path, None
    if path.startswith("~"):
        return None, path
    return None, "~/" + path  # CircleCI resolves a relative working_directory from $HOME


def _env_dir(path: str) -> str:
    """CIRCLE_WORKING_DIRECTORY: where the job's steps run (semantics §7). `~/project` is the
    workspace, which the runner also rewrites to its container path in container jobs; other
    paths as written (CircleCI's own value may hold a literal `~`)."""
    if path in (PROJECT, PROJECT + "/"):
        return "${{ github.workspace }}"
    if path.startswith(PROJECT + "/"):
        return "${{ github.workspace }}/" + literal(path[len(PROJECT) + 1 :].rstrip("/"))
    return literal(path)


def _shell_path(path: str) -> str:
    """A CircleCI path as a bash word on GitHub (`~/project` is `$GITHUB_WORKSPACE`)."""
    if path in (PROJECT, PROJECT + "/"):
        return '"$GITHUB_WORKSPACE"'
    if path.startswith(PROJECT + "/"):
        return '"$GITHUB_WORKSPACE"/' + path_quote(literal(path[len(PROJECT) + 1 :]))
    if not path.startswith(("/", "~")):
        path = "~/" + path
    return path_quote(literal(path))


def _cache_path(wd: str, path: str) -> str:
    """A cache path for actions/cache (relative = under the workspace; `~` is expanded)."""
    full = join_circleci_path(wd, path)
    if full in (PROJECT, PROJECT + "/"):
        return "."
    if full.startswith(PROJECT + "/"):
        return literal(full[len(PROJECT) + 1 :])
    if not full.startswith(("/", "~")):
        full = "~/" + full
    return literal(full)


class _JobEmitter:
    def __init__(
        self,
        pipeline: ir.Pipeline,
        wf: ir.Workflow,
        node: ir.WorkflowNode,
        ids: dict[str, str],
        gated: bool,
        ctx: EmitContext,
    ) -> None:
        self.pipeline = pipeline
        self.wf = wf
        self.node = node
        self.ids = ids
        self.gated = gated
        self.ctx = ctx
        self.id = ids[node.name]
        # Set by build() for a build job: where it runs (targets/runners.py).
        self.placement = Placement(LINUX, ("ubuntu-latest",), False)

    # ---- job header ------------------------------------------------------------------

    def result_test(self, d: str) -> str | None:
        """`needs.D.result` in the statuses this node accepts from D; None for any result."""
        allowed = self.node.allowed(d)
        results = [RESULTS[s] for s in ir.JobStatus if s in allowed and s in RESULTS]
        if len(results) == len(RESULTS):
            return None
        did = self.ids[d]
        # Only `unauthorized`, which GitHub never reports (warned by the front end).
        tests = [f"needs.{did}.result == '{r}'" for r in results] or [
            f"needs.{did}.result == 'unauthorized'"]
        return tests[0] if len(tests) == 1 else "(" + " || ".join(tests) + ")"

    def condition(self) -> str | None:
        if not self.gated and not self.node.flexible:
            return None
        # `always()` lets a job that accepts `canceled` run after a cancellation, which
        # `!cancelled()` (the default here: CircleCI runs nothing after one) would not.
        accepts_cancel = any(ir.JobStatus.CANCELED in self.node.allowed(d)
                             for d in self.node.needs)
        parts = ["always()" if accepts_cancel else "!cancelled()"]
        gate = f"needs.{GATE}.outputs"
        if self.gated:
            parts.append(f"{gate}.{self.id} == 'true'")
        for d in self.node.needs:
            test = self.result_test(d)
            if test is None:
                continue
            if self.gated:
                # A requirement the gate filtered out is ignored (semantics §5.3).
                parts.append(f"({gate}.{self.ids[d]} != 'true' || {test})")
            else:
                parts.append(test)
        return "${{ " + " && ".join(parts) + " }}"

    def header(self) -> dict[str, Any]:
        job: dict[str, Any] = {"name": literal(self.node.name)}
        needs = ([GATE] if self.gated else []) + [self.ids[d] for d in self.node.needs]
        if needs:
            job["needs"] = needs
        cond = self.condition()
        if cond is None and not self.gated and not self.node.needs:
            # Ungated, every job exists on branches only, but `workflow_dispatch` can start
            # the workflow on a tag: the roots test the ref, their dependents follow them.
            cond = "${{ github.ref_type == 'branch' }}"
        if cond:
            job["if"] = cond
        if self.node.serial_group is not None:
            # A pipeline value in the name is GitHub's value of it (`github` context only).
            group = ir.RUNTIME_REF.sub(lambda m: WORKFLOW_ENV.get(m.group(1), m.group(0)),
                                       literal(self.node.serial_group))
            job["concurrency"] = {"group": group, "cancel-in-progress": False}
            self.ctx.diags.warning(
                "approximated-serial-group",
                f"serial-group {self.node.serial_group!r} becomes a GitHub `concurrency`"
                " group: per repository (CircleCI: per organization), and GitHub keeps only"
                " one pending job per group, cancelling older pending ones (CircleCI queues"
                " them all)",
                self.node.span,
            )
        return job

    def approval(self) -> dict[str, Any]:
        job = self.header()
        job["runs-on"] = "ubuntu-latest"
        job["environment"] = literal(self.node.name)
        job["steps"] = [
            {
                "name": "Approval",
                "run": f"echo {sh_quote('Approved: ' + literal(self.node.name))}",
            }
        ]
        self.ctx.diags.note(
            "approval-environment",
            f"approval {self.node.name!r} becomes the GitHub environment {self.node.name!r}:"
            " create it with required reviewers, or the job runs without waiting",
            self.node.span,
        )
        return job

    # ---- build jobs ------------------------------------------------------------------

    def build(self, job: ir.Job) -> dict[str, Any]:
        out = self.header()
        ex = job.executor
        self.placement = job_placement(self.ctx, "github", job, self.node.name)
        runs_on = list(self.placement.runs_on)
        out["runs-on"] = runs_on[0] if len(runs_on) == 1 else runs_on
        if self.placement.os == MACOS and not job.shell:
            # CircleCI's macOS shell is a login bash (semantics §2.6).
            out["defaults"] = {"run": {"shell": "bash --login -eo pipefail {0}"}}
        if ex.kind is ir.ExecutorKind.DOCKER and ex.images:
            svcs = services(ex)
            if self.placement.container:
                job, rewrites = rewrite_localhost(job)
                report_services(self.ctx.diags, job, svcs, rewrites, "GitHub")
                out["container"] = self.image(job.executor.images[0])
                if any(isinstance(s, ir.SetupRemoteDocker) for s in job.steps):
                    # The runner mounts no Docker socket into a job container: add the host's.
                    out["container"]["volumes"] = [f"{DOCKER_SOCKET}:{DOCKER_SOCKET}"]
            else:
                # Steps run on the VM: the primary image's environment is the job's.
                job = dataclasses.replace(
                    job, environment=ex.images[0].environment + job.environment)
                report_services(self.ctx.diags, job, svcs, [], "GitHub", published=True)
                self.ctx.diags.warning(
                    "docker-on-vm",
                    f"the runner map runs job {job.name!r} on the runner VM: steps do not run in"
                    f" `{ex.images[0].image}`, and services publish their known ports on"
                    " `localhost`",
                    ex.span,
                )
            if svcs:
                out["services"] = {
                    s.host: self.service(s, publish=not self.placement.container) for s in svcs
                }
        if job.parallelism > 1:
            # One leg per CircleCI node; a failing node must not cancel the others.
            out["strategy"] = {
                "fail-fast": False,
                "matrix": {NODE_AXIS: list(range(job.parallelism))},
            }
        out["env"] = self.env(job)
        # A job without steps (`type: no-op`) still needs one: GitHub rejects `steps: []`.
        out["steps"] = self.steps(job) or [{"name": "No steps", "run": "true"}]
        return out

    def credentials(self, img: ir.DockerImage) -> dict[str, str] | None:
        """`auth` → `credentials`, `$VAR` values from the secret of that name."""
        if img.has_auth and not img.auth:
            self.ctx.diags.warning(
                "registry-auth",
                f"`aws_auth` of `{img.image}`: GitHub pulls job and service images before any"
                " step, so it cannot log in to ECR first; use `credentials` with a token"
                " (aws ecr get-login-password) stored as a secret, or a public image",
                img.span,
            )
            return None
        out: dict[str, str] = {}
        secrets: list[str] = []
        for key, value in img.auth:
            if key in ("username", "password"):
                out[key], secret = secret_reference(value)
                if secret is None:
                    out[key] = literal(value)
                else:
                    secrets.append(secret)
        if secrets:
            self.ctx.diags.note(
                "registry-auth",
                f"`{img.image}` is pulled with `credentials` from the secrets"
                f" {', '.join(secrets)}: create them",
                img.span,
            )
        return out or None

    def image(self, img: ir.DockerImage) -> dict[str, Any]:
        """The primary image as the job `container:`."""
        container: dict[str, Any] = {"image": literal(img.image)}
        creds = self.credentials(img)
        if creds:
            container["credentials"] = creds
        if img.environment:
            container["env"] = {k: literal(v) for k, v in img.environment}
        user = img.user
        if user is None and image_repo(img.image).split("/", 1)[0] in CONVENIENCE_IMAGES:
            # CircleCI's images run as `circleci`; a job container that is not root cannot
            # write the runner's workspace and file commands (actions/checkout#956).
            user = "root"
            self.ctx.diags.note(
                "container-user",
                f"`{img.image}` runs as `circleci`; on GitHub the job container runs as root"
                " (`--user root`), which GitHub needs to write the workspace",
                img.span,
            )
        elif user is not None and user not in ("root", "0", "0:0"):
            self.ctx.diags.warning(
                "container-user",
                f"`user: {user}`: a GitHub job container that does not run as root cannot write"
                " the workspace or the runner's files (actions/checkout fails with EACCES);"
                " kept as written",
                img.span,
            )
        if user:
            container["options"] = f"--user {sh_quote(literal(user))}"
        return container

    def service(self, svc: Service, *, publish: bool) -> dict[str, Any]:
        img = svc.image
        out: dict[str, Any] = {"image": literal(img.image)}
        creds = self.credentials(img)
        if creds:
            out["credentials"] = creds
        if img.environment:
            out["env"] = {k: literal(v) for k, v in img.environment}
        entrypoint = list(img.entrypoint)
        # GitHub's `entrypoint` is one executable; its other words go before the command.
        command = entrypoint[1:] + list(img.command)
        if entrypoint:
            out["entrypoint"] = literal(entrypoint[0])
        if command:
            out["command"] = literal(shlex.join(command))
        if img.user:
            out["options"] = f"--user {sh_quote(literal(img.user))}"
        if publish and svc.ports:
            out["ports"] = [f"{p}:{p}" for p in svc.ports]
        return out

    def executor_steps(self, job: ir.Job) -> list[dict[str, Any]]:
        """Steps that set the executor up: Xcode selection, the primary image's entrypoint."""
        steps: list[dict[str, Any]] = []
        xcode = self.placement.xcode
        if xcode:
            app = f"/Applications/Xcode_{xcode}.app"
            missing = (f"::error::Xcode {xcode} is not installed on this runner image; map the"
                       " job to another runner (--runner-map)")
            steps.append({
                "name": f"Select Xcode {literal(xcode)}",
                "run": f"if [ ! -d {sh_quote(app)} ]; then\n  echo {sh_quote(missing)}\n"
                       "  exit 1\nfi\n"
                       f"echo {sh_quote(f'DEVELOPER_DIR={app}/Contents/Developer')}"
                       ' >> "$GITHUB_ENV"\n',
            })
        ex = job.executor
        if self.placement.container and ex.kind is ir.ExecutorKind.DOCKER and ex.images:
            script = entrypoint_script(ex.images[0], "/tmp/cicompile-entrypoint.log")
            if script:
                self.ctx.diags.warning(
                    "primary-entrypoint",
                    "GitHub starts the job container with its own command: the primary image's"
                    " `entrypoint`/`command` is started in the background by the first step",
                    ex.images[0].span,
                )
                steps.append({"name": "Start the primary image's entrypoint",
                              "run": literal(script)})
        return steps

    def shard_suffix(self, job: ir.Job) -> str:
        """What makes an artifact name unique per node of a parallel job (else nothing)."""
        return f"-node${{{{ matrix.{NODE_AXIS} }}}}" if job.parallelism > 1 else ""

    def layer_names(self, layer: ir.WorkspaceLayer) -> list[str]:
        """A layer's artifact names: one, or one per node of a parallel job, in node order."""
        base = f"{WS_DIR}-{self.ids[layer.node]}-{layer.index}"
        job = self.wf.node(layer.node).job
        shards = self.pipeline.job(job).parallelism if job is not None else 1
        return [base] if shards <= 1 else [f"{base}-node{i}" for i in range(shards)]

    def env(self, job: ir.Job) -> dict[str, str]:
        env = {
            "CIRCLE_JOB": literal(self.node.name),
            "CIRCLE_WORKING_DIRECTORY": _env_dir(job.working_directory),
        }
        if job.parallelism > 1:
            # The workflow-level defaults are 0 and 1; a parallel job's legs override them.
            env["CIRCLE_NODE_INDEX"] = f"${{{{ matrix.{NODE_AXIS} }}}}"
            env["CIRCLE_NODE_TOTAL"] = str(job.parallelism)
        for k, v in job.environment:
            env[k] = literal(v)
        if self.node.context:
            from cicompile.targets.report import IMAGE_VARIABLES, undefined_variables  # cold start

            # CircleCI injects a context's variables; GitHub has secrets. The config does not
            # list a context's variables, so wire what the commands read and nothing defines.
            wired = sorted(v for v in undefined_variables(job) if v not in IMAGE_VARIABLES)
            for name in wired:
                env.setdefault(name, f"${{{{ secrets.{name} }}}}")
            if wired:
                self.ctx.diags.note(
                    "context-secrets",
                    f"{self.node.name!r} uses context(s) {', '.join(self.node.context)}: its"
                    f" commands read {', '.join(wired)}, wired from GitHub secrets of the same"
                    " names (create them)",
                    self.node.span,
                )
        return env

    def dir_keys(self, path: str) -> tuple[dict[str, Any], str]:
        """(`working-directory` key if any, `cd` prefix line if any) for a CircleCI path."""
        wd, cd = _github_dir(path)
        keys: dict[str, Any] = {"working-directory": literal(wd)} if wd else {}
        prefix = f"cd {path_quote(literal(cd))}\n" if cd else ""
        return keys, prefix

    def steps(self, job: ir.Job) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.executor_steps(job)
        dirs = [job.working_directory] + [
            join_circleci_path(job.working_directory, s.working_directory)
            for s in job.steps
            if isinstance(s, ir.Run) and s.working_directory
        ]
        to_make = [_shell_path(d) for d in dict.fromkeys(dirs) if _github_dir(d) != (None, None)]
        if to_make:
            run = "mkdir -p " + " ".join(to_make)
            steps.append({"name": "Create CircleCI working directories", "run": run})
        literal_use = any(  # the `in` test first: the regex tries every position
            isinstance(s, ir.Run) and "/project" in s.command and _PROJECT_PATH.search(s.command)
            for s in job.steps
        )
        if literal_use and job.working_directory.startswith(PROJECT):
            # Scripts that spell out CircleCI's path keep working: ~/project is the workspace.
            steps.append({
                "name": "Link ~/project to the workspace",
                "run": 'if [ ! -e ~/project ]; then mkdir -p ~ && ln -s "$GITHUB_WORKSPACE"'
                       " ~/project; fi",
            })
        if needs_shim(job):
            steps.append(_path_install_step("circleci-shim", "Install the circleci CLI shim",
                                            install_script))
        if any(isinstance(s, ir.Run) and self.watched(job, s, warn=False) for s in job.steps):
            steps.append(_path_install_step(
                "cicompile-watch",
                "Install the step watchdog (no_output_timeout, max_auto_reruns)",
                install_watch_command))
        first = len(steps)
        for step in job.steps:
            steps.extend(self.step(job, step))
        if may_halt(job):
            for emitted in steps[first:]:
                _guard_halt(emitted)
        return steps

    def run_step(self, job: ir.Job, step: ir.Run) -> dict[str, Any]:
        path = join_circleci_path(job.working_directory, step.working_directory)
        keys, prefix = self.dir_keys(path)
        command = literal(step.command)
        if step.background:
            delim = heredoc_delimiter(command)
            command = (
                f'cicompile_bg="$(mktemp)"\ncat > "$cicompile_bg" <<\'{delim}\'\n'
                f"{command.rstrip(chr(10))}\n{delim}\n"
                'nohup bash -eo pipefail "$cicompile_bg" > "$cicompile_bg.log" 2>&1 &\n'
                'echo "started in the background; output in $cicompile_bg.log"\n'
            )
        out: dict[str, Any] = {"name": literal(step.name)}
        if step.when is ir.StepWhen.ALWAYS:
            out["if"] = "${{ !cancelled() }}"
        elif step.when is ir.StepWhen.ON_FAIL:
            out["if"] = "${{ failure() }}"
        out.update(keys)
        shell = step.shell or job.shell or self.placement.shell
        if shell:
            out["shell"] = literal(github_shell(shell, self.placement.os))
        if step.environment:
            out["env"] = {k: literal(v) for k, v in step.environment}
        out["run"] = prefix + command
        if self.watched(job, step):
            # The watchdog runs the step's own shell on the script file GitHub wrote ({0}).
            macos = job.executor.kind is ir.ExecutorKind.MACOS and not job.shell
            inner = out.get("shell") or (
                "bash --login -eo pipefail {0}" if macos
                else "bash --noprofile --norc -eo pipefail {0}")
            out["shell"] = (f"{WATCH_COMMAND} {step_timeout(step)} {step.max_auto_reruns}"
                            f" {step.auto_rerun_delay} {inner}")
        return out

    def watched(self, job: ir.Job, step: ir.Run, *, warn: bool = True) -> bool:
        """Whether the step runs under `cicompile-watch`: it sets `no_output_timeout` or
        `max_auto_reruns`, and its shell takes a script path (GitHub runs PowerShell and cmd
        with command lines of its own, and Windows has no POSIX sh)."""
        if not needs_watch_command(step):
            return False
        # The placement knows Windows jobs that are machine images, classes or inferred ones.
        windows = self.placement.os == WINDOWS
        if windows or (step.shell or job.shell or "").split(" ")[0] in _NO_WATCH:
            if not warn:
                return False
            self.ctx.diags.warning(
                "approximated-timeout",
                "`no_output_timeout` and `max_auto_reruns` are not enforced for PowerShell, cmd"
                " or Windows steps on GitHub; the step has only the job's overall timeout",
                step.span)
            return False
        return True

    def step(self, job: ir.Job, step: ir.Step) -> list[dict[str, Any]]:
        wd = job.working_directory
        match step:
            case ir.Run():
                return [self.run_step(job, step)]
            case ir.Checkout():
                dest = join_circleci_path(wd, step.path)
                gh_wd, cd = _github_dir(dest)
                if cd is None and (gh_wd is None or not gh_wd.startswith("/")):
                    co: dict[str, Any] = {"name": "Checkout code", "uses": CHECKOUT}
                    with_: dict[str, Any] = {"fetch-depth": 0, "persist-credentials": False}
                    if gh_wd:
                        with_["path"] = gh_wd
                    co["with"] = with_
                    return [co]
                target = _shell_path(dest)
                return [
                    {
                        "name": "Checkout code",
                        "uses": CHECKOUT,
                        "with": {"fetch-depth": 0, "persist-credentials": False},
                    },
                    {
                        "name": f"Copy the checkout to {literal(dest)}",
                        "run": f'mkdir -p {target}\ncp -a "$GITHUB_WORKSPACE/." {target}/',
                    },
                ]
            case ir.PersistToWorkspace():
                keys, prefix = self.dir_keys(wd)
                name = f"{WS_DIR}-{self.id}-{step.layer}{self.shard_suffix(job)}"
                paths = " ".join(path_quote(literal(p)) for p in step.paths)
                return [
                    {
                        "name": f"Persist to workspace ({literal(step.root)})",
                        **keys,
                        "run": prefix
                        + f'mkdir -p "$RUNNER_TEMP/{WS_DIR}"\n'
                        + f"cd {_shell_path(join_circleci_path(wd, step.root))}\n"
                        + f'tar -cpf "$RUNNER_TEMP/{WS_DIR}/{name}.tar" {paths}',
                    },
                    {
                        "name": "Upload workspace layer",
                        "uses": UPLOAD,
                        "with": {
                            "name": name,
                            "path": f"${{{{ runner.temp }}}}/{WS_DIR}/{name}.tar",
                            "if-no-files-found": "error",
                        },
                    },
                ]
            case ir.AttachWorkspace():
                return self.attach(job, step)
            case ir.StoreArtifacts() | ir.StoreTestResults():
                path = join_circleci_path(wd, step.path)
                gh_wd, cd = _github_dir(path)
                what = "artifacts" if isinstance(step, ir.StoreArtifacts) else "test-results"
                index = step_index(job.steps, step)
                return [
                    {
                        "name": f"Store {what} ({literal(step.path)})",
                        "if": "${{ !cancelled() }}",
                        "uses": UPLOAD,
                        "with": {
                            "name": f"{self.id}-{what}-{index}{self.shard_suffix(job)}",
                            "path": literal(gh_wd or cd or "."),
                            "if-no-files-found": "warn",
                            "include-hidden-files": True,
                        },
                    }
                ]
            case ir.SaveCache() | ir.RestoreCache():
                return self.cache(job, step)
            case ir.SetupRemoteDocker():
                remote_docker_notes(self.ctx, step, "GitHub jobs use the runner's Docker engine")
                return [{"name": "Setup a remote Docker engine", "run": docker_check_script(10)}]
            case ir.AddSshKeys():
                return [self.ssh_keys(step)]
            case ir.Unsupported():
                msg = sh_quote("cicompile: " + literal(step.reason))
                return [{"name": f"{literal(step.name)} (placeholder)",
                         "run": f"echo {msg} >&2\nexit 1"}]
        raise AssertionError(step)

    def ssh_keys(self, step: ir.AddSshKeys) -> dict[str, Any]:
        """An ssh-agent for the rest of the job, fed from secrets named after the keys."""
        pairs = ssh_key_secrets(step)
        env = {f"CICOMPILE_SSH_KEY_{i}": f"${{{{ secrets.{name} }}}}"
               for i, (_, name) in enumerate(pairs)}
        script = ssh_agent_script([(f, f"CICOMPILE_SSH_KEY_{i}", f"the secret {name}")
                                   for i, (f, name) in enumerate(pairs)])
        self.ctx.diags.note(
            "ssh-key-secrets",
            "add_ssh_keys: create the repository secret(s) "
            + ", ".join(f"`{name}`" + (f" (the private key of {f})" if f else
                                       " (the project's deploy key)") for f, name in pairs),
            step.span)
        return {
            "name": "Add SSH keys",
            "env": env,
            # A Unix socket path is limited to 107 bytes; a self-hosted runner's temp dir
            # can be deeper than that.
            "run": 'SSH_AUTH_SOCK="$RUNNER_TEMP/cicompile-ssh-agent.sock"\n'
            'if [ "${#SSH_AUTH_SOCK}" -gt 100 ]; then\n'
            '  SSH_AUTH_SOCK="$(mktemp -d /tmp/cicompile-ssh.XXXXXX)/agent.sock"\n'
            'fi\n'
            'export SSH_AUTH_SOCK\n' + script
            + 'echo "SSH_AUTH_SOCK=$SSH_AUTH_SOCK" >> "$GITHUB_ENV"\n',
        }

    def cache(self, job: ir.Job, step: ir.SaveCache | ir.RestoreCache) -> list[dict[str, Any]]:
        sid = f"cache-{step_index(job.steps, step)}"
        keys = [step.key_parts] if isinstance(step, ir.SaveCache) else list(step.key_parts)
        keys_text = [step.key] if isinstance(step, ir.SaveCache) else list(step.keys)
        lines = [CHECKSUM_FUNCTION] if needs_checksum(keys) else []
        lines += [literal(line) for line in cache_key_lines(keys)]
        lines.append("{")
        lines += [f'  echo "key{i}=$key{i}"' for i in range(len(keys))]
        lines.append('} >> "$GITHUB_OUTPUT"')
        dir_keys, prefix = self.dir_keys(job.working_directory)
        compute: dict[str, Any] = {"name": f"Compute cache key ({literal(keys_text[0])})",
                                   "id": sid, **dir_keys, "run": prefix + "\n".join(lines)}
        if isinstance(step, ir.SaveCache):
            paths = [_cache_path(job.working_directory, p) for p in step.paths]
            save: dict[str, Any] = {"name": literal(step.name or "Saving Cache")}
            cond = {ir.StepWhen.ALWAYS: "${{ !cancelled() }}",
                    ir.StepWhen.ON_FAIL: "${{ failure() }}"}.get(step.when)
            if cond:
                compute = {"if": cond, **compute}
                save["if"] = cond
            save["uses"] = CACHE_SAVE
            save["with"] = {"path": "\n".join(paths),
                            "key": f"${{{{ steps.{sid}.outputs.key0 }}}}"}
            return [compute, save]
        restore_paths = self.restore_paths(step)
        if restore_paths is None:
            self.ctx.diags.warning(
                "cache-paths-unknown",
                "no `save_cache` in this config matches these keys, so the cache paths are"
                " unknown; GitHub needs them to restore: the step is skipped", step.span)
            return [{"name": "restore_cache (paths unknown)",
                     "run": "echo 'cicompile: no matching save_cache; nothing restored'"}]
        restore: dict[str, Any] = {
            "name": literal(step.name or "Restoring Cache"),
            "uses": CACHE_RESTORE,
            "with": {"path": "\n".join(restore_paths),
                     "key": f"${{{{ steps.{sid}.outputs.key0 }}}}"},
        }
        if len(keys) > 1:
            restore["with"]["restore-keys"] = "\n".join(
                f"${{{{ steps.{sid}.outputs.key{i} }}}}" for i in range(1, len(keys))
            )
        return [compute, restore]

    def restore_paths(self, step: ir.RestoreCache) -> list[str] | None:
        """Paths of the save_cache whose key the restore's candidates are prefixes of.

        GitHub derives a cache's version from its paths, so a restore must name exactly the
        paths the save used; CircleCI restores to the saved absolute paths by itself.
        """
        prefixes = [k.split("{{")[0] for k in step.keys]
        for job in self.pipeline.jobs:
            for s in job.steps:
                if isinstance(s, ir.SaveCache) and any(
                    s.key == k or (p and s.key.startswith(p)) for k, p in zip(step.keys, prefixes,
                                                                               strict=True)
                ):
                    return [_cache_path(job.working_directory, p) for p in s.paths]
        return None

    def attach(self, job: ir.Job, step: ir.AttachWorkspace) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        names = []
        for layer in self.node.layers:
            aid = self.ids[layer.node]
            layer_names = self.layer_names(layer)
            for name in layer_names:
                names.append(name)
                of = literal(layer.node)
                if len(layer_names) > 1:
                    of += f" (node {name.rsplit('-node', 1)[1]})"
                dl: dict[str, Any] = {"name": f"Download workspace layer of {of}"}
                if self.gated and self.wf.node(layer.node).exists != self.node.exists:
                    dl["if"] = f"${{{{ needs.{GATE}.outputs.{aid} == 'true' }}}}"
                dl["uses"] = DOWNLOAD
                dl["with"] = {"name": name, "path": f"${{{{ runner.temp }}}}/{WS_DIR}-in"}
                out.append(dl)
        at = join_circleci_path(job.working_directory, step.at)
        keys, prefix = self.dir_keys(job.working_directory)
        lines = [f"mkdir -p {_shell_path(at)}"]
        for name in names:
            f = f'"$RUNNER_TEMP/{WS_DIR}-in/{name}.tar"'
            lines.append(f"if [ -f {f} ]; then tar -xpf {f} -C {_shell_path(at)}; fi")
        out.append({"name": f"Attach workspace at {literal(step.at)}", **keys,
                    "run": prefix + "\n".join(lines)})
        return out


# The same step in every job that needs it: one object per anchor, so the workflow file holds
# its text once (`&circleci-shim`) and the other jobs the alias (`- *circleci-shim`).
@cache
def _path_install_step(anchor: str, name: str, install: Callable[[str], str]) -> dict[str, Any]:
    return anchored(anchor, {
        "name": name,
        "run": install(f'"{SHIM_DIR}"') + f'echo "{SHIM_DIR}" >> "$GITHUB_PATH"\n',
    })


def _guard_halt(step: dict[str, Any]) -> None:
    """Skip the step once `circleci-agent step halt` ran (keeping its own condition)."""
    cond = step.get("if")
    if cond is None:
        cond = f"${{{{ {HALTED} }}}}"
    else:
        inner = cond.removeprefix("${{").removesuffix("}}").strip()
        cond = f"${{{{ ({inner}) && {HALTED} }}}}"
    # `if` goes right after the name, where the other steps write it.
    rest = {k: v for k, v in step.items() if k not in ("name", "if")}
    name = {"name": step["name"]} if "name" in step else {}
    step.clear()
    step.update({**name, "if": cond, **rest})


def _gate_job(wf: ir.Workflow, ids: dict[str, str], runs: dict[str, Cond],
              ctx: EmitContext) -> dict[str, Any]:
    lines = [
        "# CircleCI filters: exact strings or Java regexes that must match the whole name.",
        'CICOMPILE_REF_KIND="$GITHUB_REF_TYPE"',
        'CICOMPILE_REF_NAME="$GITHUB_REF_NAME"',
        BASH_REF_FUNCTIONS.rstrip("\n"),
        "{",
    ]
    step: dict[str, Any] = {"id": "filters", "name": "Evaluate CircleCI filters"}
    if any(uses_trigger(n.exists) for n in wf.nodes):
        lines.insert(3, GATE_TRIGGER_SOURCE)
        if any(uses_schedule_name(n.exists) for n in wf.nodes):
            lines.insert(4, _schedule_name_block(wf, ctx))
            # The cron reaches the script through the environment, never as expression text.
            step["env"] = {"CICOMPILE_EVENT_SCHEDULE": "${{ github.event.schedule }}"}
    for n in wf.nodes:
        lines.append(
            f"  if {bash_condition(runs[n.name])}; then echo '{ids[n.name]}=true';"
            f" else echo '{ids[n.name]}=false'; fi"
        )
    lines.append('} >> "$GITHUB_OUTPUT"')
    lines.append('cat "$GITHUB_OUTPUT"')
    step["run"] = "\n".join(lines) + "\n"
    return {
        "name": "CircleCI filters",
        "runs-on": "ubuntu-latest",
        "outputs": {ids[n.name]: f"${{{{ steps.filters.outputs.{ids[n.name]} }}}}"
                    for n in wf.nodes},
        "steps": [step],
    }


def _schedule_name_block(wf: ir.Workflow, ctx: EmitContext) -> str:
    """`pipeline.schedule.name` in the gate: GitHub's schedules have no names, only the cron
    that fired (`github.event.schedule`), which names the `--schedule` it was declared with."""
    if not ctx.schedules:
        ctx.diags.warning(
            "schedule-name",
            f"workflow {wf.name!r} reads `pipeline.schedule.name`; GitHub schedules have no"
            " names, only crons: declare CircleCI's schedule triggers with `--schedule"
            " NAME=CRON` (the gate then maps the cron that fired to its name); until then no"
            " scheduled run has a schedule name", wf.span)
    cases = "".join(f"    {sh_quote(cron)}) CICOMPILE_SCHEDULE_NAME={sh_quote(name)} ;;\n"
                    for name, cron in ctx.schedules)
    return ("# pipeline.schedule.name: the schedule trigger (--schedule) whose cron started"
            " this run.\nCICOMPILE_SCHEDULE_NAME=''\n"
            + ('if [[ $GITHUB_EVENT_NAME == schedule ]]; then\n'
               '  case $CICOMPILE_EVENT_SCHEDULE in\n' + cases + "  esac\nfi\n"
               if cases else "")
            + BASH_SCHEDULE_FUNCTIONS.rstrip("\n"))


def _schedule(crons: Iterable[str]) -> list[dict[str, str]]:
    """`on.schedule`: each cron once, in order."""
    return [{"cron": c} for c in dict.fromkeys(literal(c) for c in crons)]


class GitHubTarget(Target):
    name = "github"

    def emit(self, pipeline: ir.Pipeline, ctx: EmitContext) -> dict[str, str]:
        files: dict[str, str] = {}
        file_ids = unique_ids([wf.name for wf in pipeline.workflows])
        for wf in pipeline.workflows:
            files[f".github/workflows/{file_ids[wf.name]}.yml"] = self.workflow(
                pipeline, wf, ctx
            )
        return files

    @staticmethod
    def triggers(pipeline: ir.Pipeline, wf: ir.Workflow, push: dict[str, Any],
                 ctx: EmitContext) -> dict[str, Any]:
        """`on:` — a scheduled workflow never runs on push (semantics §5.7); every workflow
        can be started by hand (`workflow_dispatch`), where the gate still applies filters.
        The workflows scheduled pipelines run also get the schedule triggers of the project
        settings (`--schedule`), on the default branch."""
        if not wf.schedules:
            if ctx.schedules and on_scheduled_pipelines(pipeline, wf):
                return {"push": push, "schedule": _schedule(c for _, c in ctx.schedules),
                        "workflow_dispatch": {}}
            return {"push": push, "workflow_dispatch": {}}
        for s in wf.schedules:
            ctx.diags.warning(
                "schedule-default-branch",
                f"GitHub runs scheduled workflows on the default branch only: cron `{s.cron}`"
                " runs there, and its jobs run only if that branch passes the schedule's"
                " branch filter (other branches of the filter get no scheduled runs)",
                s.span,
            )
        return {"schedule": _schedule(s.cron for s in wf.schedules), "workflow_dispatch": {}}

    def workflow(self, pipeline: ir.Pipeline, wf: ir.Workflow, ctx: EmitContext) -> str:
        ids = unique_ids([GATE] + [n.name for n in wf.nodes])
        # Without filters every node exists exactly on branch pushes: no gate needed.
        gated = any(n.exists != IsKind(RefKind.BRANCH) for n in wf.nodes)
        on_branch = any(restrict(n.exists, RefKind.BRANCH) != FALSE for n in wf.nodes)
        on_tag = any(restrict(n.exists, RefKind.TAG) != FALSE for n in wf.nodes)
        push: dict[str, Any] = {}
        if on_branch or not on_tag:
            push["branches"] = ["**"]
        if on_tag:
            push["tags"] = ["**"]
        if wf.max_auto_reruns:
            ctx.diags.warning(
                "workflow-reruns",
                f"`max_auto_reruns: {wf.max_auto_reruns}`: GitHub Actions has no automatic"
                " job retry; rerun failed jobs by hand (Re-run failed jobs, or"
                " `gh run rerun RUN_ID --failed`)", wf.span)
        jobs: dict[str, Any] = {}
        if gated:
            # An approval runs only for a job that requires it (targets/approvals.py).
            runs = github_existence(wf)
            jobs[GATE] = _gate_job(wf, ids, runs, ctx)
            warn_approval_waits(wf, runs, ctx.diags)
        for n in wf.nodes:
            em = _JobEmitter(pipeline, wf, n, ids, gated, ctx)
            if n.kind is ir.NodeKind.APPROVAL:
                jobs[ids[n.name]] = em.approval()
            else:
                assert n.job is not None
                jobs[ids[n.name]] = em.build(pipeline.job(n.job))
            # A node that never exists (never-runs) needs no override: the gate says false for
            # it (a constant `if: false` is an error for actionlint).
        doc: dict[str, Any] = {
            "name": literal(wf.name),
            "on": self.triggers(pipeline, wf, push, ctx),
            "permissions": {"contents": "read"},
            "env": dict(WORKFLOW_ENV),
            "defaults": {"run": {"shell": "bash"}},
            "jobs": jobs,
        }
        header = GENERATED_NOTICE.format(source=pipeline.source.rsplit("/", 1)[-1])
        header += f"\nCircleCI workflow: {wf.name}"
        text = dump_yaml(doc, header=literal(header))
        # PyYAML quotes the key because YAML 1.1 reads `on` as a boolean; GitHub's parser reads
        # YAML 1.2 and its docs write it bare, so match them.
        return text.replace("\n'on':\n", "\non:\n", 1)


__all__ = ["GitHubTarget", "TRUE"]
