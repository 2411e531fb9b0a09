#!/usr/bin/env python3
"""Synthetic monitoring traffic with labelled attacks, for `custodia rules test`.

usage: gen_events.py [--customers N] [--events N] [--days D] [--attacks N] [--seed S] OUT.jsonl

Customers have habits: a home country, time zone and city, the hours they are active in (a
morning or an evening person), one to three devices, a home address in a provider's block,
regular payees, an amount habit (log-normal), the odd typo at sign-in, and the odd trip
abroad (a flight's time away, so never faster than an airliner). Attacks are mixed in, each
instance labelled with its kind and number ("stuffing_0003"); everything else is "legit":

  stuffing   one address tries many accounts; a few sign-ins succeed; money leaves from them
  spraying   many addresses of one network try a few accounts each
  brute      one account is tried many times, then taken over
  takeover   a phished account: a new device and country, the e-mail changed, money out
  mule       a customer adds many payees in a day and pays each
  travel     a sign-in far from the last one too soon after it, then a transfer
  night      a session at an hour the customer never uses, with a payment far above usual

The output is in time order, one event a line, in the shape of docs/monitoring.md. The same
seed gives the same file.
"""
import argparse
import math
import random

T0 = 1767225600  # 2026-01-01T00:00:00Z

# country: (lat, lon, utc offset in hours, cities spread in degrees)
HOME = {
    'GB': (51.5, -0.1, 0, 1.5), 'DE': (51.2, 10.4, 1, 2.0), 'FR': (46.6, 2.4, 1, 2.5),
    'ES': (40.4, -3.7, 1, 2.0), 'IT': (42.5, 12.5, 1, 2.5), 'NL': (52.2, 5.3, 1, 0.5),
    'IE': (53.3, -7.7, 0, 1.0), 'PL': (52.1, 19.4, 1, 2.0), 'PT': (39.6, -8.0, 0, 1.0),
    'US': (39.8, -98.6, -6, 8.0),
}
AWAY = {'RU': (55.8, 37.6), 'NG': (6.5, 3.4), 'VN': (21.0, 105.8), 'BR': (-23.5, -46.6),
        'ID': (-6.2, 106.8)}
HOME_CODES = sorted(HOME)
WEIGHTS = [18, 14, 12, 10, 10, 6, 4, 8, 4, 14]


def iso(t):
    ms = int(round(t * 1000))
    s, m = divmod(ms, 1000)
    days, rest = divmod(s, 86400)
    # days since 1970 to a civil date (Howard Hinnant's algorithm)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + 3 if mp < 10 else mp - 9
    y += mo <= 2
    return '%04d-%02d-%02dT%02d:%02d:%02d.%03dZ' % (y, mo, d, rest // 3600, rest // 60 % 60,
                                                    rest % 60, m)


class Customer:
    def __init__(self, i, rnd):
        self.id = 'c%06d' % i
        self.country = rnd.choices(HOME_CODES, WEIGHTS)[0]
        lat, lon, self.tz, spread = HOME[self.country]
        self.lat = lat + rnd.uniform(-spread, spread) / 2
        self.lon = lon + rnd.uniform(-spread, spread)
        self.peak = rnd.choice([9.0, 12.5, 19.5, 21.0]) + rnd.uniform(-1.5, 1.5)
        self.spread = rnd.uniform(1.5, 3.5)
        self.devices = ['d%06d%d' % (i, k) for k in range(rnd.choice([1, 1, 2, 2, 3]))]
        self.ip = '%d.%d.%d.%d' % (rnd.choice([81, 82, 86, 90, 92, 109, 176, 188]),
                                    rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
        self.payees = ['p%06d%02d' % (i, k) for k in range(rnd.randint(2, 8))]
        self.mu = rnd.gauss(8.3, 0.8)  # ln of the usual amount in minor units (~40.00)
        self.sigma = rnd.uniform(0.3, 0.8)
        self.rate = rnd.uniform(0.5, 4.0)  # sessions a day
        self.next_payee = len(self.payees)

    def local_hour(self, rnd):
        h = rnd.gauss(self.peak, self.spread)
        return h % 24

    def amount(self, rnd):
        return max(100, int(math.exp(rnd.gauss(self.mu, self.sigma))))


def ev(t, typ, cus, label, **kw):
    parts = ['"type":"%s"' % typ, '"time":"%s"' % iso(t), '"customer":"%s"' % cus]
    for k in ('ip', 'device', 'country'):
        if k in kw:
            parts.append('"%s":"%s"' % (k, kw[k]))
    if 'lat' in kw:
        parts.append('"lat":%.4f,"lon":%.4f' % (kw['lat'], kw['lon']))
    if 'amount' in kw:
        parts.append('"amount":%d,"currency":"EUR"' % kw['amount'])
    if 'payee' in kw:
        parts.append('"payee":"%s"' % kw['payee'])
    if 'fields' in kw:
        parts.append('"fields":[%s]' % ','.join('"%s"' % f for f in kw['fields']))
    parts.append('"channel":"%s"' % kw.get('channel', 'app'))
    parts.append('"label":"%s"' % label)
    return (t, '{' + ','.join(parts) + '}')


def where(c, rnd):
    # an address's location is its city's: it does not move between sessions
    return {'ip': c.ip, 'device': rnd.choice(c.devices), 'country': c.country,
            'lat': c.lat, 'lon': c.lon}


def session(out, c, t, rnd):
    at = where(c, rnd)
    if rnd.random() < 0.03:  # a typo first
        out.append(ev(t, 'login_failed', c.id, 'legit', **at))
        t += rnd.uniform(5, 30)
    out.append(ev(t, 'login_succeeded', c.id, 'legit', **at))
    r = rnd.random()
    if r < 0.010:
        p = 'p%s%02d' % (c.id[1:], c.next_payee)
        c.next_payee += 1
        c.payees.append(p)
        t += rnd.uniform(20, 120)
        out.append(ev(t, 'payee_added', c.id, 'legit', payee=p, **at))
    elif r < 0.012:
        t += rnd.uniform(20, 120)
        out.append(ev(t, 'profile_changed', c.id, 'legit', fields=[rnd.choice(['address', 'email', 'phone'])], **at))
    elif r < 0.013:
        t += rnd.uniform(20, 120)
        out.append(ev(t, 'password_changed', c.id, 'legit', **at))
    for _ in range(rnd.choice([0, 0, 1, 1, 1, 2, 3])):
        t += rnd.uniform(15, 200)
        kind = rnd.choices(['transfer', 'withdrawal', 'deposit'], [80, 8, 12])[0]
        kw = dict(at, amount=c.amount(rnd))
        if kind == 'transfer':
            kw['payee'] = rnd.choice(c.payees)
        out.append(ev(t, kind, c.id, 'legit', **kw))
    return t


def attacker_ip(rnd, block=None):
    if block is None:
        block = (rnd.choice([45, 91, 185, 193]), rnd.randrange(256), rnd.randrange(256))
    return '%d.%d.%d.%d' % (block + (rnd.randrange(1, 255),))


def money_out(out, c, t, rnd, label, at, big=True):
    """A takeover's payout: a new payee (a mule's), then a large transfer to it."""
    p = 'm%06d' % rnd.randrange(10 ** 6)
    t += rnd.uniform(30, 300)
    out.append(ev(t, 'payee_added', c.id, label, payee=p, **at))
    t += rnd.uniform(30, 300)
    amount = c.amount(rnd) * (rnd.randint(15, 60) if big else 1)
    out.append(ev(t, 'transfer', c.id, label, amount=max(amount, 150000), payee=p, **at))
    return t


def attack(out, kind, n, customers, t, rnd):
    label = '%s_%04d' % (kind, n)
    if kind == 'stuffing':
        ip = attacker_ip(rnd)
        device = 'x%06d' % rnd.randrange(10 ** 6)
        away = rnd.choice(sorted(AWAY))
        victims = rnd.sample(customers, rnd.randint(15, 40))
        for v in victims:
            t += rnd.uniform(2, 20)
            ok = rnd.random() < 0.08
            at = {'ip': ip, 'device': device, 'country': away, 'lat': AWAY[away][0], 'lon': AWAY[away][1]}
            out.append(ev(t, 'login_succeeded' if ok else 'login_failed', v.id, label, **at))
            if ok:
                money_out(out, v, t, rnd, label, at)
    elif kind == 'spraying':
        block = (rnd.choice([45, 91, 185, 193]), rnd.randrange(256), rnd.randrange(256))
        victims = rnd.sample(customers, rnd.randint(25, 60))
        for v in victims:
            for _ in range(rnd.randint(1, 2)):
                t += rnd.uniform(5, 60)
                out.append(ev(t, 'login_failed', v.id, label, ip=attacker_ip(rnd, block),
                              device='x%06d' % rnd.randrange(10 ** 6)))
    elif kind == 'brute':
        v = rnd.choice(customers)
        ip = attacker_ip(rnd)
        device = 'x%06d' % rnd.randrange(10 ** 6)
        for _ in range(rnd.randint(8, 30)):
            t += rnd.uniform(3, 30)
            out.append(ev(t, 'login_failed', v.id, label, ip=ip, device=device))
        if rnd.random() < 0.5:
            t += rnd.uniform(3, 30)
            at = {'ip': ip, 'device': device}
            out.append(ev(t, 'login_succeeded', v.id, label, **at))
            money_out(out, v, t, rnd, label, at)
    elif kind == 'takeover':
        v = rnd.choice(customers)
        away = rnd.choice(sorted(AWAY))
        at = {'ip': attacker_ip(rnd), 'device': 'x%06d' % rnd.randrange(10 ** 6), 'country': away,
              'lat': AWAY[away][0] + rnd.uniform(-1, 1), 'lon': AWAY[away][1] + rnd.uniform(-1, 1)}
        out.append(ev(t, 'login_succeeded', v.id, label, **at))
        t += rnd.uniform(60, 600)
        out.append(ev(t, 'profile_changed', v.id, label, fields=['email'], **at))
        t += rnd.uniform(600, 7200)
        kw = dict(at, amount=max(v.amount(rnd) * rnd.randint(5, 30), 50000))
        out.append(ev(t, 'withdrawal', v.id, label, **kw))
    elif kind == 'mule':
        v = rnd.choice(customers)
        at = where(v, rnd)
        out.append(ev(t, 'login_succeeded', v.id, label, **at))
        for k in range(rnd.randint(5, 9)):
            p = 'q%06d%02d' % (rnd.randrange(10 ** 6), k)
            t += rnd.uniform(60, 900)
            out.append(ev(t, 'payee_added', v.id, label, payee=p, **at))
            t += rnd.uniform(30, 300)
            out.append(ev(t, 'transfer', v.id, label, amount=v.amount(rnd) * 3, payee=p, **at))
    elif kind == 'travel':
        v = rnd.choice(customers)
        home = where(v, rnd)
        out.append(ev(t, 'login_succeeded', v.id, 'legit', **home))
        away = rnd.choice(sorted(AWAY))
        at = {'ip': attacker_ip(rnd), 'device': rnd.choice(v.devices), 'country': away,
              'lat': AWAY[away][0], 'lon': AWAY[away][1]}
        t += rnd.uniform(300, 1800)
        out.append(ev(t, 'login_succeeded', v.id, label, **at))
        t += rnd.uniform(60, 600)
        out.append(ev(t, 'transfer', v.id, label, amount=max(v.amount(rnd) * 8, 100000),
                      payee=rnd.choice(v.payees), **at))
    elif kind == 'night':
        v = rnd.choice(customers)
        # the hour opposite to the customer's peak, in local time
        day = int((t - T0) // 86400)
        local = (v.peak + 12) % 24
        t = T0 + day * 86400 + ((local - v.tz) % 24) * 3600 + 86400
        at = where(v, rnd)
        out.append(ev(t, 'login_succeeded', v.id, label, **at))
        t += rnd.uniform(30, 300)
        out.append(ev(t, 'transfer', v.id, label, amount=max(v.amount(rnd) * rnd.randint(20, 50), 150000),
                      payee=rnd.choice(v.payees), **at))
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--customers', type=int, default=10000)
    ap.add_argument('--events', type=int, default=1000000)
    ap.add_argument('--days', type=int, default=0, help='default: as many as the events need')
    ap.add_argument('--attacks', type=int, default=0, help='default: one per 2,000 events')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('out')
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    customers = [Customer(i, rnd) for i in range(a.customers)]
    mean_rate = sum(c.rate for c in customers) / len(customers)
    # about 2.3 events a session
    days = a.days or max(2, int(math.ceil(a.events / (a.customers * mean_rate * 2.3))))
    out = []
    for c in customers:
        trip = None
        if rnd.random() < 0.05 and days > 6:  # a trip abroad: a flight's time away
            start = rnd.randrange(days - 5)
            trip = (start, start + rnd.randint(2, 5), rnd.choice(sorted(set(HOME_CODES) - {c.country})))
        for d in range(days):
            for _ in range(int(rnd.expovariate(1.0) * c.rate + 0.5)):
                hour = c.local_hour(rnd)
                t = T0 + d * 86400 + (hour - c.tz) * 3600 + rnd.uniform(0, 3600)
                if trip and trip[0] <= d <= trip[1]:
                    saved = (c.country, c.lat, c.lon, c.ip)
                    lat, lon, _, _ = HOME[trip[2]]
                    c.country, c.lat, c.lon = trip[2], lat, lon
                    c.ip = '%d.%d.%d.%d' % (151, rnd.randrange(256), rnd.randrange(256), 7)
                    if d == trip[0]:
                        t = max(t, T0 + d * 86400 + 15 * 3600)  # the flight lands mid-afternoon
                    session(out, c, t, rnd)
                    c.country, c.lat, c.lon, c.ip = saved
                else:
                    session(out, c, t, rnd)
    kinds = ['stuffing', 'spraying', 'brute', 'takeover', 'mule', 'travel', 'night']
    n_attacks = a.attacks or max(len(kinds), len(out) // 2000)
    for n in range(n_attacks):
        t = T0 + rnd.uniform(days * 0.3, days - 1) * 86400  # after the habits have formed
        attack(out, kinds[n % len(kinds)], n, customers, t, rnd)
    out.sort(key=lambda e: e[0])
    with open(a.out, 'w') as f:
        for _, line in out:
            f.write(line)
            f.write('\n')
    labelled = sum(1 for _, l in out if '"label":"legit"' not in l)
    print('wrote %d events (%d customers, %d days, %d attacks, %d attack events) to %s' % (
        len(out), a.customers, days, n_attacks, labelled, a.out))


if __name__ == '__main__':
    main()
