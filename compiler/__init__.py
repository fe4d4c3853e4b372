"""cicompile: compile CircleCI configs into GitHub Actions, GitLab CI, Makefile and shell.

Public API: `compile_config(text, target, path=..., pipeline_params=...)` → `Result`;
`compile_targets(text, targets, ...)` → {target: `Result`}, the same results with the front end
run once; `front_end(text, ...)` → `FrontEnd`, whose `emit(target)` → `Result`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import field
from typing import TYPE_CHECKING, Any

from cicompile.diagnostics import ConfigError, Diagnostic, Diagnostics
from cicompile.records import dataclass

if TYPE_CHECKING:
    from pathlib import Path  # annotations only: pathlib is no start-up cost

__version__ = "0.1.0"


@dataclass
class Result:
    files: dict[str, str] = field(default_factory=dict)  # relative output path → text
    diagnostics: list[Diagnostic] = field(default_factory=list)
    pipeline: object = None  # the compiled IR (cicompile.ir.Pipeline), for reports and tools
    target: str = ""
    # Each job's runner (targets.runners.RunnerUse), for the report's runner table.
    runners: list[Any] = field(default_factory=list)

    def report(self) -> str:
        """The Markdown migration report (rendered on demand: it needs jinja2)."""
        from cicompile.ir import Pipeline
        from cicompile.targets.report import render_report

        assert isinstance(self.pipeline, Pipeline)
        return render_report(self.pipeline, self.target, self.diagnostics, self.runners)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def build_ir(text: str, path: str, diags: Diagnostics, *,
             pipeline_params: dict[str, str] | None = None, orb_dir: Path | None = None,
             on_expanded: Callable[[object], None] | None = None) -> object:
    """Front end + passes. Raises ConfigError after recording errors.

    `pipeline_params`: values of 2.1 pipeline parameters, as text (`--param name=value`).
    `orb_dir`: where registry orbs' sources are (docs/orbs.md); `on_expanded` receives the
    config tree after 2.1 expansion (the `circleci` target prints it).
    """
    from cicompile.frontend.circleci import parse_config
    from cicompile.passes import PassContext, run_passes

    pipeline = parse_config(text, path, diags, pipeline_params=pipeline_params,
                            orb_dir=orb_dir, on_expanded=on_expanded)
    pipeline = run_passes(pipeline, PassContext(diags))
    if diags.has_errors:
        raise ConfigError
    return pipeline


def compile_config(text: str, target: str, *, path: str = "config.yml",
                   pipeline_params: dict[str, str] | None = None,
                   orb_dir: Path | None = None, runner_map: object = None,
                   schedules: tuple[tuple[str, str], ...] = ()) -> Result:
    """`runner_map`: a `targets.runners.RunnerMap` (`--runner-map`) overriding default runners;
    `schedules`: CircleCI's schedule triggers (project settings) as (name, cron) pairs."""
    with _collector_paused():
        return front_end(text, path=path, pipeline_params=pipeline_params, orb_dir=orb_dir,
                         runner_map=runner_map, keep_expanded=target == "circleci",
                         schedules=schedules).emit(target)


def compile_targets(text: str, targets: Iterable[str], *, path: str = "config.yml",
                    pipeline_params: dict[str, str] | None = None, orb_dir: Path | None = None,
                    runner_map: object = None,
                    schedules: tuple[tuple[str, str], ...] = ()) -> dict[str, Result]:
    """One config for several targets: {target: what `compile_config` gives for it}, with the
    front end and passes run once (the IR is immutable, so every target reads the same one)."""
    chosen = list(dict.fromkeys(targets))
    with _collector_paused():
        front = front_end(text, path=path, pipeline_params=pipeline_params, orb_dir=orb_dir,
                          runner_map=runner_map, keep_expanded="circleci" in chosen,
                          schedules=schedules)
        return {t: front.emit(t) for t in chosen}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic GC off for one compile (nested pauses keep it off until the outermost
    ends). The IR is acyclic and short-lived: the collector would only rescan a heap that
    grows with the config (it made 10,000-job configs take 2.5x longer). One pause spans the
    whole of `compile_config`: re-enabled between the front end and a target, it ran a
    collection over the whole IR there (about 10% of a 10,000-job compile)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class FrontEnd:
    """A config through the front end and passes, ready to be emitted for any target.

    `pipeline` is None when the config has errors (`diagnostics` says which); `emit` then gives
    every target the same failed `Result`, as `compile_config` would.
    """

    pipeline: object
    diagnostics: list[Diagnostic]
    expanded: object = None  # the tree after 2.1 expansion, kept for the `circleci` target
    runner_map: object = None
    schedules: tuple[tuple[str, str], ...] = ()  # --schedule NAME=CRON

    def emit(self, target: str) -> Result:
        """What `compile_config(text, target)` gives; raises for a bug in the target only."""
        from cicompile.ir import Pipeline
        from cicompile.targets import get_target
        from cicompile.targets.base import EmitContext

        if self.pipeline is None:
            return Result({}, list(self.diagnostics))
        assert isinstance(self.pipeline, Pipeline)
        # Each target records into its own sink, seeded with the front end's diagnostics:
        # targets never see another target's warnings.
        diags = Diagnostics(list(self.diagnostics))
        ctx = EmitContext(diags, expanded=self.expanded,
                          runner_map=self.runner_map,  # type: ignore[arg-type]
                          schedules=self.schedules)
        try:
            with _collector_paused():
                files = get_target(target).emit(self.pipeline, ctx)
        except ConfigError:
            return Result({}, diags.sorted())
        if diags.has_errors:
            return Result({}, diags.sorted())
        return Result(files, diags.sorted(), self.pipeline, target, ctx.runner_uses)


def front_end(text: str, *, path: str = "config.yml",
              pipeline_params: dict[str, str] | None = None, orb_dir: Path | None = None,
              runner_map: object = None, keep_expanded: bool = False,
              schedules: tuple[tuple[str, str], ...] = ()) -> FrontEnd:
    """Load, validate, expand and run the passes once; `FrontEnd.emit` then per target.

    `keep_expanded`: keep the expanded tree, which only the `circleci` target prints.
    """
    diags = Diagnostics()
    kept: list[object] = []
    try:
        with _collector_paused():
            pipeline = build_ir(text, path, diags, pipeline_params=pipeline_params,
                                orb_dir=orb_dir, on_expanded=kept.append if keep_expanded else None)
    except ConfigError:
        return FrontEnd(None, diags.sorted(), runner_map=runner_map, schedules=schedules)
    return FrontEnd(pipeline, diags.sorted(), kept[0] if kept else None, runner_map, schedules)
