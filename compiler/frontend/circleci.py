"""CircleCI config (positioned YAML tree) → validated IR.

Every problem is recorded with a position and a stable code; the caller decides whether to go
on. Structure follows the configuration reference (semantics §1–§5).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from cicompile import ir
from cicompile.conditions import Pattern
from cicompile.diagnostics import ConfigError, Diagnostics, Span
from cicompile.frontend.cache_key import parse_cache_key
from cicompile.frontend.expression import filter_expression, reads_trigger, workflow_condition
from cicompile.frontend.yaml_loader import YMap, YNode, YScalar, YSeq, load_yaml

if TYPE_CHECKING:
    from pathlib import Path  # annotations only: pathlib is no start-up cost

TOP_LEVEL_KEYS = {"version", "jobs", "workflows", "orbs", "commands", "executors",
                  "parameters", "setup", "job-groups", "description", "display"}
NOT_YET_EXPANDED = {"job-groups"}
MAX_PARALLELISM = 200
JOB_KEYS = {"docker", "machine", "macos", "windows", "executor", "steps", "shell",
            "working_directory", "parallelism", "environment", "resource_class", "type",
            "parameters", "description", "branches", "circleci_ip_ranges", "retention"}
WORKFLOW_NODE_KEYS = {"requires", "filters", "context", "type", "name", "matrix",
                      "pre-steps", "post-steps", "serial-group", "override-with"}
_NAMED_COMMAND = frozenset({"command", "name"})
_IMAGE_ONLY = frozenset({"image"})
RUN_KEYS = {"command", "name", "shell", "environment", "working_directory", "background",
            "when", "no_output_timeout", "max_auto_reruns", "auto_rerun_delay"}
DOCKER_KEYS = {"image", "name", "entrypoint", "command", "user", "environment", "auth",
               "aws_auth"}


def _type_name(node: YNode) -> str:
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    return f"the scalar {node.text!r}"


class _Reader:
    def __init__(self, path: str, diags: Diagnostics) -> None:
        self.path = path
        self.diags = diags

    # ---- typed accessors -------------------------------------------------------------

    def mapping(self, node: YNode | None, what: str) -> YMap | None:
        if isinstance(node, YMap):
            return node
        if node is not None:
            self.diags.error("invalid-type", f"{what} must be a mapping, not {_type_name(node)}",
                             node.span)
        return None

    def string(self, node: YNode | None, what: str) -> str | None:
        # Any scalar but null; CircleCI passes `yes`/`true` through as text where a string goes.
        if isinstance(node, YScalar) and node.value is not None:
            return node.text
        if node is not None:
            self.diags.error("invalid-type", f"{what} must be a string, not {_type_name(node)}",
                             node.span)
        return None

    def strings(self, node: YNode | None, what: str) -> tuple[str, ...] | None:
        """A string or a list of strings (CircleCI accepts both for most list keys)."""
        if node is None:
            return None
        if isinstance(node, YScalar):
            s = self.string(node, what)
            return None if s is None else (s,)
        if isinstance(node, YSeq):
            out = []
            for item in node.items:
                s = self.string(item, f"each entry of {what}")
                if s is not None:
                    out.append(s)
            return tuple(out)
        self.diags.error("invalid-type",
                         f"{what} must be a string or a list of strings, not a mapping", node.span)
        return None

    def boolean(self, node: YNode | None, what: str) -> bool | None:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        if node is not None:
            self.diags.error("invalid-type", f"{what} must be true or false", node.span)
        return None

    def integer(self, node: YNode | None, what: str) -> int | None:
        if isinstance(node, YScalar) and "<<" in node.text:
            self.diags.warning("unsupported-feature", f"{what} uses a 2.1 parameter, which is not"
                               " expanded yet; the default is used", node.span)
            return None
        if isinstance(node, YScalar) and isinstance(node.value, int) and not isinstance(
            node.value, bool
        ):
            return node.value
        if node is not None:
            self.diags.error("invalid-type", f"{what} must be an integer", node.span)
        return None

    def env(self, node: YNode | None, what: str) -> ir.Env:
        if node is None:
            return ()
        if isinstance(node, YMap):
            out = []
            for k, v in node.pairs:
                if isinstance(v, YScalar):
                    out.append((k.as_str(), v.as_str()))
                else:
                    self.diags.error("invalid-type",
                                     f"{what} value of {k.as_str()!r} must be a scalar", v.span)
            return tuple(out)
        if isinstance(node, YScalar) and "=" in node.as_str():  # `KEY=value` lines
            out = []
            for word in node.as_str().split():
                name, _, value = word.partition("=")
                out.append((name, value))
            return tuple(out)
        if isinstance(node, YSeq):  # `- KEY=value` or `- KEY: value` list forms
            out = []
            for item in node.items:
                if isinstance(item, YMap):
                    out.extend(self.env(item, what))
                    continue
                s = self.string(item, f"each entry of {what}")
                if s is None:
                    continue
                name, eq, value = s.partition("=")
                if not eq:
                    self.diags.error("invalid-type", f"{what} entry {s!r} must be KEY=value",
                                     item.span)
                    continue
                out.append((name, value))
            return tuple(out)
        self.diags.error("invalid-type", f"{what} must be a mapping", node.span)
        return ()

    def unknown_keys(self, m: YMap, allowed: AbstractSet[str], what: str) -> None:
        if m.has_only(allowed):  # the usual case, one set test
            return
        for k, _ in m.pairs:
            if k.as_str() not in allowed:
                self.diags.warning("unknown-key", f"unknown key {k.as_str()!r} in {what}; ignored",
                                   k.span)

    def required(self, m: YMap, key: str, what: str) -> YNode | None:
        node = m.get(key)
        if node is None:
            self.diags.error("missing-key", f"{what} needs `{key}`", m.span)
        return node

    # ---- patterns --------------------------------------------------------------------

    def patterns(self, node: YNode | None, what: str) -> tuple[Pattern, ...] | None:
        texts = self.strings(node, what)
        if texts is None:
            return None
        out = []
        for t in texts:
            if len(t) >= 2 and t.startswith("/") and t.endswith("/"):
                body = t[1:-1]
                try:
                    re.compile(body)
                except re.error as exc:
                    assert node is not None
                    self.diags.error("invalid-regex", f"invalid regular expression {t}: {exc}",
                                     node.span)
                    continue
                out.append(Pattern(body, regex=True))
            else:
                out.append(Pattern(t))
        return tuple(out)


def _version(r: _Reader, root: YMap, diags: Diagnostics) -> str:
    node = root.get("version")
    if node is None:
        diags.error("missing-version", "the config needs a top-level `version` (2, 2.0 or 2.1)",
                    root.span)
        raise ConfigError
    text = node.text if isinstance(node, YScalar) else ""
    if text in ("2", "2.0"):
        return "2.0"
    if text == "2.1":
        return "2.1"
    diags.error("invalid-version", f"unsupported version {text or _type_name(node)!r};"
                " expected 2, 2.0 or 2.1", node.span)
    raise ConfigError


def _argv(r: _Reader, node: YNode | None, what: str) -> tuple[str, ...]:
    """`entrypoint`/`command` as argv: a list as written, a string split like a shell line (as
    Docker Compose splits it), so targets never guess where one argument ends."""
    if isinstance(node, YScalar):
        text = r.string(node, what)
        if text is None:
            return ()
        try:
            return tuple(shlex.split(text))
        except ValueError as exc:
            r.diags.error("invalid-value", f"{what} {text!r} cannot be split into words: {exc}",
                          node.span)
            return ()
    return r.strings(node, what) or ()


def _executor(r: _Reader, job: YMap, name: str) -> ir.Executor:
    kinds = [k for k in ("docker", "machine", "macos", "windows", "executor") if k in job]
    resource_class = r.string(job.get("resource_class"), "resource_class")
    if len(kinds) > 1:
        r.diags.error("executor-conflict",
                      f"job {name!r} declares more than one executor: {', '.join(kinds)}",
                      job.span)
    if not kinds:
        return ir.Executor(kind=ir.ExecutorKind.NONE, resource_class=resource_class, span=job.span)
    kind = kinds[0]
    node = job.get(kind)
    assert node is not None
    key_span = job.key(kind)
    span = key_span.span if key_span else job.span
    if kind == "docker":
        images = []
        if not isinstance(node, YSeq) or not node.items:
            r.diags.error("invalid-type", "`docker` must be a non-empty list of images", node.span)
        else:
            for item in node.items:
                m = r.mapping(item, "each `docker` entry")
                if m is None:
                    continue
                r.unknown_keys(m, DOCKER_KEYS, "a docker image")
                image = r.string(r.required(m, "image", "a docker entry"), "image")
                if image is None:
                    continue
                if m.has_only(_IMAGE_ONLY):  # most entries: every option keeps its default
                    images.append(ir.DockerImage(image=image, span=m.span))
                    continue
                images.append(ir.DockerImage(
                    image=image,
                    name=r.string(m.get("name"), "name"),
                    environment=r.env(m.get("environment"), "environment"),
                    entrypoint=_argv(r, m.get("entrypoint"), "`entrypoint`"),
                    command=_argv(r, m.get("command"), "`command`"),
                    user=r.string(m.get("user"), "user"),
                    has_auth="auth" in m or "aws_auth" in m,
                    auth=r.env(m.get("auth"), "auth"),
                    span=m.span,
                ))
        return ir.Executor(kind=ir.ExecutorKind.DOCKER, images=tuple(images),
                           resource_class=resource_class, span=span)
    if kind == "machine":
        image = None
        if isinstance(node, YMap):
            image = r.string(node.get("image"), "machine image")
        elif r.boolean(node, "`machine`") is None:
            pass
        return ir.Executor(kind=ir.ExecutorKind.MACHINE, machine_image=image,
                           resource_class=resource_class, span=span)
    if kind == "macos":
        m = r.mapping(node, "`macos`")
        xcode = r.string(m.get("xcode"), "xcode") if m else None
        return ir.Executor(kind=ir.ExecutorKind.MACOS, xcode=xcode,
                           resource_class=resource_class, span=span)
    if kind == "windows":
        return ir.Executor(kind=ir.ExecutorKind.WINDOWS, resource_class=resource_class, span=span)
    r.diags.warning("unsupported-feature",
                    f"job {name!r} uses a reusable `executor`, which this version does not expand"
                    " yet; the job runs on the default host", span)
    return ir.Executor(kind=ir.ExecutorKind.NONE, resource_class=resource_class, span=span)


def _when(r: _Reader, node: YNode | None) -> ir.StepWhen:
    text = r.string(node, "`when`")
    if text is None:
        return ir.StepWhen.ON_SUCCESS
    try:
        return ir.StepWhen(text)
    except ValueError:
        assert node is not None
        r.diags.error("invalid-value",
                      f"`when` must be on_success, on_fail or always, not {text!r}", node.span)
        return ir.StepWhen.ON_SUCCESS


def _run_step(r: _Reader, body: YNode, span: Span) -> ir.Step | None:
    if isinstance(body, YScalar):
        cmd = r.string(body, "`run`")
        if cmd is None:
            return None
        return ir.Run(command=cmd, name=_default_step_name(cmd), span=span)
    m = r.mapping(body, "`run`")
    if m is None:
        return None
    if m.has_only(_NAMED_COMMAND):  # most `run` steps: every option keeps its default
        cmd = r.string(r.required(m, "command", "a `run` step"), "`command`")
        if cmd is None:
            return None
        return ir.Run(command=cmd, name=r.string(m.get("name"), "`name`")
                      or _default_step_name(cmd), span=span)
    r.unknown_keys(m, RUN_KEYS, "a `run` step")
    cmd = r.string(r.required(m, "command", "a `run` step"), "`command`")
    if cmd is None:
        return None
    background = r.boolean(m.get("background"), "`background`") or False
    reruns = _auto_reruns(r, m.get("max_auto_reruns"))
    delay_node = m.get("auto_rerun_delay")
    delay = _duration(r, delay_node, "`auto_rerun_delay`") or 0
    if delay_node is not None and not reruns:
        r.diags.error("invalid-value", "`auto_rerun_delay` needs `max_auto_reruns`",
                      delay_node.span)
    if delay > MAX_RERUN_DELAY and delay_node is not None:
        r.diags.error("invalid-value", "`auto_rerun_delay` is at most 10 minutes",
                      delay_node.span)
        delay = MAX_RERUN_DELAY
    return ir.Run(
        command=cmd,
        name=r.string(m.get("name"), "`name`") or _default_step_name(cmd),
        shell=r.string(m.get("shell"), "`shell`"),
        environment=r.env(m.get("environment"), "`environment`"),
        working_directory=r.string(m.get("working_directory"), "`working_directory`"),
        background=background,
        when=_when(r, m.get("when")),
        no_output_timeout=_duration(r, m.get("no_output_timeout"), "`no_output_timeout`"),
        max_auto_reruns=reruns,
        auto_rerun_delay=delay,
        span=span,
    )


# A Go duration as CircleCI reads it (`10m`, `1.25h`, `1h30m`, `90s`; semantics §3.1).
_DURATION = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
MAX_RERUN_DELAY = 600


def _duration(r: _Reader, node: YNode | None, what: str) -> int | None:
    """Whole seconds (rounded up, at least 1); None when absent or invalid (reported)."""
    if node is None:
        return None
    text = node.text.strip() if isinstance(node, YScalar) else ""
    if isinstance(node, YScalar) and re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        total = 0.0
        for part in _DURATION.findall(text):
            unit = part.lstrip("0123456789.")
            total += float(part[: len(part) - len(unit)]) * _UNIT_SECONDS[unit]
        return max(1, math.ceil(total - 1e-9))
    if isinstance(node, YScalar) and isinstance(node.value, int) and node.value > 0:
        r.diags.warning("invalid-duration", f"{what} is a number without a unit; read as"
                        f" {node.value} seconds (write e.g. {node.value}s)", node.span)
        return int(node.value)
    r.diags.warning("invalid-duration", f"{what} must be a duration such as 30s, 10m or 1h30m,"
                    f" not {text or _type_name(node)!r}; ignored", node.span)
    return None


def _auto_reruns(r: _Reader, node: YNode | None) -> int:
    count = r.integer(node, "`max_auto_reruns`")
    if count is None:
        return 0
    if not 1 <= count <= 5:
        assert node is not None
        r.diags.error("invalid-value", "`max_auto_reruns` must be between 1 and 5", node.span)
        return max(0, min(count, 5))
    return count


# The text before the first line boundary `str.splitlines` knows (without splitting it all).
_FIRST_LINE = re.compile("[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*")


def _default_step_name(cmd: str) -> str:
    stripped = cmd.strip()
    first = _FIRST_LINE.match(stripped).group() if stripped else "run"  # type: ignore[union-attr]
    return first if len(first) <= 80 else first[:77] + "..."


def _step(r: _Reader, node: YNode) -> ir.Step | None:
    if isinstance(node, YScalar):
        name = node.as_str()
        body: YNode | None = None
        span = node.span
    elif isinstance(node, YMap) and len(node.pairs) == 1:
        key, body = node.pairs[0]
        name, span = key.as_str(), key.span
    elif isinstance(node, YMap) and "command" in node:
        # CircleCI 1.0-style step (`{type: shell, name, command}`), still accepted by CircleCI.
        r.diags.warning("legacy-step", "a step written as a bare mapping with `command` is read"
                        " as a `run` step", node.span)
        legacy = YMap(tuple((k, v) for k, v in node.pairs if k.as_str() in RUN_KEYS), node.span)
        return _run_step(r, legacy, node.span)
    else:
        r.diags.error("invalid-step", "a step must be a name or a mapping with exactly one key",
                      node.span)
        return None
    m = body if isinstance(body, YMap) else (
        r.mapping(body, f"`{name}`") if isinstance(body, YSeq) else None)
    if name == "run" or name == "deploy":
        if body is None:
            r.diags.error("missing-key", f"`{name}` needs a command", span)
            return None
        return _run_step(r, body, span)
    if name == "checkout":
        path = r.string(m.get("path"), "`path`") if m else None
        return ir.Checkout(path=path, span=span)
    if name == "setup_remote_docker":
        if m is not None:
            r.unknown_keys(m, {"version", "docker_layer_caching", "prefer_same_region", "name"},
                           "`setup_remote_docker`")
        version = m.get("version") if m else None
        dlc = r.boolean(m.get("docker_layer_caching"), "`docker_layer_caching`") if m else None
        return ir.SetupRemoteDocker(
            version=version.text if isinstance(version, YScalar) else None,
            docker_layer_caching=bool(dlc), span=span)
    if name == "add_ssh_keys":
        if m is not None:
            r.unknown_keys(m, {"fingerprints", "name"}, "`add_ssh_keys`")
        listed = m.get("fingerprints") if m else None
        if isinstance(listed, YScalar) and listed.value is None:
            listed = None  # `fingerprints:` left empty: every key, as with none
        prints = r.strings(listed, "`fingerprints`")
        return ir.AddSshKeys(fingerprints=tuple(dict.fromkeys(prints or ())), span=span)
    if name == "persist_to_workspace":
        if m is None:
            r.diags.error("missing-key", "`persist_to_workspace` needs `root` and `paths`", span)
            return None
        root = r.string(r.required(m, "root", "`persist_to_workspace`"), "`root`")
        paths = r.strings(r.required(m, "paths", "`persist_to_workspace`"), "`paths`")
        if root is None or paths is None:
            return None
        for p in paths:
            if "**" in p:
                r.diags.warning("workspace-glob", f"path {p!r}: CircleCI globs have no `**`;"
                                " it matches like `*`", span)
        return ir.PersistToWorkspace(root=root, paths=paths, span=span)
    if name == "attach_workspace":
        if m is None:
            r.diags.error("missing-key", "`attach_workspace` needs `at`", span)
            return None
        at = r.string(r.required(m, "at", "`attach_workspace`"), "`at`")
        return None if at is None else ir.AttachWorkspace(at=at, span=span)
    if name == "save_cache" and m is not None:
        cache_key = r.string(r.required(m, "key", "`save_cache`"), "`key`")
        paths = r.strings(r.required(m, "paths", "`save_cache`"), "`paths`")
        if cache_key is None or paths is None:
            return None
        return ir.SaveCache(key=cache_key, paths=paths, name=r.string(m.get("name"), "`name`"),
                            key_parts=parse_cache_key(cache_key, span, r.diags),
                            when=_when(r, m.get("when")), span=span)
    if name == "restore_cache" and m is not None:
        keys = r.strings(m.get("keys"), "`keys`") or r.strings(m.get("key"), "`key`")
        if not keys:
            r.diags.error("missing-key", "`restore_cache` needs `key` or `keys`", span)
            return None
        if m.get("key") is not None and m.get("keys") is not None:
            first = r.strings(m.get("key"), "`key`") or ()
            keys = tuple(dict.fromkeys(first + keys))  # `key` is tried before `keys`
        return ir.RestoreCache(keys=keys, name=r.string(m.get("name"), "`name`"),
                               key_parts=tuple(parse_cache_key(k, span, r.diags) for k in keys),
                               span=span)
    if name == "store_artifacts" and m is not None:
        path = r.string(r.required(m, "path", "`store_artifacts`"), "`path`")
        if path is None:
            return None
        return ir.StoreArtifacts(path=path, destination=r.string(m.get("destination"),
                                                                 "`destination`"), span=span)
    if name == "store_test_results" and m is not None:
        path = r.string(r.required(m, "path", "`store_test_results`"), "`path`")
        return None if path is None else ir.StoreTestResults(path=path, span=span)
    if "/" in name:  # 2.1 configs only get here for commands of registry orbs
        from cicompile.frontend.orbsource import PROVIDE_HINT

        orb = name.split("/", 1)[0]
        reason = (f"`{name}` is a command of the orb {orb!r}, whose source is not available;"
                  f" it becomes a placeholder that fails, naming the orb; {PROVIDE_HINT}")
        r.diags.warning("unsupported-orb", reason, span)
        return ir.Unsupported(name=name, reason=reason, span=span)
    known = {"save_cache", "restore_cache", "store_artifacts", "store_test_results",
             "when", "unless"}
    reason = (f"the `{name}` step is not translated yet" if name in known
              else f"unknown step `{name}`")
    r.diags.warning("unsupported-step", reason + "; it becomes a failing placeholder", span)
    return ir.Unsupported(name=name, reason=reason, span=span)


def _job(r: _Reader, name: str, node: YNode) -> ir.Job | None:
    m = r.mapping(node, f"job {name!r}")
    if m is None:
        return None
    r.unknown_keys(m, JOB_KEYS, f"job {name!r}")
    steps_node = m.get("steps")
    steps: list[ir.Step] = []
    job_type = r.string(m.get("type"), "`type`")
    if job_type == "no-op" and steps_node is None:
        pass  # a job that does nothing (semantics §2.1)
    elif steps_node is None:
        r.diags.error("missing-steps", f"job {name!r} has no `steps`", m.span)
    elif not isinstance(steps_node, YSeq):
        r.diags.error("invalid-type", f"`steps` of job {name!r} must be a list", steps_node.span)
    else:
        layer = 0
        for s in steps_node.items:
            step = _step(r, s)
            if isinstance(step, ir.PersistToWorkspace):
                step = ir.PersistToWorkspace(root=step.root, paths=step.paths, layer=layer,
                                             span=step.span)
                layer += 1
            if step is not None:
                steps.append(step)
    parallelism = r.integer(m.get("parallelism"), "`parallelism`")
    if parallelism is None:
        parallelism = 1
    elif not 1 <= parallelism <= MAX_PARALLELISM:
        # GitLab's `parallel` stops at 200 (GitHub's matrix at 256): no target could run more.
        pnode = m.get("parallelism")
        r.diags.error("invalid-value", f"`parallelism` must be between 1 and {MAX_PARALLELISM}",
                      pnode.span if pnode is not None else m.span)
        parallelism = 1
    return ir.Job(
        name=name,
        executor=_executor(r, m, name),
        steps=tuple(steps),
        environment=r.env(m.get("environment"), "`environment`"),
        working_directory=r.string(m.get("working_directory"), "`working_directory`")
        or ir.DEFAULT_WORKING_DIRECTORY,
        shell=r.string(m.get("shell"), "`shell`"),
        parallelism=parallelism,
        span=m.key("steps").span if m.key("steps") else m.span,  # type: ignore[union-attr]
    )


def _filters(r: _Reader, node: YNode | None) -> ir.Filters:
    if isinstance(node, YScalar) and isinstance(node.value, str):  # an expression (§5.5)
        return ir.Filters(expression=filter_expression(node, r.diags), span=node.span)
    m = r.mapping(node, "`filters`")
    if m is None:
        return ir.Filters()
    r.unknown_keys(m, {"branches", "tags"}, "`filters`")

    def ref_filter(key: str) -> ir.RefFilter | None:
        f = r.mapping(m.get(key), f"`{key}`")
        if f is None:
            return None
        r.unknown_keys(f, {"only", "ignore"}, f"`{key}` filter")
        return ir.RefFilter(only=r.patterns(f.get("only"), "`only`"),
                            ignore=r.patterns(f.get("ignore"), "`ignore`"))

    return ir.Filters(branches=ref_filter("branches"), tags=ref_filter("tags"), span=m.span)


def _schedule(r: _Reader, node: YNode) -> ir.Schedule | None:
    """One `- schedule: {cron, filters: {branches}}` trigger; both keys are required."""
    m = r.mapping(node, "a trigger")
    if m is None:
        return None
    r.unknown_keys(m, {"schedule"}, "a trigger")
    body = r.mapping(r.required(m, "schedule", "a trigger"), "`schedule`")
    if body is None:
        return None
    r.unknown_keys(body, {"cron", "filters"}, "`schedule`")
    cron = r.string(r.required(body, "cron", "`schedule`"), "`cron`")
    filters = _filters(r, r.required(body, "filters", "`schedule`"))
    if filters.branches is None and body.get("filters") is not None:
        r.diags.error("missing-key", "a schedule's `filters` needs `branches`",
                      filters.span or body.span)
        return None
    if cron is None or filters.branches is None:
        return None
    return ir.Schedule(cron=cron, branches=filters.branches, span=m.span)


def _triggers(r: _Reader, node: YNode | None) -> tuple[ir.Schedule, ...]:
    """A workflow's `triggers` (only `schedule` exists, semantics §5.7)."""
    if node is None:
        return ()
    if not isinstance(node, YSeq):
        r.diags.error("invalid-type", "`triggers` must be a list", node.span)
        return ()
    found = (_schedule(r, item) for item in node.items)
    return tuple(s for s in found if s is not None)


_STATUS_WORDS = {s.value: frozenset({s}) for s in ir.JobStatus} | {"terminal": ir.TERMINAL}
# `serial-group`: at most 512 of these characters (semantics §5.2).
_SERIAL_GROUP = re.compile(r"[A-Za-z0-9._/-]{1,512}")


def _statuses(r: _Reader, node: YNode, requirement: str) -> frozenset[ir.JobStatus] | None:
    """`success`, `[success, failed]`, `terminal`…: the statuses a requirement may end in."""
    items = node.items if isinstance(node, YSeq) else (node,)
    out: set[ir.JobStatus] = set()
    for item in items:
        word = r.string(item, f"the status of requirement {requirement!r}")
        if word is None:
            return None
        if word not in _STATUS_WORDS:
            r.diags.error("invalid-value", f"requirement {requirement!r}: unknown status"
                          f" {word!r} (expected one of {', '.join(_STATUS_WORDS)})", item.span)
            return None
        out |= _STATUS_WORDS[word]
    if not out:
        r.diags.error("invalid-value", f"requirement {requirement!r} lists no status",
                      node.span)
        return None
    if ir.JobStatus.UNAUTHORIZED in out and out != ir.TERMINAL:
        r.diags.warning("requires-unauthorized", f"requirement {requirement!r} accepts"
                        " `unauthorized` (a restricted context refused the job), which no"
                        " target has: that status never occurs there", node.span)
    return frozenset(out)


def _requires(
    r: _Reader, node: YNode | None
) -> tuple[tuple[str, ...], tuple[tuple[str, frozenset[ir.JobStatus]], ...]]:
    """`requires`: names, plus the statuses of flexible requirements (semantics §5.3) —
    `- build`, `- build: failed`, `- build: [success, failed]`, `- build: terminal`."""
    if not isinstance(node, YSeq):
        return r.strings(node, "`requires`") or (), ()
    names: dict[str, None] = {}
    statuses: dict[str, frozenset[ir.JobStatus]] = {}
    for item in node.items:
        if isinstance(item, YMap):
            for k, v in item.pairs:
                name = k.as_str()
                allowed = _statuses(r, v, name)
                if allowed is not None:
                    names[name] = None
                    statuses[name] = statuses.get(name, frozenset()) | allowed
            continue
        plain = r.string(item, "each entry of `requires`")
        if plain is not None:
            names[plain] = None
            statuses[plain] = statuses.get(plain, frozenset()) | ir.SUCCESS_ONLY
    flexible = tuple((n, s) for n, s in statuses.items() if s != ir.SUCCESS_ONLY)
    return tuple(names), flexible


def _serial_group(r: _Reader, node: YNode | None) -> str | None:
    text = r.string(node, "`serial-group`")
    if text is None or node is None:
        return None
    # Pipeline values known at run time are `${CIRCLE_…}` (targets read them then); others
    # stay literal `<< pipeline.… >>` text (warned by the expansion): a usable, fixed name.
    if "<<" not in text and not _SERIAL_GROUP.fullmatch(ir.RUNTIME_REF.sub("x", text)):
        r.diags.error("invalid-value", f"`serial-group` {text!r} must be 1 to 512 of the"
                      " characters A-Z a-z 0-9 . _ / -", node.span)
        return None
    return text


def _workflow(
    r: _Reader,
    name: str,
    node: YNode,
    job_names: set[str],
    orb_names: set[str],
    placeholders: dict[str, ir.Job],
    version: str = "2.0",
) -> ir.Workflow | None:
    m = r.mapping(node, f"workflow {name!r}")
    if m is None:
        return None
    r.unknown_keys(m, {"jobs", "triggers", "when", "unless", "max_auto_reruns"},
                   f"workflow {name!r}")
    schedules = _triggers(r, m.get("triggers"))
    jobs = m.get("jobs")
    if not isinstance(jobs, YSeq) or not jobs.items:
        r.diags.error("missing-key", f"workflow {name!r} needs a non-empty `jobs` list",
                      jobs.span if jobs is not None else m.span)
        return None
    nodes: list[ir.WorkflowNode] = []
    for entry in jobs.items:
        if isinstance(entry, YScalar):
            job, body, span = entry.as_str(), None, entry.span
        elif isinstance(entry, YMap) and len(entry.pairs) == 1:
            entry_key, val = entry.pairs[0]
            job, span = entry_key.as_str(), entry_key.span
            body = r.mapping(val, f"the entry for {job!r}") if not (
                isinstance(val, YScalar) and val.value is None) else None
        else:
            r.diags.error("invalid-type", "a workflow job entry must be a job name or a mapping"
                          " with one job name", entry.span)
            continue
        kind = ir.NodeKind.JOB
        requires: tuple[str, ...] = ()
        require_statuses: tuple[tuple[str, frozenset[ir.JobStatus]], ...] = ()
        filters = ir.Filters()
        context: tuple[str, ...] = ()
        serial_group: str | None = None
        invocation = job
        if body is not None:
            r.unknown_keys(body, WORKFLOW_NODE_KEYS, f"the entry for {job!r}")
            type_text = r.string(body.get("type"), "`type`")
            if type_text is not None:
                if type_text == "approval":
                    kind = ir.NodeKind.APPROVAL
                else:
                    tnode = body.get("type")
                    assert tnode is not None
                    r.diags.error("invalid-value", f"workflow job `type` must be `approval`, not"
                                  f" {type_text!r}", tnode.span)
            requires, require_statuses = _requires(r, body.get("requires"))
            filters = _filters(r, body.get("filters"))
            context = r.strings(body.get("context"), "`context`") or ()
            invocation = r.string(body.get("name"), "`name`") or job
            serial_group = _serial_group(r, body.get("serial-group"))
            k = body.key("override-with")
            if k is not None and version != "2.1":
                r.diags.warning("unsupported-feature", "`override-with` needs CircleCI 2.1"
                                " (orbs); ignored", k.span)
        if kind is ir.NodeKind.JOB and job not in job_names and "/" in job and (
            job.split("/", 1)[0] in orb_names
        ):
            from cicompile.frontend.orbsource import PROVIDE_HINT

            r.diags.warning("unsupported-orb", f"job {job!r} comes from the orb"
                            f" {job.split('/', 1)[0]!r}, whose source is not available; it"
                            f" becomes a placeholder that fails, naming the orb; {PROVIDE_HINT}",
                            span)
            placeholders.setdefault(job, ir.Job(
                name=job, executor=ir.Executor(kind=ir.ExecutorKind.NONE),
                steps=(ir.Unsupported(name=job, reason=f"orb job {job!r} is not expanded: its"
                                      " source is not available (cicompile --orb-dir DIR)",
                                      span=span),),
                span=span))
        elif kind is ir.NodeKind.JOB and job not in job_names:
            r.diags.error("unknown-job", f"workflow {name!r} uses job {job!r}, which is not"
                          " defined under `jobs`", span)
            continue
        nodes.append(ir.WorkflowNode(
            name=invocation, kind=kind, job=job if kind is ir.NodeKind.JOB else None,
            requires=requires, require_statuses=require_statuses, filters=filters,
            context=context, serial_group=serial_group, span=span))
    return ir.Workflow(name=name, nodes=tuple(nodes), schedules=schedules,
                       condition=workflow_condition(m, name, r.diags),
                       reads_trigger=reads_trigger(m),
                       max_auto_reruns=_auto_reruns(r, m.get("max_auto_reruns")),
                       span=m.key("jobs").span  # type: ignore[union-attr]
                       if m.key("jobs") else m.span)


def _setup(r: _Reader, key: YScalar, value: YNode, root: YMap) -> None:
    """`setup: true` (dynamic config, semantics §1): its jobs compile like any others, but
    the hand-off to a continuation config has no equivalent on the targets; say so exactly."""
    if not (isinstance(value, YScalar) and value.value is True):
        if not (isinstance(value, YScalar) and value.value in (False, None)):
            r.diags.error("invalid-type", "`setup` must be true or false", value.span)
        return
    orbs = root.get("orbs")
    refs = [v.as_str() for _, v in orbs.pairs if isinstance(v, YScalar)] if isinstance(
        orbs, YMap) else []
    how = ("the `circleci/path-filtering` filter job chooses pipeline parameters from the"
           " changed paths; compile the continuation config once with each set you need"
           " (`--param NAME=VALUE`)" if any(ref.startswith("circleci/path-filtering@")
                                             for ref in refs)
           else "compile the continuation config(s) too and run them after this one")
    r.diags.warning("setup-config", "this is a setup config (`setup: true`, dynamic"
                    " configuration): its jobs are compiled, but continuing the pipeline (the"
                    " `continuation` orb or API, `CIRCLE_CONTINUATION_KEY`) has no equivalent"
                    f" on the targets and fails there; {how}", key.span)


def parse_config(text: str, path: str, diags: Diagnostics, *,
                 pipeline_params: dict[str, str] | None = None, orb_dir: Path | None = None,
                 on_expanded: Callable[[YMap], None] | None = None) -> ir.Pipeline:
    """Parse and validate a CircleCI config. Raises ConfigError when errors were recorded.

    `pipeline_params` bind 2.1 pipeline parameters (text, typed by their declarations);
    registry orbs are read from `orb_dir` (see `frontend/orbsource.py`); `on_expanded`
    receives the tree the IR is built from (after 2.1 expansion).
    """
    root_node = load_yaml(text, path, diags)
    r = _Reader(path, diags)
    if root_node is None:
        diags.error("empty-config", "the config is empty", Span(path, 1, 1))
        raise ConfigError
    root = r.mapping(root_node, "the config")
    if root is None:
        raise ConfigError
    version = _version(r, root, diags)
    # The 2.1 expander (and the orb machinery it loads) is imported only when needed: a 2.0
    # config's cold start does without it (docs/performance.md).
    if version == "2.1":
        from cicompile.frontend.expand import expand_config

        root = expand_config(root, diags, pipeline_params=pipeline_params, orb_dir=orb_dir,
                             source=text)
    elif pipeline_params:
        from cicompile.frontend.expand import reject_pipeline_params

        reject_pipeline_params(pipeline_params, diags, root.span)
    if on_expanded is not None:
        on_expanded(root)
    for k, v in root.pairs:
        key = k.as_str()
        if key == "setup":
            _setup(r, k, v, root)
        elif key in NOT_YET_EXPANDED:
            # The 2.1 expansion consumes `job-groups`; in a 2.0 config they mean nothing.
            diags.warning("unsupported-feature", f"top-level `{key}` needs CircleCI 2.1; in"
                          f" a version {version} config it is ignored", k.span)
        elif key not in TOP_LEVEL_KEYS:
            # Top-level keys that only hold anchors (`defaults:`, `references:`) are common.
            pass
    jobs_map = r.mapping(root.get("jobs"), "`jobs`")
    jobs: list[ir.Job] = []
    if jobs_map is None:
        if root.get("jobs") is None:
            diags.error("missing-jobs", "the config defines no `jobs`", root.span)
    else:
        lowered: dict[str, str] = {}
        for k, v in jobs_map.pairs:
            name = k.as_str()
            if name.lower() in lowered:
                diags.error("duplicate-job", f"job {name!r} clashes with {lowered[name.lower()]!r}"
                            " (CircleCI compares job names case-insensitively)", k.span)
                continue
            lowered[name.lower()] = name
            job = _job(r, name, v)
            if job is not None:
                jobs.append(job)
    job_names = {j.name for j in jobs}
    workflows: list[ir.Workflow] = []
    wf_map = r.mapping(root.get("workflows"), "`workflows`")
    if wf_map is not None:
        if version == "2.0" and "version" not in wf_map:
            diags.warning("workflows-version", "CircleCI 2.0 expects `version: 2` inside"
                          " `workflows`", wf_map.span)
        orbs = root.get("orbs")
        orb_names = set(orbs.keys()) if isinstance(orbs, YMap) else set()
        placeholders: dict[str, ir.Job] = {}
        for k, v in wf_map.pairs:
            if k.as_str() == "version":
                continue
            wf = _workflow(r, k.as_str(), v, job_names, orb_names, placeholders, version)
            if wf is not None:
                workflows.append(wf)
        jobs.extend(placeholders.values())
    elif "build" in job_names:
        # No workflows: CircleCI runs the job named `build` on its own (semantics §0).
        build = next(j for j in jobs if j.name == "build")
        workflows.append(ir.Workflow(
            name="workflow",
            nodes=(ir.WorkflowNode(name="build", kind=ir.NodeKind.JOB, job="build",
                                   span=build.span),),
            span=build.span))
    elif jobs:
        diags.error("missing-workflows", "the config has no `workflows` and no job named"
                    " `build` to run by default", root.span)
    if diags.has_errors:
        raise ConfigError
    return ir.Pipeline(version=version, jobs=tuple(jobs), workflows=tuple(workflows), source=path)
