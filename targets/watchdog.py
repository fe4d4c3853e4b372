"""CircleCI's `no_output_timeout` and step `max_auto_reruns`, one POSIX-sh function for every
target (templates/watchdog.sh.j2, semantics §3.1).

The make and shell runtime and the GitLab step driver define `cicompile_watch` and call it for
every foreground `run` step (CircleCI's default timeout is 10 minutes); GitHub installs it as
the `cicompile-watch` command and uses it as the custom `shell:` of the steps that set either
option (GitHub's only limit is the job's `timeout-minutes`, so the default is not enforced
there).
"""

from __future__ import annotations

from functools import cache

from cicompile import ir

WATCHDOG_FILE = "watchdog.sh.j2"  # plain POSIX sh, no jinja (package data is *.j2)
WATCH_DELIMITER = "CICOMPILE_WATCH"
WATCH_COMMAND = "cicompile-watch"
DEFAULT_NO_OUTPUT_TIMEOUT = 600  # CircleCI's default: 10 minutes


@cache
def watchdog_functions() -> str:
    """The shell functions, ending in a newline."""
    from importlib.resources import files  # here: it imports tempfile (cold start)

    return files("cicompile.targets").joinpath("templates", WATCHDOG_FILE).read_text()


def step_timeout(step: ir.Run) -> int:
    """The no-output limit of a foreground step in seconds (CircleCI's default when unset)."""
    if step.no_output_timeout is not None:
        return step.no_output_timeout
    return DEFAULT_NO_OUTPUT_TIMEOUT


def format_duration(seconds: int) -> str:
    """`1h30m`, `10m`, `45s`: CircleCI's notation, for messages and comments."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def needs_watch_command(step: ir.Run) -> bool:
    """Whether a GitHub step needs the `cicompile-watch` wrapper (an option is set)."""
    return not step.background and (
        step.no_output_timeout is not None or step.max_auto_reruns > 0
    )


def install_watch_command(directory: str) -> str:
    """Bash lines writing DIRECTORY/cicompile-watch (TIMEOUT RERUNS DELAY COMMAND...).

    DIRECTORY is a shell word (already quoted); the text is one quoted heredoc.
    """
    text = watchdog_functions()
    assert WATCH_DELIMITER not in text
    return (
        f"mkdir -p {directory}\n"
        f"cat > {directory}/{WATCH_COMMAND} <<'{WATCH_DELIMITER}'\n"
        "#!/bin/sh\n"
        f"{text}"
        'cicompile_watch "$@"\n'
        f"{WATCH_DELIMITER}\n"
        f"chmod +x {directory}/{WATCH_COMMAND}\n"
    )
