"""DTLS for WHIP ingest that interoperates with publishers holding RSA or ECDSA certificates.

What is changed: only the list of TLS cipher suites our DTLS endpoint offers (as the
DTLS client) and accepts (as the DTLS server). aiortc 1.16 allows four ECDHE-ECDSA
suites; this adds the four ECDHE-RSA suites with the same ciphers (browsers offer both
kinds too). Everything else stays aiortc's: our own certificate (a fresh ECDSA P-256
key per connection), DTLS 1.2, the SRTP profiles, the peer-certificate check against
the SDP fingerprint.

Why: in TLS 1.2 the cipher suite names the *server's* certificate type (ECDHE_RSA: the
server signs its key exchange with RSA). A WHIP publisher offers ``a=setup:actpass``
and aiortc answers ``active``, so the publisher is the DTLS server and its certificate
decides. GStreamer's webrtcbin uses an RSA certificate (Janus and ZLMediaKit are
reported to as well): to a ClientHello with ECDSA suites only it answers "no shared
cipher" and the stream never connects. Chromium, Firefox, OBS (libdatachannel) and
pion use ECDSA and keep working as before: the ECDSA suites stay first. When we are
the DTLS server, OpenSSL only picks suites matching our own (ECDSA) certificate, so the
RSA suites change nothing there; which certificate type a *client* may present is
decided by the signature algorithms, and OpenSSL's defaults accept RSA and ECDSA.

Why it is safe: every added suite is ECDHE (forward secret) with AES-GCM,
ChaCha20-Poly1305 or the AES-CBC-SHA pair aiortc already offers for ECDSA; no static
RSA key exchange, no export or NULL ciphers. The peer is authenticated exactly as
before, by the fingerprint its SDP announced (aiortc compares every announced
fingerprint with the certificate it got), whatever the key type. The ClientHello grows
by 8 bytes: still one datagram (aiortc trimmed the list in #1011 because long lists
fragmented it). Upstream discusses the same change (aiortc PR #1421, issue #1434);
when aiortc offers RSA suites itself this module can go.

How: aiortc has no option for this, so ``InteropCertificate`` overrides the one method
that builds the SSL context, and ``peer_connection`` gives a new RTCPeerConnection that
certificate. Both use aiortc internals; ``peer_connection`` fails loudly, not silently,
if a future aiortc renames them (tests/live/test_dtls.py covers both).
"""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from OpenSSL import SSL

# aiortc's four ECDSA suites first (unchanged order), then the same ciphers with RSA.
CIPHER_SUITES = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
)
# Where RTCPeerConnection keeps its certificates (a name-mangled private attribute).
_CERTIFICATES = "_RTCPeerConnection__certificates"


class InteropCertificate(RTCCertificate):
    """aiortc's certificate whose DTLS context also offers and accepts ECDHE-RSA suites."""

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        context = super()._create_ssl_context(srtp_profiles)
        context.set_cipher_list(":".join(CIPHER_SUITES).encode())
        return context


def peer_connection(configuration: RTCConfiguration) -> RTCPeerConnection:
    """A new RTCPeerConnection whose DTLS accepts RSA and ECDSA peers."""
    pc = RTCPeerConnection(configuration)
    certificates = getattr(pc, _CERTIFICATES, None)
    if not isinstance(certificates, list) or len(certificates) != 1:
        raise RuntimeError(f"this aiortc has no {_CERTIFICATES}: update videochat.live.dtls")
    setattr(pc, _CERTIFICATES, [InteropCertificate.generateCertificate()])
    return pc
