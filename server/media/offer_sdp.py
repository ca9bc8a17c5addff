"""What the server adds to aiortc's SDP offers, and reads back from answers.

aiortc 1.16 offers neither simulcast nor Opus parameters nor a bandwidth
line, and keeps no state for them; the server needs none either (it never
decodes), so they are added to the offer text sent to the client:

* **simulcast receive** on a camera it asks a browser to publish (VP8):
  the RTP stream id header extension and ``a=rid:<r> recv`` for each of
  ``SIMULCAST_RIDS`` (low to high), ``a=simulcast:recv l;m;h``. A browser
  that can answers ``a=simulcast:send ...`` and sends one RTP stream per
  rid; one that cannot (aiortc) answers without it and sends one stream.
* **Opus in-band FEC**: ``useinbandfec=1`` (and ``minptime=10``) on every
  Opus m-line, so the browser's encoder adds forward error correction,
  which the SFU forwards untouched to the listener's decoder.
* **a bandwidth cap** (``b=AS`` in kbit/s and ``b=TIAS`` in bit/s) on the
  m-lines a publisher sends video on, when the session has one.

Pure text functions: no aiortc, no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#: aiortc's own extensions use ids 1-3 (mid, audio level, abs-send-time);
#: ids are shared across a BUNDLE group
RID_EXT_ID = 4
#: simulcast layers asked of a browser camera, lowest resolution first
SIMULCAST_RIDS = ("l", "m", "h")
OPUS_FEC = {"minptime": "10", "useinbandfec": "1"}


@dataclass(frozen=True)
class OfferExtras:
    #: mids of recvonly (or parked, inactive) video m-lines to receive as simulcast
    simulcast_mids: frozenset[str] = field(default_factory=frozenset)
    opus_fec: bool = True
    #: cap on what a publisher sends per video m-line (kbit/s), or None
    max_video_kbps: int | None = None


def _sections(sdp: str) -> list[list[str]]:
    """The session part, then one list of lines per m-section."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _mid(section: list[str]) -> str | None:
    return next((line[6:] for line in section if line.startswith("a=mid:")), None)


def _direction(section: list[str]) -> str:
    for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
        if f"a={d}" in section:
            return d
    return "sendrecv"


def extend_offer(sdp: str, extras: OfferExtras) -> str:
    """``sdp`` (an offer made by aiortc) with ``extras`` added."""
    sections = _sections(sdp)
    out = list(sections[0])
    for section in sections[1:]:
        kind = section[0][2:].split(" ", 1)[0]
        mid = _mid(section)
        lines = list(section)
        if kind == "audio" and extras.opus_fec:
            lines = _with_opus_fec(lines)
        direction = _direction(section)
        if kind == "video" and direction == "recvonly" and extras.max_video_kbps:
            lines = _with_bandwidth(lines, extras.max_video_kbps)
        # a parked (inactive) m-line keeps its simulcast: the browser's
        # transceiver keeps its encodings, and Chromium refuses to answer
        # simulcast on an m-line offered without the rid extension
        if (
            kind == "video"
            and direction in ("recvonly", "inactive")
            and mid in extras.simulcast_mids
        ):
            lines = _with_simulcast(lines)
        out += lines
    return "\r\n".join(out) + "\r\n"


def _insert_after(lines: list[str], prefix: str, new: list[str]) -> list[str]:
    i = next((i for i, line in enumerate(lines) if line.startswith(prefix)), len(lines) - 1)
    return lines[: i + 1] + new + lines[i + 1 :]


def _with_simulcast(lines: list[str]) -> list[str]:
    new = [f"a=extmap:{RID_EXT_ID} {RID_URI}"]
    new += [f"a=rid:{rid} recv" for rid in SIMULCAST_RIDS]
    new.append(f"a=simulcast:recv {';'.join(SIMULCAST_RIDS)}")
    return _insert_after(lines, "a=mid:", new)


def _with_bandwidth(lines: list[str], kbps: int) -> list[str]:
    return _insert_after(lines, "c=", [f"b=AS:{kbps}", f"b=TIAS:{kbps * 1000}"])


def _with_opus_fec(lines: list[str]) -> list[str]:
    pts = [
        m.group(1)
        for line in lines
        if (m := re.match(r"a=rtpmap:(\d+) opus/", line, flags=re.IGNORECASE))
    ]
    for pt in pts:
        i = next((i for i, line in enumerate(lines) if line.startswith(f"a=fmtp:{pt} ")), None)
        if i is None:
            params = ";".join(f"{k}={v}" for k, v in OPUS_FEC.items())
            lines = _insert_after(lines, f"a=rtpmap:{pt} ", [f"a=fmtp:{pt} {params}"])
        else:
            have = fmtp_params(lines[i])
            extra = [f"{k}={v}" for k, v in OPUS_FEC.items() if k not in have]
            if extra:
                lines[i] = lines[i] + ";" + ";".join(extra)
    return lines


def fmtp_params(line: str) -> dict[str, str]:
    """``a=fmtp:96 a=1;b=2`` -> {"a": "1", "b": "2"}."""
    params = line.split(" ", 1)[1] if " " in line else ""
    pairs = (p.split("=", 1) for p in params.split(";") if "=" in p)
    return {k.strip(): v.strip() for k, v in pairs}


def codec_fmtp(sdp: str, kind: str, codec: str) -> list[dict[str, str]]:
    """The fmtp parameters of ``codec`` (e.g. "opus") in every ``kind``
    m-section of ``sdp`` that offers it (for checks and tests)."""
    found = []
    for section in _sections(sdp)[1:]:
        if not section[0].startswith(f"m={kind} "):
            continue
        for line in section:
            m = re.match(rf"a=rtpmap:(\d+) {codec}/", line, flags=re.IGNORECASE)
            if m:
                pt = m.group(1)
                fmtp = next((x for x in section if x.startswith(f"a=fmtp:{pt} ")), None)
                found.append(fmtp_params(fmtp) if fmtp else {})
    return found


def answered_simulcast(sdp: str) -> dict[str, tuple[str, ...]]:
    """mid -> the rids an answer says it sends (``a=simulcast:send``), in
    the offer's order; m-lines without simulcast are left out."""
    result: dict[str, tuple[str, ...]] = {}
    for section in _sections(sdp)[1:]:
        mid = _mid(section)
        line = next((x for x in section if x.startswith("a=simulcast:send ")), None)
        if mid is None or line is None:
            continue
        # "send l;m;h" (alternatives "a,b" and paused "~a" are not offered)
        sent = {r.strip().lstrip("~") for r in line.split(" ", 1)[1].replace(",", ";").split(";")}
        rids = tuple(r for r in SIMULCAST_RIDS if r in sent)
        if len(rids) > 1:
            result[mid] = rids
    return result


def extension_id(sdp: str, uri: str) -> int | None:
    """The id an SDP gives to the RTP header extension ``uri``."""
    m = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(uri)}\s*$", sdp, flags=re.MULTILINE)
    return int(m.group(1)) if m else None


# -- a client's offer (WHIP, WHEP) -------------------------------------------

_MEDIA_LINE = re.compile(r"^m=(\w+) \d+ [\w/]+( \S+)+$")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass(frozen=True)
class OfferShape:
    """What a client's offer asks, read before anything is made for it."""

    #: (kind, direction as the client sees it) of each audio/video m-line
    media: tuple[tuple[str, str], ...]
    has_ice: bool
    has_fingerprint: bool

    def sends(self) -> bool:
        return any(d in ("sendonly", "sendrecv") for _, d in self.media)

    def receives(self) -> bool:
        return any(d in ("recvonly", "sendrecv") for _, d in self.media)


def offer_shape(sdp: str) -> OfferShape | None:
    """The shape of an SDP offer, or None if the text is not SDP (no
    ``v=0`` first, a line that is not ``x=...``, an m-line that does not parse)."""
    lines = [line.rstrip("\r") for line in sdp.split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        return None
    media: list[tuple[str, str]] = []
    session_direction = "sendrecv"
    kind: str | None = None
    direction = ""
    has_ice = has_fingerprint = in_media = False
    for line in lines:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            return None
        if line.startswith("m="):
            if kind is not None:
                media.append((kind, direction or session_direction))
            match = _MEDIA_LINE.match(line)
            if match is None:
                return None
            kind = match.group(1) if match.group(1) in ("audio", "video") else None
            direction, in_media = "", True
        elif line.startswith("a="):
            attr = line[2:].split(":", 1)[0]
            if attr in _DIRECTIONS:
                if not in_media:
                    session_direction = attr
                else:
                    direction = attr
            elif attr == "ice-ufrag":
                has_ice = True
            elif attr == "fingerprint":
                has_fingerprint = True
    if kind is not None:
        media.append((kind, direction or session_direction))
    return OfferShape(tuple(media), has_ice, has_fingerprint)


#: rid names whose meaning is known, lowest resolution first (a client's
#: offer may list its layers in any order: WebRTC's samples offer f;h;q)
RID_RANKS: tuple[frozenset[str], ...] = (
    frozenset({"q", "l", "low", "lo", "quarter", "s", "small"}),
    frozenset({"h", "m", "mid", "medium", "half"}),
    frozenset({"f", "high", "hi", "full", "hd", "large"}),
)


def _rank(rid: str, rids: tuple[str, ...]) -> tuple[int, int]:
    # "h" is "half" beside "f", "high" beside "l"/"m"
    if rid == "h" and "f" not in rids:
        return (2, 0)
    known = next((i for i, names in enumerate(RID_RANKS) if rid.lower() in names), None)
    return (known if known is not None else 1, rids.index(rid))


def offered_simulcast(sdp: str) -> dict[str, tuple[str, ...]]:
    """mid -> the rids a client's offer sends as simulcast (``a=simulcast:send``),
    lowest resolution first as their names say (else in the offer's order);
    m-lines without simulcast (or with one rid) are left out."""
    result: dict[str, tuple[str, ...]] = {}
    for section in _sections(sdp)[1:]:
        mid = _mid(section)
        line = next((x for x in section if x.startswith("a=simulcast:send ")), None)
        if mid is None or line is None:
            continue
        spec = line.split(" ", 2)[1]
        # "send a;b;c": one rid per stream ("a,b": alternatives, take the first;
        # "~a": paused, not taken)
        rids = tuple(
            first
            for alternative in spec.split(";")
            if (first := alternative.split(",")[0].strip()) and not first.startswith("~")
        )
        declared = {x.split()[0][6:] for x in section if x.startswith("a=rid:") and " send" in x}
        rids = tuple(r for r in rids if r in declared)
        if len(rids) > 1:
            result[mid] = tuple(sorted(rids, key=lambda r: _rank(r, rids)))
    return result


def answer_simulcast(sdp: str, taken: dict[str, tuple[str, ...]], rid_ext_id: int) -> str:
    """``sdp`` (aiortc's answer) receiving simulcast on the m-lines of
    ``taken`` (mid -> rids), with the offer's id for the rid extension."""
    sections = _sections(sdp)
    out = list(sections[0])
    for section in sections[1:]:
        rids = taken.get(_mid(section) or "")
        if rids:
            new = [f"a=extmap:{rid_ext_id} {RID_URI}"]
            new += [f"a=rid:{rid} recv" for rid in rids]
            new.append(f"a=simulcast:recv {';'.join(rids)}")
            section = _insert_after(section, "a=mid:", new)
        out += section
    return "\r\n".join(out) + "\r\n"
