"""Status codes and the one error type the server raises.

TF Serving reports every failure as an ``absl::Status`` (a canonical code plus a message).  The
REST layer maps the code to an HTTP status (``http_server.cc`` ``ToHTTPStatusCode``) and puts the
message alone in ``{"error": ...}``; the gRPC layer sends the same code and message as the gRPC
status.  :class:`ServingError` carries exactly that pair.
"""

from __future__ import annotations

import enum

import grpc

from .texts import T


class Code(enum.IntEnum):
    """The canonical status codes (same numbers as ``absl::StatusCode`` and gRPC)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


GRPC_MESSAGE_LIMIT = 1024  # grpc_status_util.cc kErrorMessageLimit

# http_server.cc ToHTTPStatusCode: the HTTP status TF Serving answers for each code.
_HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A failed status: a canonical code and the message TF Serving (or TF) words."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    def to_string(self) -> str:
        """``absl::Status::ToString()`` form, e.g. ``INVALID_ARGUMENT: bad``."""
        return T("<code>: <message>", code=self.code.name, message=self.message)

    def grpc_message(self) -> str:
        """``ToGRPCStatus`` (model_servers/grpc_status_util.cc): cut after 1024 bytes."""
        data = self.message.encode("utf-8")
        if len(data) <= GRPC_MESSAGE_LIMIT:
            return self.message
        return T("<message>...TRUNCATED",
                 message=data[:GRPC_MESSAGE_LIMIT].decode("utf-8", "ignore"))

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    @property
    def grpc_code(self) -> grpc.StatusCode:
        for candidate in grpc.StatusCode:
            if candidate.value[0] == int(self.code):
                return candidate
        return grpc.StatusCode.UNKNOWN


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(Code.FAILED_PRECONDITION, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


def from_tf_error(error: BaseException) -> ServingError:
    """Wrap a ``tf.errors.OpError`` (or anything else) keeping TF's own code and text."""
    code = getattr(error, "error_code", None)
    message = getattr(error, "message", None)
    if isinstance(code, int) and isinstance(message, str):
        return ServingError(Code(code), message)
    return ServingError(Code.UNKNOWN, T("<exception_type>: <text>", exception_type=type(error).__name__,
                                        text=error))
