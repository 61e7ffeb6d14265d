"""The challenge taxonomy of Chen et al. (ESEC/FSE 2020): node ids and coverage.

The data file ``taxonomy.yaml`` beside this module is a copy of the project's shared taxonomy.
A node id is ``<platform>/<inner>/<leaf>`` or ``<platform>/<inner>`` for a leaf-less inner
category; those are the 80 challenge nodes a scenario may name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

PLATFORMS: tuple[str, ...] = ("server", "mobile", "browser")


@dataclass(frozen=True)
class Challenge:
    """One challenge node of the taxonomy."""

    id: str
    platform: str
    category: str
    name: str
    note: str
    reproduce: str

    @property
    def title(self) -> str:
        return self.name.replace("-", " ")


def _is_leaf_record(value: Any) -> bool:
    return isinstance(value, dict) and ("note" in value or value.get("leaf") is True)


def parse_taxonomy(data: dict[str, Any]) -> tuple[Challenge, ...]:
    """Turn the YAML mapping into challenge records, in file order."""
    nodes: list[Challenge] = []
    for platform in PLATFORMS:
        for inner, body in (data.get(platform) or {}).items():
            if isinstance(body, dict) and body.get("leaf") is True:
                nodes.append(Challenge(f"{platform}/{inner}", platform, inner, inner,
                                       str(body.get("note", "")), str(body.get("reproduce", ""))))
                continue
            for leaf, record in (body or {}).items():
                if not _is_leaf_record(record):
                    raise ValueError(f"taxonomy: {platform}/{inner}/{leaf} is not a leaf record")
                nodes.append(Challenge(f"{platform}/{inner}/{leaf}", platform, inner, leaf,
                                       str(record.get("note", "")), str(record.get("reproduce", ""))))
    return tuple(nodes)


@lru_cache(maxsize=1)
def load_taxonomy() -> tuple[Challenge, ...]:
    """All challenge nodes of the packaged taxonomy file."""
    import yaml

    text = resources.files("harness").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
    return parse_taxonomy(yaml.safe_load(text))


def challenge_ids() -> tuple[str, ...]:
    return tuple(c.id for c in load_taxonomy())


def challenge(node_id: str) -> Challenge:
    for c in load_taxonomy():
        if c.id == node_id:
            return c
    raise KeyError(node_id)


def taxonomy_node_for(scenario_id: str) -> str | None:
    """The challenge node a scenario id belongs to: the longest prefix that is a node id."""
    ids = set(challenge_ids())
    parts = scenario_id.split("/")
    for n in range(len(parts), 0, -1):
        candidate = "/".join(parts[:n])
        if candidate in ids:
            return candidate
    return None


def coverage(scenario_taxonomy_ids: Iterable[str]) -> dict[str, list[str]]:
    """Covered and missing challenge ids, in taxonomy order."""
    covered = set(scenario_taxonomy_ids)
    ids = challenge_ids()
    return {"covered": [i for i in ids if i in covered], "missing": [i for i in ids if i not in covered]}
