#!/usr/bin/env bash
# What the browser tests need beyond Python packages: Debian's Chromium (never a
# Playwright browser download). Installed when missing and we are root; otherwise
# the browser tests say why they skip (and fail in CI).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: /usr/bin/chromium is missing; browser tests will be skipped" >&2
fi
