"""The `cicompile` command and `python -m cicompile`: the CLI in a short-lived process.

Two garbage-collector settings make its start and exit cheaper (docs/performance.md, cold
start); neither applies when `cicompile.cli.main` is called in a longer-lived process:

- the collector is off while the CLI's modules are imported, then everything they made is
  frozen (`gc.freeze`: kept out of all later collections; it lives until exit anyway) and the
  collector runs as usual for the command itself;
- at exit, after every other exit handler and with stdout and stderr flushed by Python as
  usual, everything is frozen again, so the interpreter's final collections do not traverse
  and free each module's cyclic data one object at a time (about 8 ms a run). Only cyclic
  garbage left at exit is then not finalised: every file cicompile writes is closed (and
  renamed into place) before its command returns.
"""

from __future__ import annotations

import atexit
import gc


def run() -> None:
    gc.disable()
    # Registered first, so it runs last: other exit handlers still see a normal collector.
    atexit.register(gc.freeze)
    try:
        from cicompile.cli import main
    finally:
        gc.freeze()
        gc.enable()
    main()


if __name__ == "__main__":
    run()
