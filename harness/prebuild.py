"""Build the costly, cached environment pieces before the tests run: ``python -m harness.prebuild``.

The serving images (one per TF version the server scenarios use) and the arm64 root file system,
the two recipes of :mod:`harness.environments`, are built on first use anyway; building them here, in parallel and with progress lines, keeps
that time out of any single test's timeout and prints the figures.  Each piece is skipped with
its reason when its prerequisite (a Docker engine, root and qemu) is missing here; the scenarios
that need it then skip with the same reason.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

OLD_SERVING_TF = "2.12.0"  # server/environment/avoiding-version-incompatibility serves an old TF on purpose


def serving_tf_versions() -> tuple[str, ...]:
    """The TF of the default serving image (``$PITFALLS_SERVING_TF`` in a matrix cell) and the old one."""
    from harness.targets.tfserving.target import DEFAULT_TF_VERSION

    return tuple(dict.fromkeys((DEFAULT_TF_VERSION, OLD_SERVING_TF)))


def _serving_image(tf_version: str) -> Callable[[], str]:
    def build() -> str:
        from harness.environments.engine import engine_unavailable_reason
        from harness.environments.serving_image import ensure_serving_image

        reason = engine_unavailable_reason()
        if reason:
            return f"skipped (no Docker engine: {reason})"
        image = ensure_serving_image(tf_version)
        return f"{image.tag}{' (cached)' if image.reused else ''}"

    return build


def _arm64_rootfs() -> str:
    from harness.environments.arm64_rootfs import arm64_unavailable_reason, ensure_arm64_rootfs

    reason = arm64_unavailable_reason()
    if reason:
        return f"skipped ({reason})"
    return str(ensure_arm64_rootfs())


def main() -> int:
    jobs: dict[str, Callable[[], str]] = {f"serving image TF {v}": _serving_image(v) for v in serving_tf_versions()}
    jobs["arm64 root file system"] = _arm64_rootfs
    started = time.perf_counter()
    failed = 0
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: (pool.submit(_timed, job)) for name, job in jobs.items()}
        for name, future in futures.items():
            try:
                outcome, seconds = future.result()
                print(f"prebuild: {name}: {outcome} ({seconds:.0f}s)", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - reported, then the exit code says it
                failed += 1
                print(f"prebuild: {name} FAILED: {exc}", file=sys.stderr)
    print(f"prebuild: done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 1 if failed else 0


def _timed(job: Callable[[], str]) -> tuple[str, float]:
    t = time.perf_counter()
    return job(), time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
