"""Errors of the multi-node layer (under the one root, SidecoachError)."""

from __future__ import annotations

from server.core.errors import SidecoachError


class ClusterError(SidecoachError):
    code = "cluster_error"


class RedisUnavailable(ClusterError):
    """Redis did not answer; callers fall back to what this node knows."""

    code = "redis_unavailable"


class NodeUnavailable(ClusterError):
    """The node hosting the session cannot be reached right now (it may be
    restarting); the page retries and the session moves if it is gone."""

    code = "node_unavailable"


class LinkRefused(ClusterError):
    """A node link without a valid node token."""

    code = "unauthorized"
