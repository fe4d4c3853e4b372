"""The intermediate representation: what every target compiles from.

All nodes are frozen; sequences are tuples; maps are tuples of pairs, so IR values are
hashable and comparable (spans are excluded from comparison). Passes rewrite with
``dataclasses.replace``. The front end builds the IR; passes fill in the derived fields
marked "derived" below; targets only read it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import field

from cicompile.conditions import TRUE, Cond, Pattern
from cicompile.diagnostics import Span
from cicompile.records import dataclass

Env = tuple[tuple[str, str], ...]

DEFAULT_WORKING_DIRECTORY = "~/project"


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


class ExecutorKind(enum.StrEnum):
    DOCKER = "docker"
    MACHINE = "machine"
    MACOS = "macos"
    WINDOWS = "windows"
    NONE = "none"  # 2.0 examples that omit the executor; run on the default host


class StepWhen(enum.StrEnum):
    ON_SUCCESS = "on_success"
    ON_FAIL = "on_fail"
    ALWAYS = "always"


class NodeKind(enum.StrEnum):
    JOB = "job"
    APPROVAL = "approval"


class JobStatus(enum.StrEnum):
    """A terminal status of a required job, for flexible `requires` (semantics §5.3)."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"
    UNAUTHORIZED = "unauthorized"
    NOT_RUN = "not_run"


SUCCESS_ONLY = frozenset({JobStatus.SUCCESS})
TERMINAL: frozenset[JobStatus] = frozenset(JobStatus)  # `terminal`: any of the five
# In a `serial-group` name: a pipeline value known at run time (`<< pipeline.git.branch >>`
# is `${CIRCLE_BRANCH}`), which targets substitute with their own run-time value.
RUNTIME_REF = re.compile(r"\$\{(CIRCLE_[A-Z0-9_]+)\}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerImage:
    image: str
    name: str | None = None
    environment: Env = ()
    entrypoint: tuple[str, ...] = ()  # argv (a string in the config is split into words)
    command: tuple[str, ...] = ()  # argv
    user: str | None = None
    has_auth: bool = False  # `auth` or `aws_auth`
    auth: Env = ()  # `auth`: username / password as written (`$VAR` for secrets)
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Executor:
    kind: ExecutorKind
    images: tuple[DockerImage, ...] = ()  # docker: primary first, then services
    machine_image: str | None = None
    xcode: str | None = None
    resource_class: str | None = None
    span: Span | None = _span()


# ---- steps -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    command: str
    name: str
    shell: str | None = None
    environment: Env = ()
    working_directory: str | None = None
    background: bool = False
    when: StepWhen = StepWhen.ON_SUCCESS
    # Seconds; None: CircleCI's default (10 minutes), which targets apply where they can.
    no_output_timeout: int | None = None
    max_auto_reruns: int = 0  # further attempts after a failure (1..5 when set)
    auto_rerun_delay: int = 0  # seconds between attempts
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkout:
    path: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistToWorkspace:
    root: str
    paths: tuple[str, ...]
    layer: int = 0  # derived: index of this persist step within its job (0, 1, ...)
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachWorkspace:
    at: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPart:
    """One piece of a cache-key template: literal `text`, or a value computed at run time.

    kind: text | checksum (value = file) | branch | revision | build_num | checkout_key |
    env (value = variable name) | epoch | arch.
    """

    kind: str
    value: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveCache:
    key: str
    paths: tuple[str, ...]
    key_parts: tuple[KeyPart, ...] = ()
    name: str | None = None
    when: StepWhen = StepWhen.ON_SUCCESS
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreCache:
    keys: tuple[str, ...]
    key_parts: tuple[tuple[KeyPart, ...], ...] = ()
    name: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreArtifacts:
    path: str
    destination: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreTestResults:
    path: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupRemoteDocker:
    """A Docker engine for `docker` commands of the job (semantics §3.4)."""

    version: str | None = None
    docker_layer_caching: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class AddSshKeys:
    """Project SSH keys into the job's agent (semantics §3.12); () means all of them."""

    fingerprints: tuple[str, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsupported:
    """A step the targets cannot translate yet; kept so they can say so at the spot."""

    name: str
    reason: str
    span: Span | None = _span()


Step = (
    Run
    | Checkout
    | PersistToWorkspace
    | AttachWorkspace
    | SaveCache
    | RestoreCache
    | StoreArtifacts
    | StoreTestResults
    | SetupRemoteDocker
    | AddSshKeys
    | Unsupported
)


# ---- jobs, filters, workflows ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A job definition under `jobs:`."""

    name: str
    executor: Executor
    steps: tuple[Step, ...]
    environment: Env = ()
    working_directory: str = DEFAULT_WORKING_DIRECTORY
    shell: str | None = None
    parallelism: int = 1
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class RefFilter:
    """`only` / `ignore` of one `branches:` or `tags:` filter; None means the key is absent."""

    only: tuple[Pattern, ...] | None = None
    ignore: tuple[Pattern, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    branches: RefFilter | None = None
    tags: RefFilter | None = None
    # An expression filter (`filters: pipeline.git.branch == "main"`, semantics §5.5),
    # lowered; it replaces the branch and tag rules.
    expression: Cond | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkspaceLayer:
    """The tarball persisted by one `persist_to_workspace` step of one workflow node."""

    node: str
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowNode:
    """One entry of `workflows.<wf>.jobs`: a job invocation or an approval hold."""

    name: str  # unique within the workflow; what `requires` refers to
    kind: NodeKind
    job: str | None  # the job definition invoked (None for approvals)
    requires: tuple[str, ...] = ()
    # Flexible requires: the statuses a requirement may end in for this node to start, only
    # for requirements that accept more or other than `success` (the default).
    require_statuses: tuple[tuple[str, frozenset[JobStatus]], ...] = ()
    filters: Filters = field(default_factory=Filters)
    context: tuple[str, ...] = ()
    serial_group: str | None = None  # `serial-group`: runs one at a time with its group
    span: Span | None = _span()
    # derived by passes
    needs: tuple[str, ...] = ()  # `requires` after transitive reduction
    exists: Cond = TRUE  # when this node is part of the pipeline (filters + requires rule)
    layers: tuple[WorkspaceLayer, ...] = ()  # ancestors' workspace layers, in apply order

    def allowed(self, requirement: str) -> frozenset[JobStatus]:
        """The statuses of `requirement` that let this node start (`success` by default)."""
        for name, statuses in self.require_statuses:
            if name == requirement:
                return statuses
        return SUCCESS_ONLY

    @property
    def flexible(self) -> bool:
        """Some requirement accepts a status other than plain `success`."""
        return bool(self.require_statuses)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """One `triggers: - schedule:` entry: a POSIX cron line (UTC) and its branch filter."""

    cron: str
    branches: RefFilter
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    name: str
    nodes: tuple[WorkflowNode, ...]  # in topological order after passes (stable by source)
    # Non-empty: the workflow runs only on these schedules, never on a push (semantics §5.7).
    schedules: tuple[Schedule, ...] = ()
    max_auto_reruns: int = 0  # workflow-level automatic reruns of failed jobs (§5.1)
    # Workflow `when`/`unless` that depends on run-time pipeline values, lowered (§5.1).
    condition: Cond = TRUE
    # Its `when`/`unless` or an expression filter reads `pipeline.trigger_source`: it runs on
    # push and on scheduled pipelines alike, its conditions decide (semantics §5.7).
    reads_trigger: bool = False
    span: Span | None = _span()
    _by_name: dict[str, WorkflowNode] = field(
        default_factory=dict, init=False, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        self._by_name.update((n.name, n) for n in self.nodes)

    def node(self, name: str) -> WorkflowNode:
        return self._by_name[name]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    version: str
    jobs: tuple[Job, ...]
    workflows: tuple[Workflow, ...]
    source: str = "config.yml"
    _by_name: dict[str, Job] = field(
        default_factory=dict, init=False, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        self._by_name.update((j.name, j) for j in self.jobs)

    def job(self, name: str) -> Job:
        return self._by_name[name]
