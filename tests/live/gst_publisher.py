"""A WHIP publisher that is not aiortc: GStreamer's webrtcbin, run by the system python3.

Usage: ``/usr/bin/python3 gst_publisher.py WHIP_URL STREAM_KEY SECONDS`` (or until
SIGTERM). Publishes a moving test picture (VP8) and a tone (Opus) with webrtcbin's own
DTLS certificate (RSA in GStreamer 1.22), doing WHIP by hand: one POST of the complete
offer with ``Authorization: Bearer <key>``, the answer in the body, a DELETE of the
session at the end. Prints one JSON object per event on stdout, the last one
``{"event": "done"}``. Needs only the standard library and Debian's GStreamer
(python3-gi, gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice, plugins good and bad).
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

PIPELINE = """
webrtcbin name=pub bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball
  ! video/x-raw,width=640,height=480,framerate=20/1 ! videoconvert ! queue
  ! vp8enc deadline=1 keyframe-max-dist=20 ! rtpvp8pay pt=96
  ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! pub.
audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue
  ! opusenc ! rtpopuspay pt=111
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! pub.
"""


def nice_agent(webrtc: Gst.Element) -> Any:
    """webrtcbin's libnice agent (read once: see the reference fix-up below)."""
    ice = webrtc.get_property("ice-agent")
    # GStreamer 1.22's webrtcbin returns its ICE agent without adding a reference, so
    # PyGObject would release webrtcbin's own one: add the reference it should have had.
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    gobject.g_object_ref.restype, gobject.g_object_ref.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    gobject.g_object_ref(pointer(ice.__gpointer__, None))
    return ice.get_property("agent")


def say(event: str, **fields: Any) -> None:
    """One event line for the scenario that runs us."""
    print(json.dumps({"event": event, **fields}), flush=True)


class WhipPublisher:
    """webrtcbin + WHIP signalling over urllib."""

    def __init__(self, url: str, key: str, seconds: float) -> None:
        self.url, self.key, self.seconds = url, key, seconds
        self.location: str | None = None
        self.loop = GLib.MainLoop()
        self.pipeline = Gst.parse_launch(PIPELINE)
        self.webrtc = self.pipeline.get_by_name("pub")
        # libnice leaves loopback out of its host candidates, and the test's network
        # namespace has nothing else (TESTING.md): give it 127.0.0.1 explicitly.
        loopback = Nice.Address.new()
        loopback.set_from_string("127.0.0.1")
        nice_agent(self.webrtc).add_local_address(loopback)
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("notify::connection-state", self._on_connection)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)
        bus.connect("message::warning", self._on_warning)
        self.offered = False

    def run(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)
        GLib.timeout_add(int(self.seconds * 1000), self._stop)
        # SIGTERM: the scenario is done with us; still end the WHIP session properly.
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self._stop)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)

    def _on_negotiation_needed(self, webrtc: Gst.Element) -> None:
        for index in range(2):
            transceiver = webrtc.emit("get-transceiver", index)
            if transceiver is not None:
                transceiver.set_property(
                    "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY
                )
        promise = Gst.Promise.new_with_change_func(self._on_offer, None)
        webrtc.emit("create-offer", None, promise)

    def _on_offer(self, promise: Gst.Promise, _: Any) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            say("error", message=f"no offer: {reply.to_string() if reply else 'no reply'}")
            GLib.idle_add(self._stop)
            return
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering(self, webrtc: Gst.Element, _: Any) -> None:
        state = webrtc.get_property("ice-gathering-state")
        say("gathering", state=state.value_nick)
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.offered:
            self.offered = True
            sdp = webrtc.get_property("local-description").sdp.as_text()
            say("offer", candidates=sdp.count("a=candidate:"))
            # WHIP over HTTP blocks: off the main loop, the answer comes back onto it.
            threading.Thread(target=self._post, args=(sdp,), daemon=True).start()

    def _post(self, sdp: str) -> None:
        request = urllib.request.Request(
            self.url,
            data=sdp.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer, status = response.read().decode(), response.status
                self.location = urllib.parse.urljoin(self.url, response.headers["Location"])
        except urllib.error.HTTPError as error:
            say("answer", status=error.code, body=error.read().decode(errors="replace"))
            GLib.idle_add(self._stop)
            return
        except OSError as error:
            say("error", message=f"WHIP POST failed: {error}")
            GLib.idle_add(self._stop)
            return
        say("answer", status=status, candidates=answer.count("a=candidate:"))
        GLib.idle_add(self._apply_answer, answer)

    def _apply_answer(self, text: str) -> bool:
        _, message = GstSdp.SDPMessage.new_from_text(text)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        return False

    def _on_connection(self, webrtc: Gst.Element, _: Any) -> None:
        state = webrtc.get_property("connection-state").value_nick
        fields: dict[str, Any] = {"state": state}
        if state == "connected":
            transport = (
                webrtc.emit("get-transceiver", 0).get_property("sender").get_property("transport")
            )
            fields["certificate"] = transport.get_property("certificate")
            fields["remote_certificate"] = transport.get_property("remote-certificate")
        say("connection", **fields)
        if state == "connected":
            # Every 2 s until it stops: the scenario waits for one before it stops us.
            GLib.timeout_add(2000, self._ask_stats)
        if state == "failed":
            GLib.idle_add(self._stop)

    def _ask_stats(self) -> bool:
        self.webrtc.emit("get-stats", None, Gst.Promise.new_with_change_func(self._on_stats, None))
        return True  # again in 2 s

    def _on_stats(self, promise: Gst.Promise, _: Any) -> None:
        """The ICE candidates in use and the RTP sent so far, from webrtcbin's getStats()."""
        addresses: dict[str, set[str]] = {"local-candidate": set(), "remote-candidate": set()}
        packets_sent: dict[str, int] = {}

        def entry(_: int, value: Any, __: Any) -> bool:
            if isinstance(value, Gst.Structure) and value.has_field("type"):
                kind = value.get_value("type").value_nick
                if kind in addresses and value.has_field("address"):
                    addresses[kind].add(value.get_value("address"))
                if kind == "outbound-rtp" and value.has_field("packets-sent"):
                    packets_sent[value.get_value("id")] = value.get_value("packets-sent")
            return True

        promise.get_reply().foreach(entry, None)
        say(
            "stats",
            local_addresses=sorted(addresses["local-candidate"]),
            remote_addresses=sorted(addresses["remote-candidate"]),
            packets_sent=sum(packets_sent.values()),
        )

    def _on_error(self, _: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        say("error", message=error.message, debug=debug)
        self._stop()

    def _on_warning(self, _: Gst.Bus, message: Gst.Message) -> None:
        warning, debug = message.parse_warning()
        say("warning", message=warning.message, debug=debug)

    def _stop(self) -> bool:
        if self.location is not None:
            request = urllib.request.Request(
                self.location, method="DELETE", headers={"Authorization": f"Bearer {self.key}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    say("deleted", status=response.status)
            except urllib.error.HTTPError as error:
                say("deleted", status=error.code)
            self.location = None
        self.loop.quit()
        return False


def main() -> None:
    url, key, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    WhipPublisher(url, key, seconds).run()
    say("done")


if __name__ == "__main__":
    main()
