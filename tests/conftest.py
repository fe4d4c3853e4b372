from __future__ import annotations

import pytest


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
