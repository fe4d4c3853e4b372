"""The `cicompile` command line."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

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
Exit status (every command; docs/cli.md):
  0  done (--check: the files are current)
  1  the config has errors (nothing is written), --check found differences,
     audit: some config did not compile, orbs fetch: the registry failed
  2  usage error: a bad option, an unreadable input, an unwritable output or one
     that would replace a file cicompile did not generate (--force)
  3  internal error (a bug: please report it; audit: after the whole batch)
  130  interrupted (Ctrl-C)
Diagnostics go to stderr as `path:line:col: severity: message [code]`.
"""
# The group's own help adds the subcommands and shell completion.
MAIN_EPILOG = EPILOG + """
\b
Other commands (each has --help):
  cicompile graph .circleci/config.yml > graph.mmd     # workflows as Mermaid (or --format dot)
  cicompile audit ~/src/*/ --markdown audit.md         # many repositories at once

\b
Shell completion (bash; zsh: zsh_source, fish: fish_source), e.g. in ~/.bashrc:
  eval "$(_CICOMPILE_COMPLETE=bash_source cicompile)"
"""
GRAPH_EPILOG = """\b
Examples:
  cicompile graph .circleci/config.yml                 # Mermaid: paste into a ```mermaid block
  cicompile graph --format dot .circleci/config.yml | dot -Tsvg > workflows.svg
  cicompile graph -p deploy=true .circleci/config.yml  # 2.1: with a pipeline parameter

\b
Exit status: 0 drawn; 1 the config has errors; 2 usage error or unreadable CONFIG;
3 internal error.
"""
AUDIT_EPILOG = """\b
Examples:
  cicompile audit .                                    # .circleci/config.yml below here
  cicompile audit ~/src/*/ --markdown audit.md --json audit.json
  cicompile audit -t github -t gitlab repos/ other/config.yml

\b
Status per target: clean, or N~ approximated and M! unsupported constructs, or the
number of errors; `unreadable` or CRASH (a bug in cicompile). The JSON schema is in
docs/cli.md. A progress bar is shown when stderr is a terminal.
Exit status: 0 every config compiled; 1 some did not; 2 usage error, no config found
or an unwritable --markdown/--json file; 3 cicompile crashed on a config (CRASH).
"""
ORBS_EPILOG = """\b
Examples:
  cicompile orbs fetch .circleci/config.yml --orb-dir .circleci/orbs
  cicompile --target github --orb-dir .circleci/orbs .circleci/config.yml

\b
Exit status: 0 fetched; 1 the config cannot be parsed or the registry failed;
2 usage error, unreadable CONFIG or unwritable --orb-dir; 3 internal error.
"""


class _PathError(click.ClickException):
    """A path given on the command line that cannot be read or written: exit status 2, as
    for any other unusable argument (docs/cli.md, exit status)."""

    exit_code = 2


def _write_files(files: dict[str, str], modes: dict[str, int], verbose: bool = False) -> None:
    """Every file or, on any error, none: each is written next to its destination, then all
    are renamed into place. Modes follow the umask, as for files the user creates."""
    import tempfile  # imported here: it pulls in shutil, random, bz2, lzma (cold start)
    from pathlib import Path

    umask = os.umask(0o022)  # os has no getter: set, then restore what it returned
    os.umask(umask)
    staged: list[tuple[str, Path]] = []
    created: list[str] = []  # folders made for the files, outermost first

    def undo() -> None:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for folder in reversed(created):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # not empty: a file was renamed into it, or someone else's

    where = ""
    try:
        for where, text in files.items():
            path = Path(where)
            missing, up = [], os.path.dirname(where)
            while up and not os.path.isdir(up):
                missing.append(up)
                up = os.path.dirname(up)
            path.parent.mkdir(parents=True, exist_ok=True)
            created.extend(reversed(missing))
            if path.is_dir():  # the one failure left to the renames: caught before any
                raise IsADirectoryError(21, "Is a directory", where)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.chmod(tmp, modes.get(where, 0o666) & ~umask)
        for tmp, path in staged:
            where = str(path)
            os.replace(tmp, path)
            if verbose:
                click.echo(f"wrote {path}", err=True)
    except OSError as exc:
        undo()
        reason = str(exc.strerror or exc)
        if exc.filename and str(exc.filename) != where:
            reason += f" ({exc.filename})"
        raise _PathError(f"cannot write {where}: {reason}") from exc
    except BaseException:
        undo()
        raise


def _stale_workflows(output_dir: str, files: dict[str, str], source: str
                     ) -> tuple[dict[str, str], dict[str, str]]:
    """GitHub workflow files that cicompile generated from a config of this name for a
    workflow this config does not have (renamed or removed: it would keep running on GitHub),
    as (this config's own: to remove, the others: kept), each with the workflow's name.

    The notice names the config's file only (`config.yml`), as do other configs' of that
    name compiled into the same folder, so a file is taken for this config's own only when
    the config is DIR/.circleci/NAME (DIR is its repository) and the file has the name
    cicompile gives the workflow on its second line (not a user's renamed copy)."""
    import re

    from cicompile.targets.base import GENERATED_NOTICE, sanitize_id

    name = source.rsplit("/", 1)[-1]
    notice = "# " + GENERATED_NOTICE.format(source=name) + "\n"
    folder = os.path.join(output_dir, ".github", "workflows")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return {}, {}
    own = source != "<stdin>" and os.path.realpath(os.path.dirname(source) or ".") == (
        os.path.realpath(os.path.join(output_dir, ".circleci")))
    stale: dict[str, str] = {}
    kept: dict[str, str] = {}
    for file in names:
        rel = f".github/workflows/{file}"
        stem, dot, ext = file.rpartition(".")
        if ext not in ("yml", "yaml") or rel in files:
            continue
        try:
            with open(os.path.join(folder, file), encoding="utf-8", newline="") as f:
                first, second = f.readline(), f.readline()
        except (OSError, UnicodeDecodeError):
            continue
        workflow = second.rstrip("\r\n").removeprefix("# CircleCI workflow: ")
        if first.replace("\r\n", "\n") != notice or workflow == second.rstrip("\r\n"):
            continue
        # unique_ids() numbers workflows whose ids collide: ci, ci-2, ...
        if own and re.fullmatch(re.escape(sanitize_id(workflow)) + r"(-[0-9]+)?", stem):
            stale[rel] = workflow
        else:
            kept[rel] = workflow
    return stale, kept


def _not_generated(paths: list[str], source: str) -> list[str]:
    """The existing files among paths that this config did not generate, each with why: a
    repository's own Makefile or workflow, or another config's generated file (a setup
    config and its continuation both with a workflow `main`), must not be replaced by a
    generated one unnoticed."""
    import re

    name = source.rsplit("/", 1)[-1]
    foreign = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except OSError:
            continue  # missing, or a folder or unreadable file that the write reports
        # The notice starts the first line, or the second after ci.sh's shebang.
        lines = head.splitlines()[:2]
        if not any(line.startswith((b"# Generated by cicompile ", b"# Processed by cicompile "))
                   for line in lines):
            foreign.append(f"{path}: not generated by cicompile")
            continue
        # Standard input has no name to compare: its files and it match any config.
        other = next((m.group(1).decode("utf-8", "replace") for line in lines
                      if (m := re.match(rb"# Generated by cicompile from (.+)\. Do not edit",
                                        line))), name)
        # The make and shell notices name the config as given, the others its file name.
        if "<stdin>" not in (name, other) and other.rsplit("/", 1)[-1] != name:
            foreign.append(f"{path}: generated by cicompile from {other}, not from {name}")
    return foreign


def _read_only(paths: list[str]) -> list[str]:
    """Existing files among paths that their owner made read-only: renaming the new file into
    place would replace them where writing to them fails (a read-only file is a lock)."""
    # The mode bits too: root may write to anything, but a file without them is still meant
    # not to change.
    return [p for p in paths if os.path.isfile(p)
            and (not os.access(p, os.W_OK) or not os.stat(p).st_mode & 0o222)]


def _diff_against(output_dir: str, files: dict[str, str], stale: list[str]) -> bool:
    """Print a unified diff of each file under output_dir against what would be generated
    (stale workflows as deletions); True if writing would change anything."""
    import difflib
    from pathlib import Path

    changed = False
    for rel, new in sorted({**files, **dict.fromkeys(stale, "")}.items()):
        path = Path(output_dir) / rel
        try:
            # newline="": a file with CRLF line endings is not what cicompile writes.
            with open(path, encoding="utf-8", newline="") as f:
                old: str | None = f.read()
        except FileNotFoundError:
            old = None
        except UnicodeDecodeError:
            changed = True
            click.echo(f"Files {path} and generated differ ({path} is not UTF-8 text)")
            continue
        except OSError as exc:
            raise _PathError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if old == new and rel not in stale:
            continue
        changed = True
        if old is not None and "\r\n" in old:
            old = old.replace("\r\n", "\n")
            click.echo(f"Files {path} and generated differ in line endings ({path} has CRLF,"
                       " cicompile writes LF)")
            if old == new:
                continue
        diff = difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            str(path) if old is not None else "/dev/null",
            str(path) if rel not in stale else "/dev/null",
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

    def invoke(self, ctx: click.Context) -> object:
        """An I/O failure no command turned into a message (a full disk under stdout) is an
        unusable output, exit 2, not a traceback; click itself handles a closed pipe."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # 128 + SIGINT, as shells report it; click's own 1 would read "the config has
            # errors" (docs/cli.md, exit status).
            click.echo("\nAborted!", err=True)
            sys.exit(130)
        except OSError as exc:
            if exc.errno == 32:  # EPIPE
                raise
            where = f"cannot use {exc.filename}" if exc.filename else "cannot write the output"
            raise _PathError(f"{where}: {exc.strerror or exc}") from exc


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=MAIN_EPILOG)
@click.version_option(__version__, prog_name="cicompile")
def main() -> None:
    """Compile CircleCI configs (version 2.0 or 2.1) for GitHub Actions, GitLab CI, make, bash.

    `cicompile --target T CONFIG` is short for `cicompile compile --target T CONFIG`.
    """


@main.command("compile", context_settings={"help_option_names": ["-h", "--help"]},
              epilog=EPILOG, short_help="Compile a config for GitHub, GitLab, make or bash"
              " (the default command).")
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
@click.option("-q", "--quiet", is_flag=True, help="Print errors only (no warnings or notes):"
              " the --report still lists them.")
@click.option("-v", "--verbose", is_flag=True, help="Also say which files were written (a removed"
              " stale workflow is always said).")
@click.option("--force", is_flag=True, help="With -o: overwrite files there that this config did"
              " not generate (a hand-written Makefile, a workflow of the same name, another"
              " config's, a read-only file).")
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
    force: bool = False,
) -> None:
    """Compile a CircleCI CONFIG (.circleci/config.yml, version 2.0 or 2.1) for another CI."""
    if (check or show_diff) and output_dir is None:
        raise click.UsageError("--check and --diff compare with the files under -o DIR")
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: give one")
    chosen = _chosen_targets(targets)
    if report_path is not None and (check or show_diff):
        raise click.UsageError("--check and --diff write nothing, not even the --report:"
                               " give it without them")
    if report_path is not None and len(chosen) > 1:
        raise click.UsageError("--report describes the migration to one target: give one"
                               " --target")
    text, shown = _read_config(config)
    pipeline_params = _params(params)
    declared = _schedules(schedules)
    runner_map = _runner_map(runner_map_path, fmt) if runner_map_path is not None else None
    try:
        results = compile_targets(text, chosen, path=shown, pipeline_params=pipeline_params,
                                  orb_dir=_as_path(orb_dir), runner_map=runner_map,
                                  schedules=declared)
    except Exception as exc:  # a bug in cicompile, not in the config
        _internal_error(shown, exc)
    diags = _merged_diagnostics(results)
    shown_diags = [d for d in diags if not quiet or d.severity == "error"]
    if shown_diags:
        click.echo(_render(shown_diags, fmt), err=True, nl=False)
    if not all(r.ok for r in results.values()):
        sys.exit(1)
    files = {rel: content for r in results.values() for rel, content in r.files.items()}
    stale, kept = (_stale_workflows(output_dir, files, shown)
                   if output_dir is not None and "github" in chosen else ({}, {}))
    name = shown.rsplit("/", 1)[-1]
    if not quiet:
        for rel, workflow in kept.items():
            click.echo(f"kept {_pathlib_text(os.path.join(str(output_dir), rel))}: generated from a"
                       f" {name} for the workflow {workflow!r}, which this config does not"
                       " have; unless it is another config's, remove it (cicompile removes"
                       " only the stale workflows of"
                       f" {_pathlib_text(os.path.join(str(output_dir), '.circleci', name))})",
                       err=True)
    if output_dir is not None and (check or show_diff):
        changed = _diff_against(output_dir, files, list(stale))
        if check and changed:
            # Said even with -q: a pre-commit hook or CI log shows only this run's output.
            click.echo(f"{_pathlib_text(output_dir)}: the generated files are not current (the"
                       " diff on stdout); the same command without --check updates them",
                       err=True)
            sys.exit(1)
        return
    written = ({os.path.join(output_dir, rel): files[rel] for rel in sorted(files)}
               if output_dir is not None else {})
    foreign = [] if force else _not_generated(list(written), shown)
    if foreign:
        raise _PathError(f"{'; '.join(foreign)}; it would be overwritten. Move it, write"
                         " elsewhere with -o, or give --force")
    locked = [] if force else _read_only(list(written))
    if locked:
        raise _PathError(f"cannot write {', '.join(locked)}: it is read-only (give --force to"
                         " replace it)")
    modes = {w: 0o777 for w in written if w.endswith(".sh")}
    if report_path is not None and os.path.abspath(report_path) in map(os.path.abspath,
                                                                         written):
        raise click.UsageError(f"--report {report_path} is one of the generated files")
    if report_path is not None:
        # One set with the outputs: a failure leaves neither the report nor the files.
        written[report_path] = results[chosen[0]].report()
    if written:
        _write_files(written, modes, verbose)
    if output_dir is not None:
        for rel, workflow in stale.items():
            try:
                os.unlink(os.path.join(output_dir, rel))
            except OSError as exc:
                raise _PathError(f"cannot remove {exc.filename}: {exc.strerror}") from exc
            # Said without -v: a file disappearing must not go unnoticed.
            if not quiet:
                click.echo(f"removed {_pathlib_text(os.path.join(output_dir, rel))} (generated from"
                           f" {name} for the workflow"
                           f" {workflow!r}, which it no longer has)", err=True)
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


@main.command("graph", context_settings={"help_option_names": ["-h", "--help"]},
              epilog=GRAPH_EPILOG, short_help="Draw each workflow's job graph (Mermaid or dot).")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid (one flowchart, a subgraph per workflow when"
              " there are several) or Graphviz dot (a cluster per workflow).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Set a 2.1 pipeline parameter (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only (no warnings or notes).")
@ORB_DIR_OPTION
@click.argument("config", type=click.Path(dir_okay=False, allow_dash=True),
                callback=_as_pathlib_shows)
def graph_command(fmt: str, params: tuple[str, ...], config: str,
                  orb_dir: str | None = None, quiet: bool = False) -> None:
    """Draw each workflow's job graph: approvals as distinct shapes, filters as labels,
    edges implied by others (dropped from `needs`) dashed."""
    from cicompile import build_ir
    from cicompile.diagnostics import ConfigError, Diagnostics
    from cicompile.graph import to_dot, to_mermaid
    from cicompile.ir import Pipeline

    text, shown = _read_config(config)
    pipeline_params = _params(params)
    diags = Diagnostics()
    try:
        pipeline = build_ir(text, shown, diags, pipeline_params=pipeline_params,
                            orb_dir=_as_path(orb_dir))
        assert isinstance(pipeline, Pipeline)
        drawn = to_dot(pipeline) if fmt == "dot" else to_mermaid(pipeline)
    except ConfigError:
        click.echo(_render(diags.sorted(), "text"), err=True, nl=False)
        sys.exit(1)
    except Exception as exc:  # a bug in cicompile, not in the config
        _internal_error(shown, exc)
    # Warnings and notes too: they say why a workflow is missing or a job never runs.
    if not quiet:
        click.echo(_render(diags.sorted(), "text"), err=True, nl=False)
    click.echo(drawn, nl=False)


def _internal_error(shown: str, exc: Exception) -> NoReturn:
    """Exit status 3 with one positioned line; CICOMPILE_DEBUG=1 shows the traceback."""
    if os.environ.get("CICOMPILE_DEBUG"):
        raise exc
    click.echo(f"{shown}: error: internal error in cicompile ({type(exc).__name__}: {exc});"
               " please report it, with CICOMPILE_DEBUG=1 output [internal-error]", err=True)
    sys.exit(3)


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


def _chosen_targets(names: tuple[str, ...]) -> list[str]:
    """`--target` values in order, `all` spelled out as ALL_TARGETS, each target once."""
    return list(dict.fromkeys(t for name in names
                              for t in (ALL_TARGETS if name == "all" else (name,))))


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
    except OSError as exc:
        raise _PathError(f"cannot read {config}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _PathError(f"cannot read {config}: not UTF-8 text ({exc.reason} at byte"
                         f" {exc.start})") from exc


def _read_config(config: str) -> tuple[str, str]:
    """CONFIG's text (`-`: standard input) and the name diagnostics give it."""
    if config == "-":
        return sys.stdin.read(), "<stdin>"
    return _read(config), config


def _as_path(value: str | None) -> Path | None:
    """click gives paths as str: pathlib (which imports urllib.parse and ipaddress) is loaded
    only where a Path is needed, not on the start-up path of every run (cold start)."""
    if value is None:
        return None
    from pathlib import Path

    return Path(value)


@main.command("audit", context_settings={"help_option_names": ["-h", "--help"]},
              epilog=AUDIT_EPILOG, short_help="Summarise many configs: what translates, what"
              " is left to do.")
@click.option("-t", "--target", "targets", type=click.Choice([*TARGETS, "all"]), multiple=True,
              help="Targets to compile for (repeatable; default and `all`: github, gitlab,"
              " make and shell).")
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
    from pathlib import Path

    from cicompile.audit import (
        audit_config,
        find_configs,
        render_json,
        render_markdown,
        render_table,
        table_rows,
    )

    # By default the migration targets only: `circleci` (the processed config) is no migration.
    chosen = _chosen_targets(targets or ("all",))
    configs = find_configs([Path(p) for p in paths])
    if not configs:
        raise click.UsageError("no CircleCI config found: give config files, or folders with"
                               " a .circleci/config.yml below them")
    audits = []
    show_bar = len(configs) > 3 and sys.stderr.isatty()
    with click.progressbar(configs, label="auditing", file=sys.stderr,
                           hidden=not show_bar) as bar:
        for cfg in bar:
            audits.append(audit_config(cfg, chosen))
    click.echo(render_table(table_rows(audits, chosen)), nl=False)
    outputs = {}  # both or neither, as compile's files
    if md_path is not None:
        outputs[md_path] = render_markdown(audits, chosen)
    if json_path is not None:
        outputs[json_path] = render_json(audits, chosen)
    if outputs:
        _write_files(outputs, {})
    crashes = [(a.path, r) for a in audits for r in a.results if r.internal_error]
    for path, r in crashes:
        click.echo(f"{path}: error: internal error in cicompile ({r.target}:"
                   f" {r.internal_error}); please report it [internal-error]", err=True)
    if crashes:  # a bug in cicompile, as for the other commands: not the configs' fault
        sys.exit(3)
    if not all(a.ok for a in audits):
        sys.exit(1)


@main.group("orbs", context_settings={"help_option_names": ["-h", "--help"]},
            short_help="Fetch registry orbs for offline compilation.")
def orbs_group() -> None:
    """Registry orbs: get their sources for offline compilation (--orb-dir)."""


@orbs_group.command("fetch", context_settings={"help_option_names": ["-h", "--help"]},
                    epilog=ORBS_EPILOG)
@click.option("--orb-dir", required=True, type=click.Path(file_okay=False),
              help="Where to write the orb sources and orbs.lock (created if missing).")
@click.option("--registry", default="https://circleci.com", show_default=True,
              help="The orb registry (its GraphQL API is REGISTRY/graphql-unstable).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only (not each orb fetched,"
              " nor warnings).")
@click.argument("config", type=click.Path(dir_okay=False, allow_dash=True),
                callback=_as_pathlib_shows)
def orbs_fetch_command(orb_dir: str, registry: str, config: str, quiet: bool = False) -> None:
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
        click.echo(_render(diags.sorted(), "text"), err=True, nl=False)
        sys.exit(1)
    try:
        refs, skipped = orb_refs(root) if isinstance(root, YMap) else ([], [])
    except Exception as exc:  # a bug in cicompile, not in the config
        _internal_error(config, exc)
    try:
        # An unusable --orb-dir is a path error (exit 2), told apart from the registry's.
        os.makedirs(orb_dir, exist_ok=True)
    except OSError as exc:
        raise _PathError(f"cannot write {orb_dir}: {exc.strerror or exc}") from exc
    try:
        result = fetch_orbs(refs, Path(orb_dir), registry)
    except (FetchError, OSError) as exc:
        click.echo(f"{config}: error: {exc} [orb-fetch]", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug in cicompile, not in the config or the registry
        _internal_error(config, exc)
    if quiet:
        return
    for ref in [*skipped, *result.skipped]:
        click.echo(f"{config}: warning: orb {ref!r} is not a fixed `ns/name@version`; not"
                   " fetched [orb-fetch]", err=True)
    for f in result.fetched:
        click.echo(f"fetched {f.ref} ({f.version}) -> {Path(orb_dir) / f.file}", err=True)
