#!/usr/bin/env bash
# The LDAP connector's tests start their own OpenLDAP server (tests/support/slapd.py) from
# Debian's slapd, with their own temporary config and database: install the packages when
# missing. The Debian package's own server is stopped: the tests never use it.
set -euo pipefail
if [ -x /usr/sbin/slapd ] && command -v ldapsearch >/dev/null; then
  exit 0
fi
echo "slapd or ldap-utils is missing; installing Debian's slapd and ldap-utils" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y slapd ldap-utils
# The package starts a system slapd on port 389 when it can; nothing here needs it.
$SUDO service slapd stop >/dev/null 2>&1 || true
