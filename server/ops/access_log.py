"""aiohttp's access log without credentials: invite and admin tokens in the
query string (``?token=``, ``?admin=``) are redacted, no header but Referer
(also redacted) and User-Agent is written, and anything shaped like a JWT
is masked wherever it appears in the line."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

#: query parameters that carry credentials
SECRET_PARAMS = frozenset({"token", "admin", "access_token", "auth", "code", "state", "id_token"})
#: paths whose last part is a secret (a person's calendar feed)
_SECRET_PATH = re.compile(r"^(/calendar/)[^/?]+")
REDACTED = "REDACTED"
#: three base64url parts, the first one a JSON object ("eyJ" = '{"')
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def redact_url(url: str) -> str:
    """``url`` (a path with query, or a full URL) with secret parameters
    and JWT-shaped strings replaced by ``REDACTED``."""
    base, sep, query = url.partition("?")
    base = _SECRET_PATH.sub(r"\1" + REDACTED, base)
    if sep:
        pairs = [
            (k, REDACTED if k.lower() in SECRET_PARAMS else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        url = base + "?" + urlencode(pairs, safe="/:,")
    else:
        url = base
    return _JWT.sub(REDACTED, url)


class RedactingAccessLogger(AbstractAccessLogger):
    """``remote "METHOD path?query HTTP/x.y" status bytes seconds "referer"
    "user agent"``, with credentials redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        target = redact_url(request.path_qs)
        referer = redact_url(request.headers.get("Referer", "-"))
        agent = request.headers.get("User-Agent", "-")[:200]
        line = (
            f'{request.remote or "-"} "{request.method} {target} {version}" '
            f'{response.status} {response.body_length} {time:.6f} "{referer}" "{agent}"'
        )
        self.logger.info(_JWT.sub(REDACTED, line))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
