"""``pitfalls cache [info|verify|clear]``: the artifact cache's entries (:mod:`harness.artifacts`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.errors import UsageError

NAME = "cache"
HELP = "the artifact cache: sizes per kind, verify entries, clear them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="info", choices=("info", "verify", "clear"),
                   help="info (default): root, entries and size per kind; verify: check every entry's files "
                        "against its manifest (exit 1 if any is corrupt); clear: remove entries (every model "
                        "kind, or those named; environment kinds wheels, debootstrap, arm64 only when named)")
    p.add_argument("--kind", action="append", metavar="K", help="only this kind (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """``pitfalls cache [info|verify|clear] [--kind K ...] [--json]``: the artifact cache's entries."""
    from harness.artifacts import ENVIRONMENT_KINDS, ArtifactCache, CacheEntry

    def human(n: float) -> str:
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1000
        return f"{n:.1f} GB"

    def per_kind(entries: list[CacheEntry]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for e in entries:
            k = found.setdefault(e.kind, {"cache": e.cache, "entries": 0, "bytes": 0, "problems": 0})
            k["entries"] += 1
            k["bytes"] += e.bytes
            k["problems"] += not e.ok
        return found

    cache = ArtifactCache()
    known = sorted(set(cache.kinds()) | set(ENVIRONMENT_KINDS))
    for kind in args.kind or []:
        if kind not in known:
            raise UsageError(f"unknown cache kind {kind!r}: kinds here are {', '.join(known)} "
                             "(see `pitfalls cache info`)")
    kinds: list[str] | None = list(dict.fromkeys(args.kind)) if args.kind else None
    roots = {"model_cache": str(cache.root), "environment_cache": str(cache.environment_root)}
    selected: list[str | None] = list(kinds) if kinds else [None]  # None: every kind
    if args.action == "clear":
        removed = cache.clear(kinds)
        if args.json:
            print(json.dumps({**roots, "removed": [e.to_json() for e in removed],
                              "bytes": sum(e.bytes for e in removed)}, indent=1))
        else:
            what = ", ".join(f"{k} {v['entries']}" for k, v in per_kind(removed).items())
            print(f"removed {len(removed)} entries ({human(sum(e.bytes for e in removed))})"
                  + (f": {what}" if what else "") + f" from {cache.root}"
                  + (f" and {cache.environment_root}" if any(e.cache == "environment" for e in removed) else ""))
            if kinds is None:
                print("environment kinds (" + ", ".join(ENVIRONMENT_KINDS) + ") are cleared only when named "
                      "with --kind")
        return 0
    if args.action == "verify":
        entries = [e for k in selected for e in cache.verify(k)]
        bad = [e for e in entries if not e.ok]
        if args.json:
            print(json.dumps({**roots, "verified": len(entries), "corrupt": [e.to_json() for e in bad]}, indent=1))
        else:
            for e in bad:
                print(f"unusable: {e.kind}/{e.name}: {e.problem}")
            print(f"verified {len(entries)} entries ({human(sum(e.bytes for e in entries))}) in {cache.root}: "
                  + (f"{len(bad)} unusable (corrupt or from an older layout; each is rebuilt on its next use, "
                     "`pitfalls cache clear` removes them)" if bad else "all intact")
                  + "; environment kinds are not verified")
        return 1 if bad else 0
    entries = [e for k in selected for e in cache.entries(k)]
    summary = per_kind(entries)
    if args.json:
        print(json.dumps({**roots, "kinds": summary, "entries": [e.to_json() for e in entries]}, indent=1))
        return 0
    for label, root, where in (("model cache", cache.root, "model"),
                               ("environment cache", cache.environment_root, "environment")):
        mine = {k: v for k, v in summary.items() if v["cache"] == where}
        total = sum(v["bytes"] for v in mine.values())
        print(f"{label}: {root} ({sum(v['entries'] for v in mine.values())} entries, {human(total)})")
        for k, v in sorted(mine.items()):
            flag = f", {v['problems']} unusable (see `pitfalls cache verify`)" if v["problems"] else ""
            print(f"  {k:<24} {v['entries']:>5} entries  {human(v['bytes']):>9}{flag}")
    return 0
