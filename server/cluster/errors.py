"""Errors of the multi-node layer (under the one root, SidecoachError)."""

from __future__ import annotations

from server.core.errors import SidecoachError, Unauthorized, Unavailable


class ClusterError(SidecoachError):
    code = "cluster_error"


class RedisUnavailable(ClusterError, Unavailable):
    """Redis did not answer; callers fall back to what this node knows."""

    code = "redis_unavailable"
    status = 503


class NodeUnavailable(ClusterError, Unavailable):
    """The node hosting the session cannot be reached right now (it may be
    restarting); the page retries and the session moves if it is gone."""

    code = "node_unavailable"
    status = 503


class RemoteError(ClusterError):
    """What another node answered a request with (its code kept)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownRequest(ClusterError):
    code = "unknown_request"
    status = 400


class LinkRefused(ClusterError, Unauthorized):
    """A node link without a valid node token."""

    code = "unauthorized"
    status = 401
