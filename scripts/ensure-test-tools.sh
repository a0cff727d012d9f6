#!/usr/bin/env bash
# What the browser tests need beyond Python packages: Debian's Chromium (never a
# Playwright browser download) and Debian's coturn (the real TURN server of the
# relay test; only its binary is used, the tests start it themselves), Debian's
# nginx (`nginx -t` checks deploy/nginx; never started as a service), Debian's
# GStreamer (a WHIP publisher that is not aiortc) and ffmpeg (ffprobe, a second
# opinion on the HLS the server writes). Installed when missing and we are root;
# otherwise the tests that need them say why they skip (and fail in CI).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/turnserver ] || missing+=(coturn)
# A WHIP publisher that is not aiortc (tests/live/test_gstreamer.py): GStreamer's
# webrtcbin, driven by the system python3, and ffprobe to play what it published.
gst_probe="import gi
for name in ('Gst', 'GstWebRTC', 'GstSdp'): gi.require_version(name, '1.0')
gi.require_version('Nice', '0.1')
from gi.repository import Gst, Nice
Gst.init(None)
wanted = 'webrtcbin nicesrc dtlsenc srtpenc vp8enc rtpvp8pay opusenc rtpopuspay videotestsrc'
assert all(Gst.ElementFactory.find(element) for element in wanted.split())"
/usr/bin/python3 -c "$gst_probe" 2>/dev/null || missing+=(python3-gi gir1.2-gst-plugins-bad-1.0
  gir1.2-nice-0.1 gstreamer1.0-nice gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/ffprobe ] || missing+=(ffmpeg)
# axe-core (the accessibility checks) comes from the npm registry, at the version that
# tests/web/package-lock.json pins, into tests/web/node_modules (not committed); npm
# itself is Debian's.
command -v npm >/dev/null 2>&1 || missing+=(npm)
install_axe() {
  local web wanted have
  web="$(cd "$(dirname "$0")/../tests/web" && pwd)"
  wanted="$(sed -n 's/.*"axe-core": "\(.*\)".*/\1/p' "$web/package.json")"
  have="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$web/node_modules/axe-core/package.json" 2>/dev/null || true)"
  [ -n "$wanted" ] && [ "$wanted" = "$have" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "note: npm is missing: the accessibility checks (axe-core) will be skipped" >&2
    return 0
  fi
  npm ci --prefix "$web" --no-audit --no-fund --loglevel=error >/dev/null
}
if [ "${#missing[@]}" -eq 0 ]; then
  install_axe
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's ${missing[*]} for the tests..." >&2
  apt-get update -qq >/dev/null
  # policy-rc.d refuses service starts: coturn's and nginx's packages must not
  # start system servers (they would listen on every address); the tests run their own.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
    >/dev/null || status=$?
  if [ "$created_policy" = "1" ]; then
    rm -f "$policy"
  fi
  [ "$status" != "0" ] || install_axe || status=$?
  exit "$status"
else
  echo "note: missing ${missing[*]} (apt-get install ${missing[*]}); the tests that need them will be skipped" >&2
fi
