#!/bin/sh
# Debian's Chromium for the console's browser tests (Playwright drives it; no browser is downloaded).
# Called by tests/console/conftest.py when /usr/bin/chromium is missing; needs root and apt.
set -e
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium.sh: not root or no apt-get; install the 'chromium' package yourself" >&2
  exit 1
fi
apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
  apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1
}
test -x /usr/bin/chromium
