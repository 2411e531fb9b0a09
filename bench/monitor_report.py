#!/usr/bin/env python3
"""What the rules caught in a generated, labelled event file (bench/gen_events.py).

usage: monitor_report.py EVENTS.jsonl DECISIONS.jsonl

For each kind of attack: its instances, how many were detected (an event of the instance
decided step_up, hold or deny), and, of those that moved money, how many were stopped before
money left (such a decision on an event of the instance up to and including its first
transfer or withdrawal: a step-up, hold or deny of that payment keeps the money in). For the
legitimate traffic: the share of events, and of payments, decided step_up, hold or deny.
"""
import collections
import json
import sys

FLAGGED = {'step_up', 'hold', 'deny'}
MONEY = {'transfer', 'withdrawal'}


def main():
    events, decisions = sys.argv[1], sys.argv[2]
    inst = collections.OrderedDict()  # label -> [flag before money, money seen, any flag]
    legit = collections.Counter()
    with open(events) as fe, open(decisions) as fd:
        for le, ld in zip(fe, fd):
            e, d = json.loads(le), json.loads(ld)
            flagged = d.get('decision') in FLAGGED
            label = e.get('label', 'legit')
            if label == 'legit':
                legit['events'] += 1
                legit['flagged'] += flagged
                if e['type'] in MONEY:
                    legit['payments'] += 1
                    legit['payments_flagged'] += flagged
                continue
            s = inst.setdefault(label, {'stopped': False, 'money': False, 'detected': False})
            s['detected'] |= flagged
            if not s['money']:
                s['stopped'] |= flagged
                if e['type'] in MONEY:
                    s['money'] = True
    kinds = collections.OrderedDict()
    for label, s in inst.items():
        k = kinds.setdefault(label.rsplit('_', 1)[0], collections.Counter())
        k['instances'] += 1
        k['detected'] += s['detected']
        if s['money']:
            k['with_money'] += 1
            k['stopped'] += s['stopped']
    print('| attack | instances | detected | moved money | stopped before money left |')
    print('|---|---|---|---|---|')
    tot = collections.Counter()
    for name, k in kinds.items():
        tot.update(k)
        print('| %s | %d | %d (%.0f %%) | %d | %s |' % (
            name, k['instances'], k['detected'], 100.0 * k['detected'] / k['instances'],
            k['with_money'], '%d (%.0f %%)' % (k['stopped'], 100.0 * k['stopped'] / k['with_money'])
            if k['with_money'] else '—'))
    print('| all | %d | %d (%.0f %%) | %d | %d (%.0f %%) |' % (
        tot['instances'], tot['detected'], 100.0 * tot['detected'] / max(1, tot['instances']),
        tot['with_money'], tot['stopped'], 100.0 * tot['stopped'] / max(1, tot['with_money'])))
    print()
    print('legitimate: %d of %d events decided step_up, hold or deny (%.2f %%); %d of %d payments (%.2f %%)' % (
        legit['flagged'], legit['events'], 100.0 * legit['flagged'] / max(1, legit['events']),
        legit['payments_flagged'], legit['payments'],
        100.0 * legit['payments_flagged'] / max(1, legit['payments'])))


if __name__ == '__main__':
    main()
