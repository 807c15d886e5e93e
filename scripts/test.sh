#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run the whole suite.
# Dovecot (the real IMAP server the integration tests start) comes from apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dovecot-imapd >/dev/null
fi
# The packaged service is not needed: the tests start their own Dovecot on a free port.
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check bot tests
python3 -m pytest "$@"
