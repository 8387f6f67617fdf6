"""HTTP status codes and reason phrases, as Twisted code imports them from ``twisted.web.http``.

Re-exported by :mod:`treadle.web.http`, which is where code imports them from; they sit here,
at the bottom of the web layer, so that every module can use them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

__all__ = [
    "ACCEPTED",
    "BAD_GATEWAY",
    "BAD_REQUEST",
    "CACHED",
    "CONFLICT",
    "CONTINUE",
    "CREATED",
    "EXPECTATION_FAILED",
    "FORBIDDEN",
    "FOUND",
    "GATEWAY_TIMEOUT",
    "GONE",
    "HTTP_VERSION_NOT_SUPPORTED",
    "IM_A_TEAPOT",
    "INSUFFICIENT_STORAGE_SPACE",
    "INTERNAL_SERVER_ERROR",
    "LENGTH_REQUIRED",
    "MOVED_PERMANENTLY",
    "MULTIPLE_CHOICE",
    "MULTI_STATUS",
    "NON_AUTHORITATIVE_INFORMATION",
    "NOT_ACCEPTABLE",
    "NOT_ALLOWED",
    "NOT_EXTENDED",
    "NOT_FOUND",
    "NOT_IMPLEMENTED",
    "NOT_MODIFIED",
    "NO_CONTENT",
    "OK",
    "PARTIAL_CONTENT",
    "PAYMENT_REQUIRED",
    "PERMANENT_REDIRECT",
    "PRECONDITION_FAILED",
    "PROXY_AUTH_REQUIRED",
    "REQUESTED_RANGE_NOT_SATISFIABLE",
    "REQUEST_ENTITY_TOO_LARGE",
    "REQUEST_TIMEOUT",
    "REQUEST_URI_TOO_LONG",
    "RESET_CONTENT",
    "RESPONSES",
    "SEE_OTHER",
    "SERVICE_UNAVAILABLE",
    "SWITCHING",
    "TEMPORARY_REDIRECT",
    "UNAUTHORIZED",
    "UNSUPPORTED_MEDIA_TYPE",
    "USE_PROXY",
]

CONTINUE: Final = 100
SWITCHING: Final = 101
OK: Final = 200
CREATED: Final = 201
ACCEPTED: Final = 202
NON_AUTHORITATIVE_INFORMATION: Final = 203
NO_CONTENT: Final = 204
RESET_CONTENT: Final = 205
PARTIAL_CONTENT: Final = 206
MULTI_STATUS: Final = 207
MULTIPLE_CHOICE: Final = 300
MOVED_PERMANENTLY: Final = 301
FOUND: Final = 302
SEE_OTHER: Final = 303
NOT_MODIFIED: Final = 304
USE_PROXY: Final = 305
TEMPORARY_REDIRECT: Final = 307
PERMANENT_REDIRECT: Final = 308
BAD_REQUEST: Final = 400
UNAUTHORIZED: Final = 401
PAYMENT_REQUIRED: Final = 402
FORBIDDEN: Final = 403
NOT_FOUND: Final = 404
NOT_ALLOWED: Final = 405
NOT_ACCEPTABLE: Final = 406
PROXY_AUTH_REQUIRED: Final = 407
REQUEST_TIMEOUT: Final = 408
CONFLICT: Final = 409
GONE: Final = 410
LENGTH_REQUIRED: Final = 411
PRECONDITION_FAILED: Final = 412
REQUEST_ENTITY_TOO_LARGE: Final = 413
REQUEST_URI_TOO_LONG: Final = 414
UNSUPPORTED_MEDIA_TYPE: Final = 415
REQUESTED_RANGE_NOT_SATISFIABLE: Final = 416
EXPECTATION_FAILED: Final = 417
IM_A_TEAPOT: Final = 418
INTERNAL_SERVER_ERROR: Final = 500
NOT_IMPLEMENTED: Final = 501
BAD_GATEWAY: Final = 502
SERVICE_UNAVAILABLE: Final = 503
GATEWAY_TIMEOUT: Final = 504
HTTP_VERSION_NOT_SUPPORTED: Final = 505
INSUFFICIENT_STORAGE_SPACE: Final = 507
NOT_EXTENDED: Final = 510

#: What ``setLastModified``/``setETag`` return when the response is a 304 or 412: render
#: methods return it as the (empty) body. The empty bytes object is a singleton, so
#: ``result is http.CACHED`` holds.
CACHED: Final = b""

#: Reason phrases by status code (``twisted.web.http.RESPONSES``).
RESPONSES: Final[dict[int, bytes]] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
RESPONSES[306] = b"Reserved"
