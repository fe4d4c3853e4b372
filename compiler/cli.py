"""The `cicompile` command line."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click
from cicompile import Result, __version__, compile_targets
from cicompile.diagnostics import Diagnostic, render_github, render_json, render_text

if TYPE_CHECKING:
    from pathlib import Path

TARGETS = ("github", "gitlab", "make", "shell", "circleci")
# `--target all`: the migration targets (`circleci`, the processed config, is no migration).
ALL_TARGETS = ("github", "gitlab", "make", "shell")
# Registry orbs' sources (docs/orbs.md); `cicompile orbs fetch` fills such a directory.
ORB_DIR_OPTION = click.option(
    "--orb-dir", type=click.Path(file_okay=False, exists=True),
    help="Read registry orbs (ns/orb@version) from this directory (see `cicompile orbs fetch`).")

EPILOG = """\b
Examples:
  cicompile --target github .circleci/config.yml
  cicompile --target gitlab -o . .circleci/config.yml     # writes ./.gitlab-ci.yml
  cicompile --target make -o out .circleci/config.yml     # writes out/Makefile
  cicompile --target shell -o . .circleci/config.yml && bash ci.sh
  cicompile --target github -o . --report MIGRATION.md .circleci/config.yml
  cicompile --target github -o . --check .circleci/config.yml   # CI: is the output current?
  cicompile --target all -o . .circleci/config.yml        # github, gitlab, make and shell
  cicompile orbs fetch .circleci/config.yml --orb-dir .circleci/orbs   # registry orbs, locked
  cicompile --target circleci --orb-dir .circleci/orbs .circleci/config.yml  # expanded config

\b
Exit status: 0 compiled; 1 the config has errors (nothing is written), or --check
found differences;
2 usage error; 3 internal error (a bug: please report it).
Diagnostics go to stderr as `path:line:col: severity: message [code]`.
"""


def _write_atomically(where: str | Path, text: str, mode: int | None = None) -> None:
    import tempfile  # imported here: it pulls in shutil, random, bz2, lzma (cold start)
    from pathlib import Path

    path = Path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _diff_against(output_dir: str, files: dict[str, str]) -> bool:
    """Print a unified diff of each file under output_dir against what would be generated."""
    import difflib
    from pathlib import Path

    changed = False
    for rel, new in sorted(files.items()):
        path = Path(output_dir) / rel
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        if old == new:
            continue
        changed = True
        diff = difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            str(path) if old is not None else "/dev/null",
            str(path),
        )
        click.echo("".join(diff), nl=False)
    return changed


def _render(diags: list[Diagnostic], fmt: str) -> str:
    if fmt == "json":
        return render_json(diags)
    if fmt == "github":
        return render_github(diags)
    text = render_text(diags)
    if _colour():
        for sev, colour in (("error", "red"), ("warning", "yellow"), ("note", "cyan")):
            text = text.replace(f": {sev}: ", ": " + click.style(sev, fg=colour, bold=True) + ": ")
    return text


def _colour() -> bool:
    """Colour only for a person at a terminal (https://no-color.org)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def _pathlib_text(path: str) -> str:
    """`str(pathlib.Path(path))` without importing pathlib (and with it urllib.parse and
    ipaddress) on every start: repeated and trailing slashes and `.` parts dropped, a leading
    `//` kept. Diagnostics and outputs name the config as pathlib printed it."""
    rel = path.lstrip("/")
    lead = len(path) - len(rel)
    root = "//" if lead == 2 else "/" if lead else ""
    return root + "/".join(p for p in rel.split("/") if p and p != ".") or "."


def _as_pathlib_shows(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _pathlib_text(value)


class _DefaultGroup(click.Group):
    """`cicompile ARGS` means `cicompile compile ARGS` unless ARGS start with a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help",
                                                                       "--version"):
            args = ["compile", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="cicompile")
def main() -> None:
    """Compile CircleCI configs (version 2.0 or 2.1) for GitHub Actions, GitLab CI, make, bash.

    `cicompile --target T CONFIG` is short for `cicompile compile --target T CONFIG`.
    """


@main.command("compile", context_settings={"help_option_names": ["-h", "--help"]},
              epilog=EPILOG)
@click.option("-t", "--target", "targets", type=click.Choice([*TARGETS, "all"]), multiple=True,
              required=True, help="What to generate (repeatable; `all`: github, gitlab, make"
              " and shell). Several targets share one front-end run.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False),
              help="Write files under this directory instead of printing them.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="How diagnostics are printed on stderr.")
@click.option("--check", is_flag=True,
              help="With -o: exit 1 and print a diff when the files there are not what would be"
              " generated. Writes nothing.")
@click.option("--diff", "show_diff", is_flag=True,
              help="With -o: print what would change there, without writing or failing.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Set a 2.1 pipeline parameter (repeatable); typed by its declaration.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write a Markdown migration report (manual tasks, secrets, approximations).")
@click.option("--schedule", "schedules", multiple=True, metavar="NAME=CRON",
              help="A CircleCI schedule trigger of the project settings (repeatable): its"
              " name (`pipeline.schedule.name`) and cron. GitHub workflows that run on"
              " scheduled pipelines get the cron, and their gate maps it back to the name.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only (no warnings or notes).")
@click.option("-v", "--verbose", is_flag=True, help="Also say which files were written.")
@ORB_DIR_OPTION
@click.option("--runner-map", "runner_map_path",
              type=click.Path(dir_okay=False, exists=True), callback=_as_pathlib_shows,
              help="YAML rules that override the default GitHub runners / GitLab tags"
              " (schema: docs/targets.md).")
@click.argument("config", type=click.Path(dir_okay=False, allow_dash=True),
                callback=_as_pathlib_shows)
def compile_command(
    targets: tuple[str, ...],
    output_dir: str | None,
    fmt: str,
    check: bool,
    show_diff: bool,
    report_path: str | None,
    params: tuple[str, ...],
    quiet: bool,
    verbose: bool,
    config: str,
    orb_dir: str | None = None,
    runner_map_path: str | None = None,
    schedules: tuple[str, ...] = (),
) -> None:
    """Compile a CircleCI CONFIG (.circleci/config.yml, version 2.0 or 2.1) for another CI."""
    if (check or show_diff) and output_dir is None:
        raise click.UsageError("--check and --diff compare with the files under -o DIR")
    chosen = [t for name in targets for t in (ALL_TARGETS if name == "all" else (name,))]
    chosen = list(dict.fromkeys(chosen))
    if report_path is not None and len(chosen) > 1:
        raise click.UsageError("--report describes the migration to one target: give one"
                               " --target")
    if config == "-":
        text, shown = sys.stdin.read(), "<stdin>"
    else:
        text, shown = _read(config), config
    pipeline_params = _params(params)
    declared = _schedules(schedules)
    runner_map = _runner_map(runner_map_path, fmt) if runner_map_path is not None else None
    try:
        results = compile_targets(text, chosen, path=shown, pipeline_params=pipeline_params,
                                  orb_dir=_as_path(orb_dir), runner_map=runner_map,
                                  schedules=declared)
    except Exception as exc:  # a bug in cicompile, not in the config
        if os.environ.get("CICOMPILE_DEBUG"):
            raise
        click.echo(f"{shown}: error: internal error in cicompile ({type(exc).__name__}: {exc});"
                   " please report it, with CICOMPILE_DEBUG=1 output [internal-error]", err=True)
        sys.exit(3)
    diags = _merged_diagnostics(results)
    shown_diags = [d for d in diags if not quiet or d.severity == "error"]
    if shown_diags:
        click.echo(_render(shown_diags, fmt), err=True, nl=False)
    if not all(r.ok for r in results.values()):
        sys.exit(1)
    files = {rel: content for r in results.values() for rel, content in r.files.items()}
    if output_dir is not None and (check or show_diff):
        changed = _diff_against(output_dir, files)
        if check and changed:
            sys.exit(1)
        return
    if report_path is not None:
        _write_atomically(report_path, results[chosen[0]].report())
    if output_dir is not None:
        from pathlib import Path

        for rel, content in sorted(files.items()):
            mode = 0o755 if rel.endswith(".sh") else None
            _write_atomically(Path(output_dir) / rel, content, mode)
            if verbose:
                click.echo(f"wrote {Path(output_dir) / rel}", err=True)
        return
    if len(files) == 1:
        click.echo(next(iter(files.values())), nl=False)
        return
    for i, (rel, content) in enumerate(sorted(files.items())):
        if i:
            click.echo("")
        click.echo(f"# ==> {rel} <==")
        click.echo(content, nl=False)


def _merged_diagnostics(results: dict[str, Result]) -> list[Diagnostic]:
    """The diagnostics of several targets, each once: one that only some of the targets
    report (a target's own approximation) names them at the start of its message."""
    if len(results) == 1:
        return next(iter(results.values())).diagnostics
    reported_by: dict[Diagnostic, list[str]] = {}
    for target, result in results.items():
        for d in result.diagnostics:
            reported_by.setdefault(d, []).append(target)
    out = [d if len(ts) == len(results)
           else Diagnostic(d.severity, d.code, f"{', '.join(ts)}: {d.message}", d.span)
           for d, ts in reported_by.items()]
    return sorted(out, key=Diagnostic.sort_key)


@main.command("graph", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Set a 2.1 pipeline parameter (repeatable).")
@ORB_DIR_OPTION
@click.argument("config", type=click.Path(dir_okay=False, allow_dash=True),
                callback=_as_pathlib_shows)
def graph_command(fmt: str, params: tuple[str, ...], config: str,
                  orb_dir: str | None = None) -> None:
    """Draw each workflow's job graph: approvals as distinct shapes, filters as labels,
    edges implied by others (dropped from `needs`) dashed."""
    from cicompile import build_ir
    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.graph import to_dot, to_mermaid
    from cicompile.ir import Pipeline

    text = sys.stdin.read() if config == "-" else _read(config)
    diags = Diagnostics()
    try:
        pipeline = build_ir(text, config, diags, pipeline_params=_params(params),
                            orb_dir=_as_path(orb_dir))
    except ConfigError:
        click.echo(render_text(diags.sorted()), err=True, nl=False)
        sys.exit(1)
    assert isinstance(pipeline, Pipeline)
    click.echo(to_dot(pipeline) if fmt == "dot" else to_mermaid(pipeline), nl=False)


def _runner_map(path: str, fmt: str) -> object:
    """The parsed --runner-map; a bad file prints positioned errors and exits 1."""
    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.targets.runners import load_runner_map

    diags = Diagnostics()
    try:
        return load_runner_map(_read(path), path, diags)
    except ConfigError:
        click.echo(_render(diags.sorted(), fmt), err=True, nl=False)
        sys.exit(1)


def _params(items: tuple[str, ...]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        out[name] = value
    return out or None


def _schedules(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--schedule NAME=CRON` values; GitHub tells schedules apart by cron only, so two
    schedules may not share one."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, cron = (part.strip() for part in item.partition("="))
        if not eq or not name or len(cron.split()) != 5:
            raise click.BadParameter(f"{item!r} is not NAME=CRON (five cron fields)",
                                     param_hint="--schedule")
        cron = " ".join(cron.split())
        if name in out:
            raise click.BadParameter(f"schedule {name!r} is given twice",
                                     param_hint="--schedule")
        if cron in out.values():
            raise click.BadParameter(f"schedules {name!r} and"
                                     f" {next(n for n, c in out.items() if c == cron)!r} share"
                                     f" the cron {cron!r}: GitHub could not tell them apart",
                                     param_hint="--schedule")
        out[name] = cron
    return tuple(out.items())


def _read(config: str) -> str:
    try:
        with open(config, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {config}: {exc}") from exc


def _as_path(value: str | None) -> Path | None:
    """click gives paths as str: pathlib (which imports urllib.parse and ipaddress) is loaded
    only where a Path is needed, not on the start-up path of every run (cold start)."""
    if value is None:
        return None
    from pathlib import Path

    return Path(value)


@main.command("audit", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-t", "--target", "targets", type=click.Choice(TARGETS), multiple=True,
              help="Targets to compile for (repeatable; default: all).")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False),
              help="Also write the summary as Markdown.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the full results as JSON.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def audit_command(targets: tuple[str, ...], md_path: str | None, json_path: str | None,
                  paths: tuple[str, ...]) -> None:
    """Compile many configs (files, or folders holding .circleci/config.yml) and summarise:
    jobs, workflows, approximated and unsupported constructs, manual tasks. One bad config
    never stops the batch; the exit status is 1 if any config did not compile."""
    from cicompile.audit import (
        audit_config,
        find_configs,
        render_json,
        render_markdown,
        render_table,
        table_rows,
    )

    # By default the migration targets only: `circleci` (the processed config) is no migration.
    chosen = list(targets) or [t for t in TARGETS if t != "circleci"]
    configs = find_configs([p for p in map(_as_path, paths) if p is not None])
    if not configs:
        raise click.UsageError("no CircleCI config found under the given paths")
    audits = []
    show_bar = len(configs) > 3 and sys.stderr.isatty()
    with click.progressbar(configs, label="auditing", file=sys.stderr,
                           hidden=not show_bar) as bar:
        for cfg in bar:
            audits.append(audit_config(cfg, chosen))
    click.echo(render_table(table_rows(audits, chosen)), nl=False)
    if md_path is not None:
        _write_atomically(md_path, render_markdown(audits, chosen))
    if json_path is not None:
        _write_atomically(json_path, render_json(audits))
    if not all(a.ok for a in audits):
        sys.exit(1)


@main.group("orbs", context_settings={"help_option_names": ["-h", "--help"]})
def orbs_group() -> None:
    """Registry orbs: get their sources for offline compilation (--orb-dir)."""


@orbs_group.command("fetch", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--orb-dir", required=True, type=click.Path(file_okay=False),
              help="Where to write the orb sources and orbs.lock (created if missing).")
@click.option("--registry", default="https://circleci.com", show_default=True,
              help="The orb registry (its GraphQL API is REGISTRY/graphql-unstable).")
@click.argument("config", type=click.Path(dir_okay=False, allow_dash=True),
                callback=_as_pathlib_shows)
def orbs_fetch_command(orb_dir: str, registry: str, config: str) -> None:
    """Download the source of every registry orb CONFIG imports (and the orbs those import)
    into ORB_DIR as packed YAML, and record version and sha256 in ORB_DIR/orbs.lock."""
    from pathlib import Path

    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.frontend.yaml_loader import YMap, load_yaml
    from cicompile.orbfetch import FetchError, fetch_orbs, orb_refs

    text = sys.stdin.read() if config == "-" else _read(config)
    diags = Diagnostics()
    try:
        root = load_yaml(text, config, diags)
    except ConfigError:
        click.echo(render_text(diags.sorted()), err=True, nl=False)
        sys.exit(1)
    refs, skipped = orb_refs(root) if isinstance(root, YMap) else ([], [])
    try:
        result = fetch_orbs(refs, Path(orb_dir), registry)
    except (FetchError, OSError) as exc:
        click.echo(f"{config}: error: {exc} [orb-fetch]", err=True)
        sys.exit(1)
    for ref in [*skipped, *result.skipped]:
        click.echo(f"{config}: warning: orb {ref!r} is not a fixed `ns/name@version`; not"
                   " fetched [orb-fetch]", err=True)
    for f in result.fetched:
        click.echo(f"fetched {f.ref} ({f.version}) -> {Path(orb_dir) / f.file}", err=True)
