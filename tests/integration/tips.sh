#!/bin/sh
# GET /v1/security-tips (docs/api.md, "Security tips"): public, in English by default and for
# any language but Chinese, in Simplified Chinese for any zh tag, the same tips (by id) in
# both; a lang that is not a language tag is refused; the data files are valid JSON with the
# same ids in the same order.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
req GET /v1/security-tips
check_eq "public, in English by default" "200 en 6" "$STATUS $(json "j['lang']") $(json "len(j['tips'])")"
EN=$(json "' '.join(t['id'] for t in j['tips'])")
check "each with an id, a title and a text" \
    test "$(json "all(set(t) == {'id', 'title', 'text'} and t['title'] and t['text'] for t in j['tips'])")" = True
check "and what the company never asks" grep -q "never ask for your password" "$TMP/body"
req GET "/v1/security-tips?lang=zh-Hans"
check_eq "in Simplified Chinese for zh-Hans" "200 zh-Hans" "$STATUS $(json "j['lang']")"
check_eq "the same tips" "$EN" "$(json "' '.join(t['id'] for t in j['tips'])")"
check "in Chinese" grep -q "我们绝不会" "$TMP/body"
req GET "/v1/security-tips?lang=zh-CN"
check_eq "and for zh-CN" "200 zh-Hans" "$STATUS $(json "j['lang']")"
req GET "/v1/security-tips?lang=fr-FR"
check_eq "English for a language it does not have" "200 en" "$STATUS $(json "j['lang']")"
req GET "/v1/security-tips?lang=%3Cscript%3E"
check_eq "a lang that is no language tag is refused" 400 "$STATUS"
req GET "/v1/security-tips?lang=$(python3 -c 'print("a" * 36)')"
check_eq "nor one over 35 bytes" 400 "$STATUS"
check_eq "the data files hold the same tips in the same order" True \
    "$(python3 -c "import json,sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); print([t['id'] for t in a] == [t['id'] for t in b] and len(a) == 6)" "$SRC/config/tips/en.json" "$SRC/config/tips/zh-Hans.json")"
finish
