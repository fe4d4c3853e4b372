from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.tools import require_tool

if TYPE_CHECKING:
    from tests.gha_runner import WorkflowRunner


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite golden/<case>/ expected outputs from the current compiler (review the diff!)",
    )
    parser.addoption(
        "--long-fuzz",
        action="store_true",
        default=False,
        help="Run the property-based tests with many more examples",
    )


def pytest_configure(config: pytest.Config) -> None:
    # The default suite gates every merge, so its property tests replay the same examples on
    # every run (a failure is reproducible, never a coin toss); --long-fuzz explores freshly.
    from hypothesis import settings

    settings.register_profile("suite", derandomize=True, database=None)
    settings.register_profile("long-fuzz", database=None)
    settings.load_profile("long-fuzz" if config.getoption("--long-fuzz") else "suite")


_SESSION_START: list[float] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _SESSION_START.append(time.time())
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        from tests.tools import ROOT

        (ROOT / ".pytest_cache" / "cicompile-differential.txt").unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The corpus summary (tests/test_corpus.py) and differential counts, when written by
    this session (also under xdist, where the tests ran in workers)."""
    from tests.tools import ROOT

    for name, title in (("cicompile-corpus-summary.md", "cicompile corpus: configs x targets"),
                        ("cicompile-differential.txt", "cicompile differential mismatches")):
        f = ROOT / ".pytest_cache" / name
        if f.exists() and _SESSION_START and f.stat().st_mtime >= _SESSION_START[0]:
            terminalreporter.write_sep("-", title)
            terminalreporter.write(f.read_text())


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[WorkflowRunner]:
    """Runs generated GitHub workflows on the host (tests/gha_runner.py), from an empty source
    tree (a test module may define its own `runner` with other sources)."""
    from tests.gha_runner import WorkflowRunner

    src = tmp_path / "src"
    src.mkdir()
    r = WorkflowRunner(tmp_path / "run", src)
    yield r
    r.close()


@pytest.fixture(params=["make", "shell"])
def target(request: pytest.FixtureRequest) -> str:
    """The local targets for end-to-end tests, each skipped where its tools are missing."""
    require_tool("bash")
    require_tool("git")
    if request.param == "make":
        require_tool("make")
    return str(request.param)
