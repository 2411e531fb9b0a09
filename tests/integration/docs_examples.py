#!/usr/bin/env python3
"""Runs every example of docs/api.md against a live server and compares the answers.

An example is a ```sh block followed by a line "Response `NNN`:" and, unless NNN is 204, a
```json block. The command runs in bash with CUSTODIA_URL, CUSTODIA_CA and CUSTODIA_API_KEY
set, KEY_ID set to the "id" of the latest response that had one, and TOKEN, CHALLENGE,
OTPAUTH_URI and RECOVERY_CODE to the "token", "challenge", "otpauth_uri" and first of the
"recovery_codes" of the latest response that had them (so sign-in examples can chain).

The test checks the status, and that the documented JSON is the real JSON, value for value:
the same keys at every level, arrays of the same length item by item, the same numbers,
strings, booleans and nulls. The one exception is the mark docs/api.md describes at its top
for what varies from call to call (ids, times, tokens, request ids, hashes, counts that
depend on the run), the ellipsis "…" (U+2026):
- inside a string, each "…" stands for one or more characters, any, and the rest of the string
  must match exactly ("ak_…" is any string that starts with "ak_" and goes on);
- written bare in place of a value (`"uptime_seconds": …`), it stands for any one value,
  of any type.
A value written without the mark is compared exactly. An answer that holds "…" itself fails
(the mark would make its documented value ambiguous), and so does a page that no longer says at
its top what the mark means.

usage: docs_examples.py API_MD URL CA KEY
"""
import json
import os
import re
import subprocess
import sys
import tempfile

# the command: a block of its own, never running on into the text after a block without a
# response
BLOCK = re.compile(r"```sh\n((?:(?!```).)*?)```\s*\nResponse `(\d{3})`[^\n]*\n(?:\s*```json\n(.*?)```)?", re.S)

MARK = "\u2026"
# What a bare mark becomes before the documented JSON is parsed: a string no document holds.
ANY = "\u0000any value\u0000"

CARRIED = (("token", "TOKEN"), ("challenge", "CHALLENGE"), ("otpauth_uri", "OTPAUTH_URI"))
# The sentence of docs/api.md that says what the mark means.
MARK_DOC = "`%s` marks what varies from call to call" % MARK
HEADING = re.compile(r"^#+ (.*)$", re.M)


def parse_doc(text):
    """The documented JSON, each bare mark (one outside a string) replaced by ANY."""
    out, in_string, escaped = [], False, False
    for c in text:
        if in_string:
            if c == '"' and not escaped:
                in_string = False
            escaped = c == "\\" and not escaped
        elif c == '"':
            in_string = True
        elif c == MARK:
            c = json.dumps(ANY)
        out.append(c)
    return json.loads("".join(out))


def same_string(doc, real):
    if MARK not in doc:
        return doc == real
    parts = [re.escape(p) for p in doc.split(MARK)]
    return re.fullmatch(".+".join(parts), real, re.S) is not None


def holds_mark(v):
    if isinstance(v, dict):
        return any(MARK in k or holds_mark(x) for k, x in v.items())
    if isinstance(v, list):
        return any(holds_mark(x) for x in v)
    return isinstance(v, str) and MARK in v


def compare(doc, real, path="$"):
    """None when the real value is what doc documents, else what differs (the first)."""
    if doc == ANY:
        return None
    if isinstance(doc, dict) and isinstance(real, dict):
        if set(doc) != set(real):
            return "%s: documented keys %s, real keys %s" % (path, sorted(doc), sorted(real))
        for k in doc:
            err = compare(doc[k], real[k], path + "." + k)
            if err:
                return err
        return None
    if isinstance(doc, list) and isinstance(real, list):
        if len(doc) != len(real):
            return "%s: documented %d items, real %d" % (path, len(doc), len(real))
        for i, (d, r) in enumerate(zip(doc, real)):
            err = compare(d, r, "%s[%d]" % (path, i))
            if err:
                return err
        return None
    # bool is an int in Python: 1 must not stand for true.
    if type(doc) is type(real) or (type(doc) in (int, float) and type(real) in (int, float)):
        if isinstance(doc, str) and same_string(doc, real):
            return None
        if not isinstance(doc, str) and doc == real:
            return None
    return "%s: documented %s, real %s" % (path, brief(doc), brief(real))


def brief(v):
    """v as JSON, cut short when long (a QR code's SVG)."""
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 160 else text[:150] + "[... %d more]" % (len(text) - 150)


def main():
    md, url, ca, key = sys.argv[1:5]
    text = open(md, encoding="utf-8").read()
    examples = list(BLOCK.finditer(text))
    env = dict(os.environ, CUSTODIA_URL=url, CUSTODIA_CA=ca, CUSTODIA_API_KEY=key, KEY_ID="")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        body, status = os.path.join(tmp, "body"), os.path.join(tmp, "status")
        for n, m in enumerate(examples, 1):
            cmd, want, doc = m.groups()
            headings = HEADING.findall(text, 0, m.start())
            label = "example %d (%s)" % (n, headings[-1] if headings else "no heading")
            script = ('curl() { command curl -sS -o "%s" -w "%%{http_code}" "$@" > "%s"; }\n%s'
                      % (body, status, cmd))
            subprocess.run(["bash", "-c", script], env=env, check=False)
            got = open(status).read().strip() if os.path.exists(status) else "none"
            err = None if got == want else "status %s, documented %s" % (got, want)
            if err is None and doc:
                real = json.load(open(body, encoding="utf-8"))
                if holds_mark(real):
                    err = "the answer holds %s, the page's mark for what varies" % MARK
                else:
                    err = compare(parse_doc(doc), real)
                if isinstance(real, dict) and isinstance(real.get("id"), str):
                    env["KEY_ID"] = real["id"]
                for field, var in CARRIED:
                    if isinstance(real, dict) and isinstance(real.get(field), str):
                        env[var] = real[field]
                if isinstance(real, dict) and real.get("recovery_codes"):
                    env["RECOVERY_CODE"] = real["recovery_codes"][0]
            if err:
                failed += 1
                print("not ok - %s: %s" % (label, err))
            else:
                passed += 1
                print("ok - %s" % label)
    if not examples:
        print("not ok - no examples found in %s" % md)
        failed += 1
    if MARK_DOC not in " ".join(text.split()):
        print("not ok - %s no longer says what %s means (%r)" % (md, MARK, MARK_DOC))
        failed += 1
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
