#!/usr/bin/env python3
"""An outsider's check of custodia's audit proofs, written apart from the C code.

usage: prooftool.py inclusion PROOF.json   (the answer of GET /v1/audit/{seq}/proof)
       prooftool.py consistency PROOF.json (the answer of GET /v1/audit/consistency)
       prooftool.py record RECORD.json PROOF.json  (the record's hash is the proof's leaf)

Exits 0 when the proof holds, 1 when it does not, and 2 when it cannot check (bad usage, a
file that cannot be read, JSON without the expected fields or with bad base64), so that a test
expecting a refusal does not take a crash for one. Follows RFC 9162 sections 2.1.3.2 and
2.1.4.2 (verifying inclusion and consistency), with SHA-256 and RFC 6962 hashing.
"""
import base64
import hashlib
import json
import sys


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    if first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    if first & (first - 1) == 0:  # a power of two: the first root is the first proof node
        proof = [first_root] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def b64(s):
    return base64.b64decode(s, validate=True)


def main():
    kind = sys.argv[1]
    if kind == "inclusion":
        p = json.load(open(sys.argv[2]))
        ok = verify_inclusion(p["leaf_index"], p["tree_size"], b64(p["leaf_hash"]),
                              [b64(x) for x in p["proof"]], b64(p["root"]))
    elif kind == "consistency":
        p = json.load(open(sys.argv[2]))
        ok = verify_consistency(p["from"], p["to"], b64(p["from_root"]), b64(p["to_root"]),
                                [b64(x) for x in p["proof"]])
    else:
        r = json.load(open(sys.argv[2]))
        p = json.load(open(sys.argv[3]))
        leaf = hashlib.sha256(b"\x00" + bytes.fromhex(r["hash"])).digest()
        ok = leaf == b64(p["leaf_hash"]) and r["seq"] == p["seq"]
    print("proof holds" if ok else "proof FAILS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # not a verdict on the proof: it could not be checked
        print("prooftool: cannot check: %r" % e, file=sys.stderr)
        sys.exit(2)
