"""The one configured YAML dumper for the GitHub and GitLab targets.

Readable and stable: insertion order kept, literal blocks for multi-line strings, no aliases,
fixed width; `on` and other YAML 1.1 booleans-in-disguise are quoted by the representer.
"""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's emitter (5-10x faster than PyYAML's Python one); both write block sequences
# "indentless" (`key:` then `- item` at the same column), so the output is the same either way.
_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):  # type: ignore[misc]
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line scripts read best as literal blocks. A line with trailing spaces cannot be a
    # literal block (the emitter would refuse or the text would change), so such strings keep
    # the emitter's default (quoted) style: the output must say exactly what the config said.
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any, header: str = "") -> str:
    text = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
        allow_unicode=True,
        indent=2,
    )
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


class Verbatim(str):
    """A number written exactly as the source wrote it (`3.10` must not become `3.1`)."""

    tag = "tag:yaml.org,2002:str"

    def __new__(cls, text: str, tag: str) -> Verbatim:
        self = super().__new__(cls, text)
        self.tag = tag
        return self


def _verbatim_representer(dumper: yaml.SafeDumper, data: Verbatim) -> yaml.ScalarNode:
    # Plain style when the text still resolves to `tag`; the emitter quotes it otherwise.
    return dumper.represent_scalar(data.tag, str(data))


_Dumper.add_representer(Verbatim, _verbatim_representer)
