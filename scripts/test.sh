#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run the whole suite,
# once on SQLite and once on PostgreSQL (RECLAMBOT_TEST_DATABASE=sqlite|postgresql runs one).
# The real servers the tests start come from Debian: Dovecot (IMAP) and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The packaged services are not needed: the tests start their own servers on free ports.

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check bot tests bench

databases="${RECLAMBOT_TEST_DATABASE:-sqlite postgresql}"
for database in $databases; do
  echo "== test suite on $database =="
  RECLAMBOT_TEST_DATABASE="$database" python3 -m pytest "$@"
done
