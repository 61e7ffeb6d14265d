"""Confinement and ownership, each test written as the attack it stops (issue 19, items 3-7).

* a local user who finds the fork server's control port cannot start, inspect or stop a server;
* a container mounts its run's work directory only, runs as non-root, with limits and no capabilities;
* an unprivileged host user (uid 65534, ``nobody``) reads neither the served model files nor nginx's
  htpasswd file;
* a run's cleanup never removes what another live run owns, even when that run's pid is invisible or
  means something else here (another pid namespace); it does remove what a dead run left;
* two runs never write the same results file;
* a planted symlink does not redirect the check report's write.

The container tests need a Docker engine and the compat image (built on first use, then cached)
and skip without them; the ``nobody`` tests need root (to become uid 65534).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.environments import ownership
from harness.paths import REPO_ROOT

TF_VERSION = "2.19.0"
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becoming uid 65534 needs root")

# A process that makes an owner id, holds its lock and prints the id; in its own pid namespace when
# `unshare` allows, so that its pid means nothing here.
LOCK_HOLDER = textwrap.dedent("""
    import os, sys
    from harness.environments.ownership import current_owner
    owner = current_owner()
    print(owner.id, os.getpid(), flush=True)
    sys.stdin.readline()
""")


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
                          capture_output=True, text=True, check=False)


class LockHolder:
    """Another run: a live process (in another pid namespace if possible) holding its owner lock."""

    def __init__(self, pid_namespace: bool, env_cache: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PITFALLS_ENV_CACHE": str(env_cache)}
        prefix = ["unshare", "--pid", "--fork", "--mount-proc"] if pid_namespace else []
        self.process = subprocess.Popen([*prefix, sys.executable, "-c", LOCK_HOLDER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 2:
            self.process.kill()
            pytest.fail(f"the lock holder did not start: {self.process.communicate()[1][-2000:]}")
        self.owner_id, self.pid_inside = line[0], line[1]

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.communicate("\n", timeout=30)


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False).returncode == 0


@pytest.fixture
def private_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The owner lock files of this test's made-up runs, apart from the machine's: a made-up dead run
    has no watchdog, and no other run removes its lock any more, but a test should not leave lock files
    in the machine's directory, nor depend on what another run (a concurrent CI job, the other xdist
    worker) does there.  Our own lock stays where it is (this process is known to itself without it)."""
    env_cache = tmp_path / "env-cache"
    owners = env_cache / "owners"
    owners.mkdir(parents=True, mode=0o700)
    monkeypatch.setattr(ownership, "owners_dir", lambda: owners)
    return env_cache


@pytest.fixture
def other_run(private_owners: Path) -> Iterator[LockHolder]:
    holder = LockHolder(pid_namespace=_unshare_works(), env_cache=private_owners)
    try:
        yield holder
    finally:
        holder.end()


@pytest.fixture
def dead_run(private_owners: Path) -> str:
    """The id of a run that ended without cleaning up: its lock file is there, nobody holds it."""
    holder = LockHolder(pid_namespace=False, env_cache=private_owners)
    holder.end()
    assert (ownership.owners_dir() / f"{holder.owner_id}.lock").is_file()
    return holder.owner_id


# --- ownership without a container ---------------------------------------------------------------

def test_an_owner_is_alive_while_its_lock_is_held_whatever_its_pid(other_run: LockHolder) -> None:
    assert ownership.owner_state(other_run.owner_id) == "alive"
    if other_run.pid_inside in ("1", "2"):  # in its own pid namespace: here that pid is someone else
        assert other_run.process.pid != int(other_run.pid_inside)
    other_run.end()
    assert ownership.owner_state(other_run.owner_id) == "gone"


def test_an_owner_without_a_lock_file_here_is_unknown_and_so_kept() -> None:
    assert ownership.owner_state("0123456789abcdef") == "unknown"  # another user's or machine's run
    assert ownership.owner_state("../../etc/passwd") == "unknown"  # a label is not a path
    assert ownership.owner_state(ownership.current_owner().id) == "self"


def test_stale_arm64_call_dirs_are_removed_only_when_their_owner_is_gone(
        tmp_path: Path, other_run: LockHolder, dead_run: str) -> None:
    from harness.targets.litert.arm64 import CALL_DIR_PREFIX, _remove_stale_call_dirs

    (tmp_path / "tmp").mkdir()
    live = tmp_path / "tmp" / f"{CALL_DIR_PREFIX}{other_run.owner_id}-1-abc"
    stale = tmp_path / "tmp" / f"{CALL_DIR_PREFIX}{dead_run}-1-abc"
    legacy = tmp_path / "tmp" / f"{CALL_DIR_PREFIX}999999999-abc"  # the old pid-only name: unknown owner
    for call_dir in (live, stale, legacy):
        call_dir.mkdir()
    _remove_stale_call_dirs(tmp_path)
    assert live.is_dir() and legacy.is_dir()
    assert not stale.exists()


def test_leftover_work_dirs_go_only_when_their_owner_is_gone(other_run: LockHolder, dead_run: str) -> None:
    temp = Path(tempfile.gettempdir())
    live, stale = (temp / f"{ownership.WORK_DIR_PREFIX}{i}" for i in (other_run.owner_id, dead_run))
    live.mkdir()
    stale.mkdir()
    try:
        removed = ownership.remove_leftover_work_dirs()
        assert stale in removed and not stale.exists()
        assert live.is_dir()
        # the attack on cleanup: another run's sweep must not take the dead run's lock, the only proof that
        # its containers and call directories may go (without it the owner is "unknown" and they stay forever)
        assert (ownership.owners_dir() / f"{dead_run}.lock").is_file()
        assert ownership.owner_state(dead_run) == "gone"
    finally:
        shutil.rmtree(live, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


@needs_root
def test_nobody_cannot_read_the_run_work_dir_or_the_served_models_in_it() -> None:
    work = ownership.run_work_dir()
    info = work.stat()
    assert (info.st_mode & 0o777, info.st_gid) == (0o750, ownership.CONFINED_GID)
    model = Path(tempfile.mkdtemp(prefix="confine-", dir=work)) / "model" / "1"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"secret weights")
    ownership.open_in_work_dir(model.parent)  # what a forked server gets: o+r inside the 0750 barrier
    denied = _as_nobody("cat", str(model / "saved_model.pb"))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
    listing = _as_nobody("ls", str(work))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
    # the container's own user reads it (through the group of the work directory)
    allowed = subprocess.run(["setpriv", f"--reuid={ownership.CONFINED_UID}", f"--regid={ownership.CONFINED_GID}",
                              "--clear-groups", "cat", str(model / "saved_model.pb")],
                             capture_output=True, text=True, check=False)
    assert allowed.stdout == "secret weights", allowed


@needs_root
def test_opening_a_tree_to_the_container_never_changes_a_shared_hard_linked_file(tmp_path: Path) -> None:
    cached = tmp_path / "cache-entry.bin"  # e.g. the artifact cache's file, or the user's own 0600 model
    cached.write_bytes(b"weights")
    cached.chmod(0o600)
    work = Path(tempfile.mkdtemp(prefix="confine-", dir=ownership.run_work_dir()))
    os.link(cached, work / "model.bin")
    ownership.open_to_container(work)
    assert cached.stat().st_mode & 0o777 == 0o600
    assert (work / "model.bin").stat().st_mode & 0o004 and (work / "model.bin").read_bytes() == b"weights"


@needs_root
def test_nobody_cannot_read_the_nginx_htpasswd_file() -> None:
    from harness.targets.tfserving.proxy import basic_auth_proxy

    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file():
        pytest.skip("nginx is not installed")
    work = ownership.run_work_dir()
    with basic_auth_proxy("http://127.0.0.1:9", {"alice": "s3cret"}):
        htpasswd = next(work.glob("pitfalls-nginx-*/htpasswd"))
        assert htpasswd.stat().st_mode & 0o777 == 0o600
        assert htpasswd.parent.stat().st_mode & 0o777 == 0o700
        denied = _as_nobody("cat", str(htpasswd))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
        workers = subprocess.run(["ps", "-o", "uid=", "-C", "nginx"], capture_output=True, text=True).stdout.split()
        assert workers and "0" not in workers, f"nginx runs as {workers}"


# --- two runs, one checkout ----------------------------------------------------------------------

CLAIMER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from harness.environments.ownership import claim_outputs
    with claim_outputs([Path(sys.argv[1])], "the first run"):
        print("CLAIMED", flush=True)
        sys.stdin.readline()
""")


def test_a_second_run_on_the_same_results_file_is_refused_with_one_line(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.Popen([sys.executable, "-c", CLAIMER, str(results)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "CLAIMED"
        second = subprocess.run([sys.executable, "-m", "harness", "run", "server/serving",
                                 "--results", str(results)], capture_output=True, text=True, env=env,
                                cwd=REPO_ROOT, check=False)
        assert second.returncode == 2, second
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"{results} is in use by the first run (pid {first.pid}" in lines[0]
        assert "--results PATH" in lines[0]
        assert not results.exists(), "the refused run wrote nothing"
    finally:
        first.communicate("\n", timeout=30)
    # the first run is over: its claim is free
    with ownership.claim_outputs([results], "a later run"):
        pass


def test_the_check_report_is_not_written_through_a_planted_symlink(tmp_path: Path) -> None:
    from harness.check.render import write_report_dir

    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    out = tmp_path / "out"
    out.mkdir()
    for name in (".check.html.tmp", ".check.html"):
        (out / name).symlink_to(victim)

    class Report:
        targets: dict[str, Any] = {}

        def to_json(self) -> dict[str, Any]:
            return {"report": 1}

    import harness.check.render as render

    original = render.html_page
    render.html_page = lambda report: "<html>the report</html>"  # type: ignore[assignment]
    try:
        write_report_dir(Report(), out)  # type: ignore[arg-type]
    finally:
        render.html_page = original
    assert victim.read_text() == "untouched"
    assert (out / "check.html").read_text() == "<html>the report</html>"
    assert not (out / "check.html").is_symlink()


def test_the_matrix_installs_npm_packages_without_their_scripts(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from harness.matrix import env as matrix_env

    commands: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(list(cmd))
        return subprocess.CompletedProcess(cmd, 1, "", "stopped here by the test")

    monkeypatch.setattr(matrix_env, "_run", fake_run)
    monkeypatch.setattr(matrix_env, "checkout_npm_version", lambda package: "0.0.0-checkout")
    monkeypatch.setenv("PITFALLS_ENV_CACHE", str(tmp_path))
    from harness.matrix.run import npm_package

    with pytest.raises(Exception):
        matrix_env.ensure_npm(npm_package(), "4.22.0", log=tmp_path / "npm.log")
    installs = [c for c in commands if c[:2] == ["npm", "install"]]
    assert installs and all("--ignore-scripts" in c for c in installs), commands


# --- containers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compat_image() -> Any:
    from harness.environments.engine import engine_unavailable_reason

    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(f"no Docker engine answers here: {reason}")
    from harness.environments.serving_image import ensure_serving_image

    return ensure_serving_image(TF_VERSION)


@pytest.fixture(scope="module")
def fork_container(compat_image: Any) -> Iterator[Any]:
    from harness.targets.tfserving.forked import ForkContainer

    owner = ForkContainer(compat_image).start()
    try:
        yield owner
    finally:
        owner.close()


def _inspect(container_id: str) -> dict[str, Any]:
    from harness.environments.engine import docker_client

    client = docker_client()
    try:
        return dict(client.api.inspect_container(container_id))
    finally:
        client.close()


def _control_without_secret(fork: Any, request: dict[str, Any]) -> dict[str, Any]:
    address = ("127.0.0.1", fork.container.host_port(8600))
    with socket.create_connection(address, timeout=30) as connection:
        connection.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, Any] = json.loads(connection.makefile("rb").readline())
    return reply


@pytest.mark.slow
def test_the_control_port_refuses_a_request_without_the_secret_and_starts_nothing(fork_container: Any) -> None:
    attacker_model = "/etc"  # what the audit's attacker pointed a server at
    for request in ({"op": "start", "args": [], "links": {"/models/model": attacker_model}},
                    {"op": "start", "token": "0" * 64, "args": [], "links": {"/models/model": attacker_model}},
                    {"op": "log"}, {"op": "stop"}):
        reply = _control_without_secret(fork_container, request)
        assert reply == {"ok": False, "error": "forbidden"}, (request, reply)
    assert fork_container.control("status") == {"ok": True, "running": False, "exit_code": None}
    listing = fork_container.container.logs()
    assert "Building single TensorFlow model file config" not in listing  # no server ever started


@pytest.mark.slow
def test_the_fork_container_mounts_its_run_work_dir_only_and_runs_confined(fork_container: Any) -> None:
    details = _inspect(fork_container.container.container_id)
    sources = [m["Source"] for m in details["Mounts"]]
    assert sources == [str(ownership.run_work_dir().resolve())], sources
    temp_roots = {"/", "/tmp", str(Path(tempfile.gettempdir()).resolve())}
    assert not temp_roots & set(sources)
    assert all(not m["RW"] for m in details["Mounts"])
    if os.geteuid() == 0:  # mounting it did not open the work directory to other host users
        assert ownership.run_work_dir().stat().st_mode & 0o777 == 0o750
    host = details["HostConfig"]
    assert host["Memory"] > 0 and host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert all(b["HostIp"] == "127.0.0.1" for bindings in details["NetworkSettings"]["Ports"].values()
               for b in bindings or [])
    labels = details["Config"]["Labels"]
    assert labels[ownership.OWNER_ID_LABEL] == ownership.current_owner().id
    # the server's process is not root
    from harness.environments.engine import docker_client

    client = docker_client()
    try:
        top = client.api.top(fork_container.container.container_id, ps_args="-o pid,uid")
        uids = {int(row[top["Titles"].index("UID")]) for row in top["Processes"]}
        result = client.containers.get(fork_container.container.container_id).exec_run(["id", "-u"])
    finally:
        client.close()
    assert 0 not in uids, top
    assert result.output.decode().strip() == str(ownership.container_user()[0])


@pytest.mark.slow
def test_a_broad_mount_is_refused(compat_image: Any) -> None:
    from harness.errors import SetupError
    from harness.targets.tfserving.container import ServingContainer

    for broad in (Path("/"), Path(tempfile.gettempdir())):
        with pytest.raises(SetupError, match="refusing to mount"):
            with ServingContainer(compat_image, files={broad: "/host"}, wait=False):
                pass


def _sleeper(engine: Any, image: Any, labels: dict[str, str]) -> Any:
    return engine.containers.create(image.tag, entrypoint=["sleep"], command=["300"],
                                    labels={"pitfalls": "1", **labels})


@pytest.mark.slow
def test_cleanup_spares_a_live_run_with_an_invisible_pid_and_removes_a_dead_runs(
        compat_image: Any, other_run: LockHolder, dead_run: str) -> None:
    from harness.environments.engine import docker_client
    from harness.environments.reaper import _remove_containers
    from harness.targets.tfserving.container import remove_leftover_containers

    engine = docker_client()
    live = _sleeper(engine, compat_image, {ownership.OWNER_ID_LABEL: other_run.owner_id,
                                            ownership.OWNER_PID_LABEL: "999999999"})  # no such pid here
    same_pid = _sleeper(engine, compat_image, {ownership.OWNER_ID_LABEL: other_run.owner_id,
                                                ownership.OWNER_PID_LABEL: str(os.getpid())})  # our pid, not ours
    stale = _sleeper(engine, compat_image, {ownership.OWNER_ID_LABEL: dead_run, ownership.OWNER_PID_LABEL: "1"})
    unknown = _sleeper(engine, compat_image, {"pitfalls.pid": "999999999"})  # no owner id: an older harness's
    try:
        removed = remove_leftover_containers()
        assert stale.name in removed
        assert not {live.name, same_pid.name, unknown.name} & set(removed)
        # a watchdog removes by its own owner's id only, never by pid (here: an owner whose pid is on two of them)
        assert _remove_containers(secrets.token_hex(8)) == 0
        still = {c.name for c in engine.containers.list(all=True, filters={"label": "pitfalls=1"})}
        assert {live.name, same_pid.name, unknown.name} <= still
        # once the other run is gone, its containers are leftovers too
        other_run.end()
        removed = remove_leftover_containers()
        assert {live.name, same_pid.name} <= set(removed)
        assert unknown.name not in removed
    finally:
        for container in (live, same_pid, stale, unknown):
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - removed by the code under test
                pass
        engine.close()
