"""The local Docker engine, through the docker SDK (imported inside functions only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import SetupError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker

SETUP_HINT = "run scripts/setup-docker.sh as root: it installs Debian's docker.io and starts dockerd"


def docker_client() -> docker.DockerClient:
    """A client of the local engine; :class:`SetupError` with a hint when none answers."""
    try:
        import docker
    except ImportError as exc:
        raise SetupError("the docker SDK is not installed", evidence=str(exc),
                         hint="pip install 'pitfalls[server]' (docker>=7,<8)") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError
        raise SetupError("no Docker engine answers", evidence=f"{type(exc).__name__}: {exc}",
                         hint=SETUP_HINT) from exc
    return client


def engine_unavailable_reason() -> str | None:
    """None when an engine answers, else the exact reason (for a pytest skip)."""
    try:
        docker_client().close()
    except SetupError as exc:
        return f"{exc.message} ({exc.evidence}); {exc.hint}"
    return None


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True
