#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run the whole suite,
# once on SQLite and once on PostgreSQL (RECLAMBOT_TEST_DATABASE=sqlite|postgresql runs one).
# The real servers the tests start come from Debian: Dovecot, Cyrus and Courier (IMAP),
# Postfix (the MTA the bot sends through, which writes real delivery reports), PostgreSQL,
# and Chromium (the browser the HTML emails are opened in).
# The tests that touch the mailbox run against every IMAP server of the matrix on the
# SQLite pass, and against Debian's Dovecot on the PostgreSQL pass
# (RECLAMBOT_TEST_IMAP=all|dovecot,cyrus,... chooses).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
CYRUS_ROOT="${RECLAMBOT_TEST_CYRUS:-/opt/reclambot-test/cyrus-imapd}"
COURIER_ROOT="${RECLAMBOT_TEST_COURIER:-/opt/reclambot-test/courier-imap}"
missing=()
# Each package is looked for by a file of its own, not by one command of its family:
# Dovecot's core without its IMAP server is not enough.
{ command -v dovecot >/dev/null 2>&1 && [ -x /usr/lib/dovecot/imap ]; } || missing+=(dovecot-imapd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
# Postfix first: cyrus-common needs an MTA, and would otherwise bring Exim.
command -v postfix >/dev/null 2>&1 || missing+=(postfix)
# Debian's Chromium, driven by Playwright to look at the HTML emails (no browser download).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Cyrus's and Courier's own tools and libraries. Their IMAP servers' packages conflict
# with dovecot-imapd (all provide imap-server), so those are unpacked beside it instead.
command -v cyrus >/dev/null 2>&1 || missing+=(cyrus-common)
command -v couriertcpd >/dev/null 2>&1 || missing+=(courier-base)
command -v makeuserdb >/dev/null 2>&1 || missing+=(courier-authlib-userdb)
unpack=()
[ -x "$CYRUS_ROOT/usr/lib/cyrus/bin/imapd" ] || unpack+=("cyrus-imapd:$CYRUS_ROOT")
[ -x "$COURIER_ROOT/usr/bin/imapd" ] || unpack+=("courier-imap:$COURIER_ROOT")
if [ ${#missing[@]} -gt 0 ] || [ ${#unpack[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
fi
# Only ever adds: no recommended extras (cyrus-common recommends cyrus-imapd, which
# would replace an installed dovecot-imapd), and apt stops rather than remove anything
# the machine runs.
if [ ${#missing[@]} -gt 0 ]; then
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      --no-remove "${missing[@]}" >/dev/null; then
    echo "scripts/test.sh: apt-get cannot add ${missing[*]} without removing installed" \
         "packages; nothing was changed. Install them yourself, or run the tests on" \
         "another machine." >&2
    exit 2
  fi
fi
for item in "${unpack[@]}"; do
  package="${item%%:*}"
  target="${item#*:}"
  debs="$(mktemp -d)"
  chmod 777 "$debs"
  (cd "$debs" && apt-get download -qq "$package" >/dev/null 2>&1)
  $SUDO mkdir -p "$target"
  $SUDO dpkg -x "$debs"/"$package"_*.deb "$target"
  rm -rf "$debs"
done
# The packaged services are not needed: the tests start their own servers on free ports.

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check bot tests bench
python3 -m mypy
# The layering contract of pyproject.toml ([tool.importlinter]); no console script needed.
python3 -c 'import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))'

databases="${RECLAMBOT_TEST_DATABASE:-sqlite postgresql}"
for database in $databases; do
  servers="${RECLAMBOT_TEST_IMAP:-$([ "$database" = sqlite ] && echo all || echo dovecot)}"
  echo "== test suite on $database, IMAP servers: $servers =="
  RECLAMBOT_TEST_DATABASE="$database" RECLAMBOT_TEST_IMAP="$servers" python3 -m pytest "$@"
done
