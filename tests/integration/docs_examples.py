#!/usr/bin/env python3
"""Runs every example of docs/api.md against a live server and compares the answers.

An example is a ```sh block followed by a line "Response `NNN`:" and, unless NNN is 204, a
```json block. The command runs in bash with CUSTODIA_URL, CUSTODIA_CA and CUSTODIA_API_KEY
set, KEY_ID set to the "id" of the latest response that had one, and TOKEN, CHALLENGE,
OTPAUTH_URI and RECOVERY_CODE to the "token", "challenge", "otpauth_uri" and first of the
"recovery_codes" of the latest response that had them (so sign-in examples can chain). The test checks the
status, and that the documented JSON and the real JSON have the same shape: the same keys at
every level (arrays compared by their first item) and the same JSON types.

usage: docs_examples.py API_MD URL CA KEY
"""
import json
import os
import re
import subprocess
import sys
import tempfile

BLOCK = re.compile(r"```sh\n(.*?)```\s*\nResponse `(\d{3})`[^\n]*\n(?:\s*```json\n(.*?)```)?", re.S)


CARRIED = (("token", "TOKEN"), ("challenge", "CHALLENGE"), ("otpauth_uri", "OTPAUTH_URI"))


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if v is None:
        return "null"
    return type(v).__name__


def same_shape(doc, real, path="$"):
    if isinstance(doc, dict) and isinstance(real, dict):
        if set(doc) != set(real):
            return "%s: documented keys %s, real keys %s" % (path, sorted(doc), sorted(real))
        for k in doc:
            err = same_shape(doc[k], real[k], path + "." + k)
            if err:
                return err
        return None
    if isinstance(doc, list) and isinstance(real, list):
        if doc and real:
            return same_shape(doc[0], real[0], path + "[0]")
        return None
    # null in the docs stands for "may be null"; strings may stand for nullable strings.
    if doc == "null" or real == "null" or doc == real:
        return None
    return "%s: documented %s, real %s" % (path, doc, real)


def main():
    md, url, ca, key = sys.argv[1:5]
    text = open(md, encoding="utf-8").read()
    examples = BLOCK.findall(text)
    env = dict(os.environ, CUSTODIA_URL=url, CUSTODIA_CA=ca, CUSTODIA_API_KEY=key, KEY_ID="")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        body, status = os.path.join(tmp, "body"), os.path.join(tmp, "status")
        for cmd, want, doc in examples:
            script = ('curl() { command curl -sS -o "%s" -w "%%{http_code}" "$@" > "%s"; }\n%s'
                      % (body, status, cmd))
            subprocess.run(["bash", "-c", script], env=env, check=False)
            got = open(status).read().strip() if os.path.exists(status) else "none"
            err = None if got == want else "status %s, documented %s" % (got, want)
            if err is None and doc:
                real = json.load(open(body))
                err = same_shape(shape(json.loads(doc)), shape(real))
                if isinstance(real, dict) and isinstance(real.get("id"), str):
                    env["KEY_ID"] = real["id"]
                for field, var in CARRIED:
                    if isinstance(real, dict) and isinstance(real.get(field), str):
                        env[var] = real[field]
                if isinstance(real, dict) and real.get("recovery_codes"):
                    env["RECOVERY_CODE"] = real["recovery_codes"][0]
            first = cmd.strip().splitlines()[0][:90]
            if err:
                failed += 1
                print("not ok - %s: %s" % (first, err))
            else:
                passed += 1
                print("ok - %s" % first)
    if not examples:
        print("not ok - no examples found in %s" % md)
        failed += 1
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
