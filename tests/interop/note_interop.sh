#!/bin/sh
# note_interop.sh VKEY-FILE NOTE-FILE [LEAVES-FILE]: checks a custodia checkpoint note with the
# Go reference implementation of signed notes and transparency-log trees (checknote/main.go over
# golang.org/x/mod/sumdb/note and .../tlog, from Debian's golang-go and golang-golang-x-mod-dev).
#
# Prints the origin, the tree size and the root (base64), one per line, and exits 0 when Go
# accepts the note (and, given LEAVES-FILE with one record per line, when the root is the
# RFC 6962 root of those records); exits 1 when Go rejects it; 77 (skip) when Go or
# golang.org/x/mod is not installed; 99 when the checker does not build.
# tests/unit/audit/test_note.c writes notes with custodia's code and runs this script on them.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
gopath=${CU_GOPATH:-/usr/share/gocode}

if ! command -v go >/dev/null 2>&1; then
    echo "note_interop: go is not installed (apt-get install golang-go)" >&2
    exit 77
fi
if [ ! -d "$gopath/src/golang.org/x/mod/sumdb/note" ]; then
    echo "note_interop: golang.org/x/mod is not in $gopath (apt-get install golang-golang-x-mod-dev)" >&2
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cu-checknote-XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT INT TERM
# GOPATH mode: the packages come from Debian's source tree, nothing is downloaded.
export GO111MODULE=off GOPATH="$gopath" GOFLAGS= GOPROXY=off
export GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/cu-gocache-$(id -u)}"
if ! go build -o "$tmp/checknote" "$here/checknote/main.go" >&2; then
    echo "note_interop: checknote does not build" >&2
    exit 99
fi
"$tmp/checknote" "$@"
