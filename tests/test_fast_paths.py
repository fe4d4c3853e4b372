"""Fast paths taken for speed (docs/performance.md) agree with the plain code they replace."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml
from cicompile.targets import make, yamldump

# Strings built from these pieces hit the corners: whitespace of every kind at a line's end,
# `define`/`endef` lines, backslashes before newlines.
PIECES = ["a", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2003",
          "\u200b", "\\", "define", "endef", " define x", "\nendef\n", "x\\\n", "é"]


def _samples(n: int) -> list[str]:
    rnd = random.Random(7)
    return ["".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 10))) for _ in range(n)]


def test_define_check_prefilter_never_hides_a_hazard() -> None:
    for data in _samples(20_000):
        if make.MAKE_HAZARD.search(data):
            with pytest.raises(AssertionError):
                make._check_define_body("node", data)
        else:
            make._check_define_body("node", data)


def test_direct_representation_gives_the_representer_s_bytes() -> None:
    class Plain(yamldump._Dumper):  # type: ignore[misc,name-defined]
        def represent_data(self, data: Any) -> yaml.Node:
            return yaml.representer.SafeRepresenter.represent_data(self, data)  # type: ignore[no-any-return]

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            return yaml.resolver.Resolver.resolve(self, kind, value, implicit)

    data = {"on": {"push": None}, "jobs": [{"run": s, "n": i, "ok": i % 2 == 0, "f": 1.5}
                                          for i, s in enumerate(_samples(300))],
            "nested": {"a": [[], {}, [1, "2", "yes", "0x10", "~", ""]]}}
    options: dict[str, Any] = {"sort_keys": False, "default_flow_style": False, "width": 100,
                               "allow_unicode": True, "indent": 2}
    assert yaml.dump(data, Dumper=yamldump._Dumper, **options) == \
        yaml.dump(data, Dumper=Plain, **options)
