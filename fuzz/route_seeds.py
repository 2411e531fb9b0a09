#!/usr/bin/env python3
"""Writes the route fuzzer's seed corpus: one request text (fuzz/route_harness.h) for every
curl example of docs/api.md, plus the requests that once crashed or misled the server.

The examples' variables become the harness's: $CUSTODIA_API_KEY {{KEY}}, $TOKEN {{SESSION}},
$KEY_ID (a customer's or a key's id) and $CUSTOMER {{CUS}}. Run it again whenever docs/api.md changes:
`make check` runs it with --check, which fails when the corpus differs from what it would
write (an example added, changed or removed).

The corpus also keeps inputs fuzzing found worth replaying (f-*, from libFuzzer's -merge=1);
this script leaves those alone.

usage: route_seeds.py [--check] API_MD OUT_DIR
"""
import os
import re
import shlex
import sys

SUBS = (("$CUSTODIA_API_KEY", "{{KEY}}"), ("$TOKEN", "{{SESSION}}"), ("$KEY_ID", "{{CUS}}"),
        ("$CUSTODIA_URL", ""), ("$CHALLENGE", "chl_0000000000000000"), ("$CODE", "123456"),
        ("$RECOVERY_CODE", "abcd-efgh-ijkl"), ("$CUSTOMER", "{{CUS}}"),
        ("$PAYEE_ACCOUNT", "acc_0000000000000000"),
        ("$(date -u +%Y-%m-%dT%H:%M:%SZ)", "{{NOW}}"))

# Requests that once crashed the server or were read wrongly, kept as seeds.
EXTRA = {
    "patch-valid-then-invalid": "PATCH /v1/customers/cus_0000000000000000\n"
    "Authorization: Bearer {{KEY}}\nContent-Type: application/json\n\n"
    '{"city": "London", "email": "not-an-email"}',
    "patch-existing-valid-then-invalid": "PATCH /v1/customers/{{CUS}}\n"
    "Authorization: Bearer {{KEY}}\nContent-Type: application/json\n\n"
    '{"given_name": "Ada", "phone": "12"}',
    "create-valid-then-invalid": "POST /v1/customers\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"city": "London", "email": "@"}',
    "nul-in-path": "GET /v1/customers%00/{{CUS}}\nAuthorization: Bearer {{KEY}}\n\n",
    "length-and-chunked": "POST /v1/customers\nAuthorization: Bearer {{KEY}}\n"
    "Content-Type: application/json\nContent-Length: 2\nTransfer-Encoding: chunked\n\n{}",
    "repeated-query": "GET /v1/customers?email=a@example.com&email=b@example.com\n"
    "Authorization: Bearer {{RKEY}}\n\n",
    "utf16": "POST /v1/customers\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json; charset=utf-16\n\n{"city": "Paris"}',
    "login-known": "POST /v1/auth/login\nContent-Type: application/json\n\n"
    '{"login": "{{LOGIN}}", "password": "{{PASSWORD}}"}',
    "me-session": "GET /v1/me\nAuthorization: Bearer {{SESSION}}\n\n",
    # Routes docs/api.md has no example of.
    "case-get": "GET /v1/cases/cas_0000000000000000\nAuthorization: Bearer {{KEY}}\n\n",
    "case-assign": "POST /v1/cases/cas_0000000000000000/assign\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"assignee": "{{STAFF}}"}',
    "case-severity": "POST /v1/cases/cas_0000000000000000/severity\n"
    'Authorization: Bearer {{KEY}}\nContent-Type: application/json\n\n{"severity": "high"}',
    "case-step-confirm": "POST /v1/cases/cas_0000000000000000/steps/1/confirm\n"
    "Authorization: Bearer {{KEY}}\n\n",
    "case-step-decline": "POST /v1/cases/cas_0000000000000000/steps/1/decline\n"
    "Authorization: Bearer {{KEY}}\n\n",
    "me-security": "GET /v1/me/security\nAuthorization: Bearer {{SESSION}}\n\n",
    "me-device-forget": "DELETE /v1/me/devices/phone-1\nAuthorization: Bearer {{SESSION}}\n\n",
    "me-report": "POST /v1/me/reports\nAuthorization: Bearer {{SESSION}}\n"
    'Content-Type: application/json\n\n{"text": "a payment I did not make"}',
    "me-freeze": "POST /v1/me/freeze\nAuthorization: Bearer {{SESSION}}\n\n",
    "me-unfreeze": "POST /v1/me/unfreeze\nAuthorization: Bearer {{SESSION}}\n\n",
    "case-report-answer": "POST /v1/cases/cas_0000000000000000/reports/rpt_0000000000000000/"
    'answer\nAuthorization: Bearer {{KEY}}\nContent-Type: application/json\n\n{"text": "x"}',
    "auth-sessions": "GET /v1/auth/sessions\nAuthorization: Bearer {{SESSION}}\n\n",
    "me-sessions": "GET /v1/me/sessions\nAuthorization: Bearer {{SESSION}}\n\n",
    "me-password": "POST /v1/me/password\nAuthorization: Bearer {{SESSION}}\n"
    'Content-Type: application/json\n\n{"current_password": "{{PASSWORD}}", '
    '"new_password": "{{PASSWORD}}"}',
    "me-session-revoke": "DELETE /v1/me/sessions/ses_0000000000000000\n"
    "Authorization: Bearer {{SESSION}}\n\n",
    "me-sessions-revoke": "DELETE /v1/me/sessions\nAuthorization: Bearer {{SESSION}}\n\n",
    "customer-sessions-revoke": "DELETE /v1/customers/{{CUS}}/sessions\n"
    "Authorization: Bearer {{KEY}}\n\n",
    "staff-list": "GET /v1/staff?limit=2\nAuthorization: Bearer {{KEY}}\n\n",
    "staff-password": "PUT /v1/staff/{{STAFF}}/password\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"password": "orchard violet tremble 93"}',
    "staff-lockout": "DELETE /v1/staff/{{STAFF}}/lockout\nAuthorization: Bearer {{KEY}}\n\n",
    "customer-accounts": "GET /v1/customers/{{CUS}}/accounts?limit=2\n"
    "Authorization: Bearer {{KEY}}\n\n",
    "approval-reject": "POST /v1/approvals/apr_0000000000000000/reject\n"
    "Authorization: Bearer {{SESSION}}\n\n",
    "approval-approve-session": "POST /v1/approvals/apr_0000000000000000/approve\n"
    "Authorization: Bearer {{SESSION}}\n\n",
    "event-full": "POST /v1/events\nAuthorization: Bearer {{KEY}}\nContent-Type: application/json\n\n"
    '{"type": "transfer", "time": "{{NOW}}", "customer": "c1", "ip": "2001:db8::1", '
    '"device": "d1", "country": "GB", "lat": 51.5, "lon": -0.1, "amount": 250000, '
    '"currency": "GBP", "payee": "p1", "channel": "app", "attributes": {"mcc": "6011"}}',
    "alert-get": "GET /v1/alerts/alr_0000000000000000\nAuthorization: Bearer {{KEY}}\n\n",
    "notification-get": "GET /v1/notifications/ntf_0000000000000000\n"
    "Authorization: Bearer {{KEY}}\n\n",
    "notification-replay": "POST /v1/notifications/ntf_0000000000000000/replay\n"
    "Authorization: Bearer {{KEY}}\n\n",
    "alert-assign": "POST /v1/alerts/alr_0000000000000000/assign\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"assignee": "stf_0000000000000000"}',
    "alert-resolve": "POST /v1/alerts/alr_0000000000000000/resolve\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"resolution": "true_positive"}',
    "alert-comment": "POST /v1/alerts/alr_0000000000000000/comments\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"text": "looked at it"}',
    "monitor-lists": "GET /v1/monitor/lists\nAuthorization: Bearer {{KEY}}\n\n",
    "monitor-list": "GET /v1/monitor/lists/blocked_networks\nAuthorization: Bearer {{KEY}}\n\n",
    "monitor-list-remove": "POST /v1/monitor/lists/blocked_networks/remove\n"
    "Authorization: Bearer {{KEY}}\nContent-Type: application/json\n\n"
    '{"value": "198.51.100.0/24"}',
    "monitor-snoozes": "GET /v1/monitor/snoozes?customer=c1\nAuthorization: Bearer {{KEY}}\n\n",
    "monitor-snooze": "POST /v1/monitor/snoozes\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"customer": "c1", "rule": "failed_sign_ins_per_account", '
    '"until": "2099-01-01T00:00:00Z", "reason": "travelling"}',
    "monitor-unsnooze": "POST /v1/monitor/snoozes/remove\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"customer": "c1", "rule": "failed_sign_ins_per_account"}',
    "rulesets": "GET /v1/monitor/rulesets\nAuthorization: Bearer {{KEY}}\n\n",
    "ruleset": "GET /v1/monitor/rulesets/1\nAuthorization: Bearer {{KEY}}\n\n",
    "ruleset-activate": "POST /v1/monitor/rulesets/1/activate\nAuthorization: Bearer {{KEY}}\n"
    'Content-Type: application/json\n\n{"as": "live"}',
    "ruleset-retire": "POST /v1/monitor/rulesets/1/retire\nAuthorization: Bearer {{KEY}}\n\n",
    "event-profile": "POST /v1/events\nAuthorization: Bearer {{KEY}}\nContent-Type: application/json\n\n"
    '{"type": "profile_changed", "time": "{{NOW}}", "customer": "c1", "fields": ["email"]}',
}


def request_of(cmd):
    for a, b in SUBS:
        cmd = cmd.replace(a, b)
    toks = shlex.split(cmd.replace("\\\n", " "), posix=True)
    if not toks or toks[0] != "curl":
        return None
    method, headers, body, target = None, [], None, None
    it = iter(toks[1:])
    for t in it:
        if t in ("--cacert", "-b"):
            next(it)
        elif t == "-X":
            method = next(it)
        elif t == "-H":
            headers.append(next(it))
        elif t == "-d":
            body = next(it)
        elif t not in ("--totp", "-N"):
            target = t
    if target is None or not target.startswith("/"):
        return None
    method = method or ("POST" if body is not None else "GET")
    head = "".join(h + "\n" for h in headers)
    return "%s %s HTTP/1.1\nHost: localhost\n%s\n%s" % (method, target, head, body or "")


def seeds(text):
    out = {}
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for cmd in re.split(r"\n(?=curl )", block.strip()):
            cmd = cmd[cmd.find("curl "):] if "curl " in cmd else ""
            req = request_of(cmd)
            if req is not None:
                out["doc-%02d" % (len(out) + 1)] = req
    for name, req in EXTRA.items():
        out["x-" + name] = req
    return out


def main():
    check = sys.argv[1] == "--check"
    md, out = sys.argv[1 + check], sys.argv[2 + check]
    want = seeds(open(md, encoding="utf-8").read())
    have = {f: open(os.path.join(out, f), encoding="utf-8").read()
            for f in os.listdir(out) if f.startswith(("doc-", "x-"))} if os.path.isdir(out) else {}
    if check:
        stale = sorted(set(want) ^ set(have) | {f for f in want if have.get(f) != want[f]})
        if stale:
            print("fuzz/corpus/routes is stale (%s): run fuzz/route_seeds.py %s %s"
                  % (", ".join(stale), md, out))
            sys.exit(1)
        print("%d seeds current" % len(want))
        return
    os.makedirs(out, exist_ok=True)
    for f in have:
        os.remove(os.path.join(out, f))
    for f, req in want.items():
        with open(os.path.join(out, f), "w", encoding="utf-8") as fh:
            fh.write(req)
    print("%d seeds written" % len(want))


if __name__ == "__main__":
    main()
