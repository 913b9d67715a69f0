#!/usr/bin/env bash
# The console's browser tests drive Debian's chromium through Playwright (never `playwright
# install`, which cannot download here): install the Debian package when it is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "/usr/bin/chromium is missing; installing Debian's chromium" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
