"""A loaded SavedModel version, run the way TF Serving runs it: in a TensorFlow Session.

TF Serving loads a SavedModel with ``LoadSavedModel`` into a ``Session`` and runs a signature by
feeding the signature's input tensor names and fetching its output tensor names.  We do the same
with TensorFlow's own runtime (``tf.compat.v1.saved_model.loader.load`` into a ``Session``, run
through the C API's ``TF_SessionRun``, i.e. ``DirectSession::Run``), so a wrong shape or dtype fails in the
same kernel with the same message TF Serving returns (e.g. ``Matrix size-incompatible: ...``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .status import Code, ServingError, from_tf_error
from .texts import T

if TYPE_CHECKING:
    from .batching import BatchScheduler

RunFn = Callable[[dict[str, np.ndarray], list[str], int], list[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class SessionThreads:
    """The sessions' thread pools from the flags (0: TensorFlow's choice). The ConfigProto is built
    when a model loads, so a server that fails on its flags or its config exits without importing
    TensorFlow (seconds of CPU per start-up; the real server's binary has no such cost)."""

    intra_op: int
    inter_op: int

    def config_proto(self) -> Any:
        from tensorflow.core.protobuf import config_pb2

        config = config_pb2.ConfigProto()
        config.intra_op_parallelism_threads = self.intra_op
        config.inter_op_parallelism_threads = self.inter_op
        return config


class SavedModelServable:
    """One model version: its MetaGraphDef, a Session, and in-flight request accounting."""

    def __init__(self, name: str, version: int, path: str) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.meta_graph_def: Any = None
        self._session: Any = None
        self._outputs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.batcher: Optional["BatchScheduler"] = None

    def load(self, tags: list[str], threads: Optional[SessionThreads]) -> None:
        """Load the SavedModel; raise :class:`ServingError` with TF's (or TF C++'s) text."""
        saved_model = self._read_saved_model()
        if saved_model is not None:
            _check_tags(saved_model, tags)
        import tensorflow as tf

        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=None if threads is None else threads.config_proto())
        try:
            from tensorflow.python.util import deprecation

            with graph.as_default(), deprecation.silence():
                self.meta_graph_def = tf.compat.v1.saved_model.loader.load(session, tags, self.path)
        except tf.errors.OpError as error:
            session.close()
            raise from_tf_error(error) from error
        except (RuntimeError, OSError, ValueError) as error:
            session.close()
            raise ServingError(Code.UNKNOWN, str(error)) from error
        self._session = session

    def _read_saved_model(self) -> Any:
        """TF Serving's checks before loading, then the C++ reader's.

        ``LoadSessionBundleOrSavedModelBundle`` (session_bundle/oss/session_bundle_util.cc) refuses
        a legacy ``export.meta`` and a directory that ``MaybeSavedModelDirectory`` (TF
        cc/saved_model/loader.cc) rules out; then the C++ reader (TF cc/saved_model/reader.cc,
        ``ReadBinaryProto`` in platform/env.cc) parses ``saved_model.pb``.  Python's loader words
        these failures differently.  Returns the parsed ``SavedModel`` proto (None for a text
        ``saved_model.pbtxt``).
        """
        if os.path.exists(os.path.join(self.path, "export.meta")):
            raise ServingError(Code.UNIMPLEMENTED, T("Session Bundle is deprecated and removed."))
        binary = os.path.join(self.path, "saved_model.pb")
        if not os.path.exists(binary):
            if os.path.exists(binary + "txt"):
                return None
            raise ServingError(Code.NOT_FOUND, T(
                "Specified file path does not appear to contain a SavedModel bundle (should have a file "
                "called `saved_model.pb`)\nSpecified file path: <path>", path=self.path))
        from google.protobuf.message import DecodeError
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model = saved_model_pb2.SavedModel()
        try:
            with open(binary, "rb") as handle:
                saved_model.ParseFromString(handle.read())
        except DecodeError as error:
            raise ServingError(Code.DATA_LOSS, T("Can't parse <path> as binary proto", path=binary)) from error
        return saved_model

    @property
    def signature_defs(self) -> Any:
        return self.meta_graph_def.signature_def

    def acquire(self) -> None:
        with self._lock:
            self._in_flight += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_until_idle(self) -> None:
        """Quiesce: block until no request holds this version."""
        with self._lock:
            while self._in_flight > 0:
                self._idle.wait(timeout=0.5)

    def run(self, feeds: dict[str, np.ndarray], fetches: list[str], timeout_ms: int) -> list[np.ndarray]:
        """Run through the batcher when batching is on, else directly."""
        if self.batcher is not None:
            return self.batcher.run(feeds, fetches, timeout_ms)
        return self.run_session(feeds, fetches, timeout_ms)

    def run_session(self, feeds: dict[str, np.ndarray], fetches: list[str], timeout_ms: int) -> list[np.ndarray]:
        """``Session::Run`` through the C API (DirectSession::Run, as TF Serving calls it)."""
        import tensorflow as tf
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.client import pywrap_tf_session as tf_session

        feed_dict = {self._output(name): value for name, value in feeds.items()}
        fetch_list = [self._output(name) for name in fetches]
        options = None
        if timeout_ms > 0:
            run_options = config_pb2.RunOptions(timeout_in_ms=timeout_ms)
            options = tf_session.TF_NewBufferFromString(run_options.SerializeToString())
        try:
            outputs = tf_session.TF_SessionRun_wrapper(self._session._session, options, feed_dict,  # noqa: SLF001
                                                       fetch_list, [], None)
        except tf.errors.OpError as error:
            raise from_tf_error(error) from error
        finally:
            if options is not None:
                tf_session.TF_DeleteBuffer(options)
        return [np.asarray(output) for output in outputs]

    def _output(self, tensor_name: str) -> Any:
        with self._lock:
            found = self._outputs.get(tensor_name)
            if found is None:
                found = self._session.graph.get_tensor_by_name(tensor_name)._as_tf_output()  # noqa: SLF001
                self._outputs[tensor_name] = found
            return found

    def unload(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()
        with self._lock:
            self._outputs.clear()
        if self._session is not None:
            self._session.close()
            self._session = None


def _check_tags(saved_model: Any, tags: list[str]) -> None:
    """``FindMetaGraphDef`` (tensorflow/cc/saved_model/reader.cc): an exact tag-set match."""
    wanted = set(tags)
    if any(set(graph.meta_info_def.tags) == wanted for graph in saved_model.meta_graphs):
        return
    raise ServingError(Code.NOT_FOUND, T(
        "Could not find meta graph def matching supplied tags: { <tags> }. To inspect available tag-sets in "
        "the SavedModel, please use the SavedModel CLI: `saved_model_cli`", tags=" ".join(tags)))
