"""The model manager: file-system polling, version policy, load/swap/unload, labels, handles.

It follows TF Serving's ``ServerCore`` + ``FileSystemStoragePathSource`` +
``AspiredVersionsManager`` with the ``AvailabilityPreservingPolicy``:

* a polling thread lists each model's base path every ``file_system_poll_wait_seconds`` and
  emits the aspired versions chosen by the model's version policy (latest N / all / specific);
* a manager thread loads aspired versions (serially, with retries), publishes a version only once
  it is loaded, and unloads an un-aspired version only when an aspired one is available (or no
  version is aspired any more) -- so a new version never leaves a gap and in-flight requests on
  the old version finish before its Session is closed;
* every version's state (START, LOADING, AVAILABLE, UNLOADING, END + error) is kept for the
  status API, as TF Serving's ``ServableStateMonitor`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import re
import threading
from typing import Any, Iterator, Optional

from .config import BatchingOptions, validate_model_config_list
from .logs import get_logger
from .servable import SavedModelServable, SessionThreads
from .status import Code, ServingError, failed_precondition, invalid_argument, not_found
from .texts import T


class ManagerState(enum.Enum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclasses.dataclass
class VersionState:
    state: ManagerState
    error: Optional[ServingError] = None


@dataclasses.dataclass(frozen=True)
class CoreOptions:
    file_system_poll_wait_seconds: int = 1
    saved_model_tags: tuple[str, ...] = ("serve",)
    session_threads: Optional[SessionThreads] = None
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    batching: Optional[BatchingOptions] = None
    allow_version_labels_for_unavailable_models: bool = False


_VERSION_RE = re.compile(r"^\s*[+-]?\d+\s*$")


def servable_id(name: str, version: int) -> str:
    """``ServableId::DebugString``."""
    return T("{name: <name> version: <version>}", name=name, version=version)


def _parse_version(child: str) -> Optional[int]:
    if not _VERSION_RE.match(child):
        return None
    value = int(child)
    return value if -(2**63) <= value < 2**63 else None


def _index_children(children: list[str]) -> dict[int, str]:
    by_version: dict[int, str] = {}
    for child in sorted(children):
        version = _parse_version(child)
        if version is None:
            continue
        if version in by_version:
            get_logger().warning(T(
                "Duplicate version directories detected. Version <version> will be loaded from <kept>, "
                "<ignored> will be ignored.", version=version, kept=child, ignored=by_version[version]))
        by_version[version] = child
    return by_version


def aspired_versions_for(model: Any) -> dict[int, str]:
    """``PollFileSystemForServable``: the version -> path map the policy asks for.

    Raises :class:`ServingError` when the base path does not exist.
    """
    base = model.base_path
    if not os.path.exists(base):
        raise invalid_argument(T(
            "Could not find base path <base_path> for servable <servable> with error "
            "NOT_FOUND: <path> not found", base_path=base, servable=model.name, path=base))
    children = os.listdir(base)
    by_version = _index_children(children)
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    chosen: dict[int, str] = {}
    if choice == "all":
        chosen = dict(by_version)
    elif choice == "specific":
        wanted = set(policy.specific.versions)
        if not wanted:
            get_logger().warning(T("No specific versions requested for servable <servable>.",
                                   servable=model.name))
        chosen = {v: c for v, c in by_version.items() if v in wanted}
        for version in sorted(wanted - set(chosen)):
            get_logger().warning(T(
                "Version <version> of servable <servable>, which was requested to be served as a "
                "'specific' version in the servable's version policy, was not found in the file system",
                version=version, servable=model.name))
    else:
        count = max(int(policy.latest.num_versions), 1)
        chosen = {v: by_version[v] for v in sorted(by_version, reverse=True)[:count]}
    if not chosen:
        get_logger().warning(T(
            "No versions of servable <servable> found under base path <base_path>. Did you forget "
            "to name your leaf directory as a number (eg. '/1/')?", servable=model.name, base_path=base))
    return {version: os.path.join(base, child) for version, child in chosen.items()}


class ServerCore:
    """Holds the config, the version states and the servables; runs the poll and load threads."""

    def __init__(self, options: CoreOptions) -> None:
        self.options = options
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._config: Any = None
        self._models: dict[str, Any] = {}
        self._aspired: dict[str, dict[int, str]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}
        self._serving: dict[str, dict[int, SavedModelServable]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # ----------------------------------------------------------------- config

    def reload_config(self, config: Any, wait: bool = False) -> None:
        """``ServerCore::ReloadConfig`` for a ``model_config_list`` config.

        With ``wait`` (a reload after the first config, as ``HandleReloadConfigRequest`` and the
        config-file poller do), poll once and wait until the models new in this config are
        available, as ``WaitUntilModelsAvailable`` does.
        """
        if config.WhichOneof("config") is None:
            get_logger().info(T("Taking no action for empty config."))
            return
        if config.WhichOneof("config") != "model_config_list":
            raise failed_precondition(T(
                "Cannot transition to requested config. It is only legal to transition from one "
                "ModelConfigList to another."))
        validate_model_config_list(config)
        with self._lock:
            self._update_labels(config)
            get_logger().info(T("Adding/updating models."))
            new_models = {model.name: model for model in config.model_config_list.config}
            for name in new_models:
                get_logger().info(T(" (Re-)adding model: <model>", model=name))
            added = [name for name in new_models if name not in self._models]
            for removed in set(self._models) - set(new_models):
                self._aspired[removed] = {}
            self._models = new_models
            self._config = config
        self._wake.set()
        if wait:
            self.poll_once()
            self.wait_until_models_available(added, on_reload=True)
        get_logger().info(T("Finished adding/updating models"))

    def _update_labels(self, config: Any) -> None:
        """``UpdateModelVersionLabelMap``: a label may only point at an available version."""
        labels: dict[str, dict[str, int]] = {}
        for model in config.model_config_list.config:
            for label, version in model.version_labels.items():
                state = self._states.get(model.name, {}).get(version)
                available = state is not None and state.state == ManagerState.AVAILABLE
                allowed = False
                if self.options.allow_version_labels_for_unavailable_models:
                    existing = self._labels.get(model.name, {}).get(label)
                    allowed = existing is None or existing == version
                if not allowed and not available:
                    raise failed_precondition(T(
                        "Request to assign label to version <version> of model <model>, which is not "
                        "currently available for inference", version=version, model=model.name))
                labels.setdefault(model.name, {})[label] = int(version)
        self._labels = labels

    # ---------------------------------------------------------------- threads

    def start(self) -> None:
        poll = threading.Thread(target=self._poll_loop, name="FileSystemStoragePathSource", daemon=True)
        manage = threading.Thread(target=self._manage_loop, name="AspiredVersionsManager", daemon=True)
        self._threads = [poll, manage]
        poll.start()
        manage.start()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=1.0)
        with self._lock:
            servables = [s for versions in self._serving.values() for s in versions.values()]
            self._serving = {}
        for servable in servables:
            servable.unload()

    def _poll_loop(self) -> None:
        wait = self.options.file_system_poll_wait_seconds
        if wait < 0:
            return
        while not self._stop.is_set():
            self.poll_once()
            if wait == 0:
                return
            self._stop.wait(wait)

    def poll_once(self) -> None:
        """One pass of ``PollFileSystemAndInvokeCallback``; one bad base path aborts the pass."""
        with self._lock:
            models = list(self._models.values())
        found: dict[str, dict[int, str]] = {}
        try:
            for model in models:
                found[model.name] = aspired_versions_for(model)
        except ServingError as error:
            get_logger().error(T("FileSystemStoragePathSource encountered a filesystem access error: "
                                 "<message>", message=error.message))
            return
        with self._lock:
            for name, versions in found.items():
                if name in self._models and versions != self._aspired.get(name):
                    self._aspired[name] = versions
                    self._wake.set()

    def _manage_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            with self._lock:
                names = list(self._aspired)
            for name in names:
                if self._stop.is_set():
                    return
                self._reconcile(name)

    # ------------------------------------------------------------ load/unload

    def _reconcile(self, name: str) -> None:
        with self._lock:
            aspired = dict(self._aspired.get(name, {}))
            states = self._states.setdefault(name, {})
            to_load = [v for v in sorted(aspired, reverse=True)
                       if v not in states or (states[v].state == ManagerState.END and states[v].error is None)]
            for version in to_load:
                states[version] = VersionState(ManagerState.START)
                get_logger().info(T("Approving load for servable version <id>", id=servable_id(name, version)))
            self._changed.notify_all()
        for version in to_load:
            self._load(name, version, aspired[version])
        with self._lock:
            serving = self._serving.get(name, {})
            any_aspired_available = any(v in serving for v in aspired)
            # AvailabilityPreservingPolicy: keep one un-aspired version serving until an aspired
            # one is available (unless nothing is aspired any more).
            unaspired = sorted(v for v in serving if v not in aspired)
            victims = unaspired if any_aspired_available or not aspired else unaspired[:-1]
        for version in victims:
            self._unload(name, version)

    def _load(self, name: str, version: int, path: str) -> None:
        """``LoaderHarness::Load`` with ``Retry`` (util/retrier.cc) and its log lines."""
        self._set_state(name, version, VersionState(ManagerState.LOADING))
        get_logger().info(T("Loading servable version <id>", id=servable_id(name, version)))
        description = T("Loading servable: <id>", id=servable_id(name, version))
        retries = max(self.options.max_num_load_retries, 0)
        error: Optional[ServingError] = None
        for attempt in range(retries + 1):
            if attempt:
                if self._stop.wait(max(self.options.load_retry_interval_micros, 0) / 1e6):
                    return
                get_logger().info(T("Retrying of <description> retry: <retry>", description=description,
                                    retry=attempt))
            servable = SavedModelServable(name, version, path)
            try:
                servable.load(list(self.options.saved_model_tags), self.options.session_threads)
                if self.options.batching is not None:
                    from .batching import validate_batching_options

                    validate_batching_options(self.options.batching)
            except ServingError as failure:
                servable.unload()
                error = failure
                get_logger().error(T("<description> failed: <status>", description=description,
                                     status=failure.to_string()))
                continue
            self._publish(name, version, servable)
            return
        get_logger().info(T("Retrying of <description> exhausted max_num_retries: <retries>",
                            description=description, retries=retries))
        if error is not None:
            get_logger().error(T("Servable <id> cannot be loaded: <status>", id=servable_id(name, version),
                                 status=error.to_string()))
        self._set_state(name, version, VersionState(ManagerState.END, error))

    def _publish(self, name: str, version: int, servable: SavedModelServable) -> None:
        if self.options.batching is not None:
            from .batching import BatchScheduler

            servable.batcher = BatchScheduler(servable.run_session, self.options.batching)
        with self._lock:
            self._serving.setdefault(name, {})[version] = servable
            self._states.setdefault(name, {})[version] = VersionState(ManagerState.AVAILABLE)
            self._changed.notify_all()
        get_logger().info(T("Successfully loaded servable version <id>", id=servable_id(name, version)))

    def _unload(self, name: str, version: int) -> None:
        with self._lock:
            servable = self._serving.get(name, {}).pop(version, None)
            if servable is None:
                return
            self._states[name][version] = VersionState(ManagerState.UNLOADING)
            self._changed.notify_all()
        get_logger().info(T("Quiescing servable version <id>", id=servable_id(name, version)))
        servable.wait_until_idle()
        get_logger().info(T("Done quiescing servable version <id>", id=servable_id(name, version)))
        servable.unload()
        self._set_state(name, version, VersionState(ManagerState.END))
        get_logger().info(T("Done unloading servable version <id>", id=servable_id(name, version)))

    def _set_state(self, name: str, version: int, state: VersionState) -> None:
        with self._lock:
            self._states.setdefault(name, {})[version] = state
            self._changed.notify_all()

    # ------------------------------------------------------------ startup wait

    def wait_until_models_available(self, names: list[str], on_reload: bool = False) -> None:
        """Wait for each model's latest version to settle.

        At startup this is ``ConnectSourcesWithFastInitialLoad`` (load_servables_fast.cc, whose
        error counts "servable(s)"); on a reload ``ServerCore::WaitUntilModelsAvailable``
        (server_core.cc, "model(s)").
        """
        with self._changed:
            while not self._stop.is_set():
                settled = [self._latest_settled(name) for name in names]
                if all(state is not None for state in settled):
                    break
                self._changed.wait(timeout=0.5)
            failed = [(name, version, state) for name in names
                      for version, state in [self._latest_state(name)]
                      if state is not None and state.state != ManagerState.AVAILABLE]
        if failed:
            parts = []
            for name, version, state in failed:
                reason = T(" due to error: <status>", status=state.error.to_string()) if state.error else ""
                parts.append(T("{<id><reason>}, ", id=servable_id(name, version), reason=reason))
            count, joined = len(failed), "".join(parts)
            raise ServingError(Code.UNKNOWN, T("<count> model(s) did not become available: {<parts>}",
                                               count=count, parts=joined) if on_reload else
                               T("<count> servable(s) did not become available: {<parts>}",
                                 count=count, parts=joined))

    def _latest_state(self, name: str) -> tuple[int, Optional[VersionState]]:
        states = self._states.get(name, {})
        if not states:
            return -1, None
        version = max(states)
        return version, states[version]

    def _latest_settled(self, name: str) -> Optional[VersionState]:
        _, state = self._latest_state(name)
        if state is not None and state.state in (ManagerState.AVAILABLE, ManagerState.END):
            return state
        return None

    # ------------------------------------------------------------ requests

    def _resolve(self, model_spec: Any) -> tuple[str, Optional[int], str]:
        """``ServableRequestFromModelSpec``; returns (name, version or None, request text)."""
        name = model_spec.name
        if not name:
            raise invalid_argument(T("ModelSpec has no name specified."))
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version":
            version = int(model_spec.version.value)
            return name, version, T("Specific(<name>, <version>)", name=name, version=version)
        if choice == "version_label":
            label = model_spec.version_label
            labelled = self._labels.get(name, {}).get(label)
            if labelled is None:
                raise invalid_argument(T("Unrecognized servable version label: <label>", label=label))
            return name, labelled, T("Specific(<name>, <version>)", name=name, version=labelled)
        return name, None, T("Latest(<name>)", name=name)

    @contextlib.contextmanager
    def servable_handle(self, model_spec: Any) -> Iterator[SavedModelServable]:
        """Hold a version for the length of one request (it cannot be unloaded meanwhile)."""
        with self._lock:
            name, version, request_text = self._resolve(model_spec)
            versions = self._serving.get(name, {})
            if version is None and versions:
                version = max(versions)
            servable = versions.get(version) if version is not None else None
            if servable is None:
                raise not_found(T("Servable not found for request: <request>", request=request_text))
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def version_states(self, name: str) -> dict[int, VersionState]:
        with self._lock:
            return dict(self._states.get(name, {}))

    def model_names(self) -> list[str]:
        with self._lock:
            return list(self._models)
