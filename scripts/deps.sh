#!/bin/sh
# Installs the Debian packages custodia needs to build, test, lint and benchmark.
# (python3-aiosmtpd is the SMTP server of tests/integration/notify_email.sh. Go and
# golang.org/x/mod only run tests/interop/note_interop.sh: the Go reference checker
# of signed checkpoint notes. tzdata is the zone database that src/base/tz.c reads.)
# Idempotent and quiet: prints nothing when every package is already installed.
set -eu

PKGS="build-essential pkg-config meson ninja-build python3
libsodium-dev libssl-dev libjansson-dev libinih-dev libsqlite3-dev sqlite3
libmicrohttpd-dev libgnutls28-dev gnutls-bin libcmocka-dev
libpq-dev postgresql libcurl4-openssl-dev python3-aiosmtpd
liboath-dev libqrencode-dev john-data oathtool
curl wrk valgrind clang clang-format clang-tidy cppcheck tzdata
golang-go golang-golang-x-mod-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: run 'sudo scripts/deps.sh' or install them with apt-get" >&2
    exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
