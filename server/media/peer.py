"""Peer: the one RTCPeerConnection the server holds for a participant.

Negotiation is always server-driven, so there is never glare: when the
participant asks to publish a track, or the Router gives it a Consumer, the
peer adds a transceiver and sends an offer; the client answers. Changes that
arrive while an offer is out are batched into the next offer.

The SDP stays bounded: an m-line whose track ended is parked (inactive) and
reused for the next track of the same kind, direction and codec, as browsers
and mediasoup-client reuse theirs; a refused request never adds one.

Offers carry what aiortc does not write itself (server/media/offer_sdp.py):
simulcast receive on a VP8 camera, Opus in-band FEC, the session's video
bitrate cap; the answer says whether the client sends simulcast.

A peer made with ``client_offers`` (WHIP and WHEP: the client offers once
and nothing is renegotiated) answers that offer instead (``answer_offer``):
what the client sends becomes its publications, what it receives becomes
fixed slots (``_Slot``) that consumers take as they come and go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCRtpTransceiver, RTCSessionDescription

from server.core.config import Config
from server.core.errors import (
    InvalidMessage,
    NegotiationFailed,
    StaleAnswer,
    UnacceptableOffer,
)
from server.core.tasks import TaskOwner
from server.media import aiortc_adapter as adapter
from server.media import offer_sdp
from server.media.consumer import Consumer, PacketWriter
from server.media.errors import UnsupportedCodec
from server.media.policy import ProducerInfo, Source
from server.media.producer import CodecInfo, Producer

logger = logging.getLogger(__name__)

DEFAULT_CODECS = {"video": "video/VP8", "audio": "audio/opus"}


class PeerEvents(Protocol):
    async def send_offer(self, payload: dict[str, Any]) -> None: ...

    def producer_ready(self, producer: Producer) -> None: ...

    def publish_failed(self, producer_id: str, reason: str) -> None: ...

    def peer_failed(self, reason: str) -> None: ...


CodecKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class _Publication:
    info: ProducerInfo
    transceiver: RTCRtpTransceiver
    codec: CodecKey
    producer: Producer | None = None
    #: in an offer already: the next answer settles it
    offered: bool = False


@dataclass
class _Subscription:
    consumer: Consumer
    transceiver: RTCRtpTransceiver
    codec: CodecKey
    track: adapter.IdleTrack
    writer: adapter.OutboundRtp
    offered: bool = False


@dataclass
class _Parked:
    """An m-line whose track ended, inactive, kept for the next track that
    fits it (same kind, direction, codec)."""

    transceiver: RTCRtpTransceiver
    direction: str  # "recvonly" (a publication) or "sendonly" (a subscription)
    codec: CodecKey
    track: adapter.IdleTrack | None = None


@dataclass
class _Slot:
    """A receiving m-line of a client's offer (WHEP): one consumer at a time."""

    transceiver: RTCRtpTransceiver
    track: adapter.IdleTrack
    consumer_id: str | None = None


class _NoSlot:
    """The writer of a consumer a client-offered peer has no free m-line for:
    its packets go nowhere."""

    ready = False

    def send(self, packet: Any, sequence_number: int, timestamp: int) -> bool:
        return False

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        return None


#: decides what a client-offered m-line of ``kind`` ("audio"/"video") that
#: the client sends carries: its producer, or None (the m-line is refused)
PublishPlan = Callable[[str], ProducerInfo | None]


class Peer:
    def __init__(
        self,
        *,
        participant_id: str,
        role: str,
        config: Config,
        events: PeerEvents,
        describe_consumer: Callable[[Consumer], dict[str, Any]],
        client_offers: bool = False,
    ) -> None:
        self._participant_id = participant_id
        self._role = role
        self._config = config
        self._events = events
        self._describe = describe_consumer
        self.pc = adapter.new_peer_connection()
        self._publications: dict[str, _Publication] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._parked: list[_Parked] = []
        #: m-lines offered as simulcast once (they stay so)
        self._simulcast_mids: set[str] = set()
        #: mid -> the simulcast rids the client's last answer sends
        self._answered_rids: dict[str, tuple[str, ...]] = {}
        self._dirty = asyncio.Event()
        self._settled = asyncio.Event()  # the connection got past connecting
        self._answer: asyncio.Future[None] | None = None
        self._negotiation_id = 0
        self.negotiations = 0
        self._tasks = TaskOwner(f"peer {participant_id}")
        self._closed = False
        self._log = logging.LoggerAdapter(logger, {"participant": participant_id})
        self.pc.on("connectionstatechange", self._on_connection_state)
        #: the client offered (WHIP/WHEP): no server offers, fixed slots
        self.client_offers = client_offers
        self._slots: list[_Slot] = []
        #: the answer to a client's offer, as sent (with what aiortc does not write)
        self.answer_sdp = ""
        if not client_offers:
            self._tasks.spawn(self._negotiation_loop(), name=f"negotiate {participant_id}")

    @property
    def participant_id(self) -> str:
        return self._participant_id

    @property
    def role(self) -> str:
        return self._role

    # -- publishing -----------------------------------------------------

    @property
    def transceiver_count(self) -> int:
        """m-lines this peer negotiates (active and parked)."""
        return len(self.pc.getTransceivers())

    def request_publish(self, info: ProducerInfo, codec: str | None) -> None:
        mime = codec or DEFAULT_CODECS[info.kind]
        if "/" not in mime:
            mime = f"{info.kind}/{mime}"
        try:
            capability = adapter.codec_capability(info.kind, mime, {})
        except ValueError as exc:
            raise UnsupportedCodec(str(exc)) from exc  # and no m-line was added
        key = adapter.codec_key(capability)
        parked = self._unpark("recvonly", info.kind, key)
        if parked is not None:
            transceiver = parked.transceiver
            transceiver.direction = "recvonly"
        else:
            transceiver = self.pc.addTransceiver(info.kind, direction="recvonly")
        transceiver.setCodecPreferences([capability])
        self._publications[info.producer_id] = _Publication(info, transceiver, key)
        self._dirty.set()

    def unpublish(self, producer_id: str) -> None:
        publication = self._publications.pop(producer_id, None)
        if publication is not None:
            self._park(publication.transceiver, "recvonly", publication.codec)

    def _activate_publications(self) -> None:
        for producer_id, pub in list(self._publications.items()):
            if pub.producer is not None or not pub.offered:
                continue  # active already, or not in the offer just answered
            if pub.transceiver.currentDirection != "recvonly":
                self._publications.pop(producer_id)
                self._park(pub.transceiver, "recvonly", pub.codec)
                self._events.publish_failed(producer_id, "the client did not send the track")
                continue
            codec = adapter.negotiated_codec(pub.transceiver)
            if codec is None:
                self._publications.pop(producer_id)
                self._park(pub.transceiver, "recvonly", pub.codec)
                self._events.publish_failed(producer_id, "no codec negotiated")
                continue
            receiver = pub.transceiver.receiver
            limits = self._config.limits
            video = pub.info.kind == "video"
            producer = Producer(
                pub.info,
                CodecInfo.from_aiortc(codec),
                request_keyframe=_bind_pli(receiver),
                request_nack=_bind_nack(receiver),
                keyframe_min_interval_ms=limits.keyframe_min_interval_ms,
                cache_size=_power_of_two(limits.packet_cache_size),
                rids=self._answered_rids.get(pub.transceiver.mid or "", ()),
                send_remb=_bind_remb(receiver) if video else None,
                max_bitrate_bps=limits.max_video_bitrate_kbps * 1000 if video else None,
            )
            adapter.tap_receiver(
                receiver,
                producer.on_packet,
                producer.on_sender_report,
                # a whisper's coach adds the Opus FEC the teacher's link needs
                loss_hint=producer.downstream_loss if pub.info.source == Source.WHISPER else None,
            )
            producer.on_close(lambda p: self.unpublish(p.id))
            pub.producer = producer
            self._events.producer_ready(producer)

    # -- consuming (ConsumerEndpoint) -------------------------------------

    def open_writer(self, consumer: Consumer) -> PacketWriter:
        if self.client_offers:
            return self._slot_writer(consumer)
        producer = consumer.producer
        codec = producer.codec
        capability = adapter.codec_capability(producer.kind, codec.mime_type, codec.parameters)
        key = adapter.codec_key(capability)
        parked = self._unpark("sendonly", producer.kind, key)
        if parked is not None and parked.track is not None:
            transceiver, track = parked.transceiver, parked.track
            transceiver.direction = "sendonly"
        else:
            track = adapter.IdleTrack(producer.kind)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences([capability])
        writer = adapter.OutboundRtp(transceiver, consumer.on_feedback, armed=False)
        self._subscriptions[consumer.id] = _Subscription(consumer, transceiver, key, track, writer)
        self._dirty.set()
        return writer

    def _slot_writer(self, consumer: Consumer) -> PacketWriter:
        """A free m-line of the client's offer of the consumer's kind and
        codec, or no writer at all (nothing is renegotiated)."""
        producer = consumer.producer
        for slot in self._slots:
            codec = adapter.negotiated_codec(slot.transceiver)
            if (
                slot.consumer_id is None
                and slot.transceiver.kind == producer.kind
                and codec is not None
                and codec.mimeType.lower() == producer.codec.mime_type.lower()
            ):
                slot.consumer_id = consumer.id
                return adapter.OutboundRtp(slot.transceiver, consumer.on_feedback, armed=True)
        self._log.info("no free %s m-line for %s", producer.kind, producer.id)
        return _NoSlot()

    def release_writer(self, consumer: Consumer) -> None:
        for slot in self._slots:
            if slot.consumer_id == consumer.id:
                slot.consumer_id = None
        sub = self._subscriptions.pop(consumer.id, None)
        if sub is None or self._closed:
            return
        self._park(sub.transceiver, "sendonly", sub.codec, sub.track)

    # -- m-line reuse ---------------------------------------------------

    def _park(
        self,
        transceiver: RTCRtpTransceiver,
        direction: str,
        codec: CodecKey,
        track: adapter.IdleTrack | None = None,
    ) -> None:
        if self._closed:
            return
        if direction == "recvonly":
            adapter.untap_receiver(transceiver.receiver)
        if self.client_offers:
            return  # nothing is renegotiated: the m-line just carries nothing
        transceiver.direction = "inactive"
        self._parked.append(_Parked(transceiver, direction, codec, track))
        self._dirty.set()

    def _unpark(self, direction: str, kind: str, codec: CodecKey) -> _Parked | None:
        for i, parked in enumerate(self._parked):
            t = parked.transceiver
            if parked.direction == direction and t.kind == kind and parked.codec == codec:
                return self._parked.pop(i)
        return None

    # -- negotiation ----------------------------------------------------

    async def _negotiation_loop(self) -> None:
        timeout = self._config.limits.negotiation_timeout_s
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self._closed or self.pc.signalingState == "closed":
                # closing here (Python 3.11's wait_for can swallow a
                # cancellation), or aiortc closed the connection itself
                # because the other side closed DTLS: never offer on it
                return
            # what this offer settles, taken before it is made: a change
            # after this point goes into the next offer
            publications = [p for p in self._publications.values() if p.producer is None]
            subscriptions = list(self._subscriptions.values())
            offer = await self.pc.createOffer()
            adapter.restrict_ice(
                self.pc, self._config.ice_listen_ips, self._config.ice_announced_ip
            )
            await self.pc.setLocalDescription(offer)
            extras = self._offer_extras()
            self._negotiation_id += 1
            self._answer = asyncio.get_running_loop().create_future()
            await self._events.send_offer(self._offer_payload(publications, subscriptions, extras))
            if self._closed:
                return
            try:
                await asyncio.wait_for(asyncio.shield(self._answer), timeout)
            except TimeoutError:
                self._log.warning("no answer within %.0f s: giving up on this peer", timeout)
                self._events.peer_failed("negotiation timed out")
                return
            self.negotiations += 1
            for pub in publications:
                pub.offered = True
            for sub in subscriptions:
                sub.offered = True
                sub.writer.arm()
            self._activate_publications()
            # aiortc starts transports and RTP in a task of its own after an
            # answer; an offer made while that task is still connecting can
            # change the descriptions under it. Let it finish first.
            if not await self._connected(timeout):
                self._events.peer_failed("connection not established")
                return

    async def _connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        await asyncio.sleep(0)  # and the start-up task's last steps
        return self.pc.connectionState == "connected"

    def _offer_extras(self) -> offer_sdp.OfferExtras:
        """Simulcast on every camera the client publishes in VP8 (asked of
        each offer again: an offer without it would end it), and kept on
        its m-line for good: parked, or reused by the next track."""
        self._simulcast_mids.update(
            pub.transceiver.mid
            for pub in self._publications.values()
            if pub.info.source == Source.CAMERA
            and pub.codec[0] == "video/vp8"
            and pub.transceiver.mid is not None
        )
        return offer_sdp.OfferExtras(
            simulcast_mids=frozenset(self._simulcast_mids),
            max_video_kbps=self._config.limits.max_video_bitrate_kbps,
        )

    def _offer_payload(
        self,
        publications: list[_Publication],
        subscriptions: list[_Subscription],
        extras: offer_sdp.OfferExtras,
    ) -> dict[str, Any]:
        tracks = {
            sub.transceiver.mid: self._describe(sub.consumer)
            for sub in subscriptions
            if sub.transceiver.mid is not None and sub.consumer.id in self._subscriptions
        }
        publish = {
            pub.transceiver.mid: pub.info.producer_id
            for pub in publications
            if pub.transceiver.mid is not None and pub.info.producer_id in self._publications
        }
        return {
            "negotiationId": self._negotiation_id,
            "sdp": offer_sdp.extend_offer(self.pc.localDescription.sdp, extras),
            "tracks": tracks,
            "publish": publish,
        }

    async def handle_answer(self, negotiation_id: int, sdp: str) -> None:
        """Apply the client's answer. A bad answer raises and changes nothing;
        the offer stays open for a correct one."""
        if self._answer is None or self._answer.done() or negotiation_id != self._negotiation_id:
            raise StaleAnswer(f"no open offer with id {negotiation_id}")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError and its own errors
            raise NegotiationFailed(f"answer rejected: {exc}") from exc
        rid_id = offer_sdp.extension_id(sdp, offer_sdp.RID_URI)
        self._answered_rids = offer_sdp.answered_simulcast(sdp) if rid_id is not None else {}
        if self._answered_rids and rid_id is not None:
            adapter.accept_simulcast(self.pc, rid_id)
        adapter.route_by_mid(self.pc)
        self._answer.set_result(None)

    # -- the client offers (WHIP, WHEP) -------------------------------------

    async def answer_offer(self, sdp: str, plan: PublishPlan, *, receive: bool) -> str:
        """Apply a client's offer and return the answer (with every ICE
        candidate: aiortc does not trickle). Each m-line the client sends is
        offered to ``plan``; each it receives becomes a slot if ``receive``;
        every other m-line is refused (inactive). Nothing is published until
        ``start``. Raises UnacceptableOffer; the peer is then unusable."""
        assert self.client_offers, "a server-driven peer makes its own offers"
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError and its own errors
            raise UnacceptableOffer(f"offer rejected: {exc}") from exc
        for transceiver in self.pc.getTransceivers():
            adapter.drop_rtx(transceiver)  # NACKs are answered in-band, as for pages
            offered = adapter.offered_direction(transceiver)
            info = plan(transceiver.kind) if offered in ("sendonly", "sendrecv") else None
            if info is not None:
                transceiver.direction = "recvonly"
                key: CodecKey = (DEFAULT_CODECS[info.kind].lower(), ())
                self._publications[info.producer_id] = _Publication(
                    info, transceiver, key, offered=True
                )
            elif receive and offered in ("recvonly", "sendrecv"):
                track = adapter.IdleTrack(transceiver.kind)
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
                self._slots.append(_Slot(transceiver, track))
            else:
                transceiver.direction = "inactive"
        if not self._publications and not self._slots:
            raise UnacceptableOffer("the offer has no m-line this endpoint can take")
        answer = await self.pc.createAnswer()
        adapter.restrict_ice(self.pc, self._config.ice_listen_ips, self._config.ice_announced_ip)
        await self.pc.setLocalDescription(answer)
        self.answer_sdp = self._take_simulcast(sdp, str(self.pc.localDescription.sdp))
        adapter.route_by_mid(self.pc)
        self.negotiations += 1
        return self.answer_sdp

    def _take_simulcast(self, offer: str, answer: str) -> str:
        """Receive the simulcast a client offers on a camera it publishes
        (aiortc's answer does not): the answer text says so, and the
        Producer gets the layers, lowest first."""
        rid_id = offer_sdp.extension_id(offer, offer_sdp.RID_URI)
        cameras = {
            p.transceiver.mid
            for p in self._publications.values()
            if p.info.source == Source.CAMERA and p.transceiver.mid is not None
        }
        taken = {
            mid: rids
            for mid, rids in offer_sdp.offered_simulcast(offer).items()
            if mid in cameras
        }
        if rid_id is None or not taken:
            return answer
        self._answered_rids = taken
        adapter.accept_simulcast(self.pc, rid_id)
        return offer_sdp.answer_simulcast(answer, taken, rid_id)

    def start(self) -> None:
        """The participant is in its session: its tracks become producers,
        and the connection must come up within the negotiation timeout."""
        self._activate_publications()
        self._tasks.spawn(self._watch_connection(), name=f"connect {self._participant_id}")

    async def _watch_connection(self) -> None:
        if not await self._connected(self._config.limits.negotiation_timeout_s):
            self._events.peer_failed("connection not established")

    @property
    def ice_ufrag(self) -> str:
        """The server's ICE username fragment (a WHIP resource's ETag)."""
        return adapter.local_ice_ufrag(self.pc)

    @property
    def remote_ice_ufrag(self) -> str:
        return adapter.remote_ice_ufrag(self.pc)

    async def add_candidates(self, candidates: list[str], *, end: bool) -> int:
        """Trickled ICE candidates of the client (``a=candidate`` values)."""
        try:
            return await adapter.add_remote_candidates(self.pc, candidates, end=end)
        except (ValueError, IndexError) as exc:
            raise InvalidMessage(f"a candidate does not parse: {exc}") from exc

    # -- lifecycle ------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        self._log.info("connection %s", state)
        if state in ("connected", "failed", "closed"):
            self._settled.set()
        if state == "failed":
            self._events.peer_failed("connection failed")
        elif state == "closed" and not self._closed:
            # aiortc closes a connection whose DTLS the other side closed
            self._events.peer_failed("connection closed by the other side")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._dirty.set()  # a negotiation loop that missed its cancellation ends too
        await self._tasks.aclose()
        for pub in list(self._publications.values()):
            if pub.producer is not None:
                await pub.producer.close()
        for sub in list(self._subscriptions.values()):
            sub.track.stop()
        self._subscriptions.clear()
        for slot in self._slots:
            slot.track.stop()
        for parked in self._parked:
            if parked.track is not None:
                parked.track.stop()
        self._parked.clear()
        await self.pc.close()
        self._log.info("peer closed")


def _bind_pli(receiver: Any) -> Callable[[int], Coroutine[Any, Any, None]]:
    async def send(ssrc: int) -> None:
        await adapter.request_keyframe(receiver, ssrc)

    return send


def _bind_nack(receiver: Any) -> Callable[[int, list[int]], Coroutine[Any, Any, None]]:
    async def send(ssrc: int, sequence_numbers: list[int]) -> None:
        await adapter.request_retransmission(receiver, ssrc, sequence_numbers)

    return send


def _bind_remb(receiver: Any) -> Callable[[int, list[int]], Coroutine[Any, Any, None]]:
    async def send(bitrate: int, ssrcs: list[int]) -> None:
        await adapter.send_remb(receiver, bitrate, ssrcs)

    return send


def _power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
