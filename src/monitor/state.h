/*
 * state.h - the monitoring state (docs/monitoring.md, "State"): the windows the features of a
 * rule set count over and each customer's baseline, in memory, fed event by event.
 *
 * For each event: cu_mon_state_source gives the feature values the rules read (the windows
 * with this event counted in, the baselines as they stood before it), then cu_mon_state_add
 * records the event. A window of length W is kept in 16 buckets of W/16: a count over W
 * counts the events of the 16 buckets ending with the event's own, so it reaches back between
 * W - W/16 and W. Keys (customers, addresses, devices ...) are kept as keyed 64-bit hashes;
 * distinct counts are exact up to CU_MON_DISTINCT_MAX values in a window; the sets of devices,
 * countries, payees and addresses a customer was seen with keep the CU_MON_SEEN_MAX most
 * recent of each.
 *
 * One thread at a time: the caller serialises (the server's committer, the replay tool).
 */
#ifndef CU_MONITOR_STATE_H
#define CU_MONITOR_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "monitor/event.h"
#include "monitor/rules.h"

#define CU_MON_BUCKETS 16
#define CU_MON_DISTINCT_MAX 64
#define CU_MON_SEEN_MAX 16
#define CU_MON_KEYS_MAX 8000000 /* keys of every kind together */

struct cu_mon_state;

/* cu_mon_state_new(features, n, out): an empty state for a rule set's features (copied). */
CU_WUR enum cu_err cu_mon_state_new(const struct cu_feature *features, size_t n,
                                    struct cu_mon_state **out);
void cu_mon_state_free(struct cu_mon_state *st);

/* The source of feature values for one event; valid until the next call on st. */
struct cu_mon_probe {
    struct cu_mon_state *st;
    const struct cu_mon_event *ev;
};

/* cu_mon_state_source(st, ev, probe, out): fills out to answer the rules about ev. */
void cu_mon_state_source(struct cu_mon_state *st, const struct cu_mon_event *ev,
                         struct cu_mon_probe *probe, struct cu_feature_source *out);

/* cu_mon_state_add(st, ev): records ev in every window and in its customer's baseline.
 * CU_E_NOMEM leaves the state as it was for the parts not yet recorded. */
CU_WUR enum cu_err cu_mon_state_add(struct cu_mon_state *st, const struct cu_mon_event *ev);

/* Memory the state holds, how many keys of each kind it tracks, how many it forgot once their
 * windows had all passed (an address or device is kept only while some window still counts
 * it; a customer's baseline is kept), and how many events found the key cap reached. */
struct cu_mon_state_stats {
    size_t bytes;
    size_t keys[CU_KEY_COUNT];
    uint64_t swept, dropped;
};
void cu_mon_state_stats(const struct cu_mon_state *st, struct cu_mon_state_stats *out);

/* cu_mon_state_set_keys_max(st, max): the keys kept at most (CU_MON_KEYS_MAX by default);
 * past it an event's new keys are not recorded (its known keys still are). */
void cu_mon_state_set_keys_max(struct cu_mon_state *st, size_t max);

/* cu_mon_anomaly(...) is described in docs/monitoring.md; exposed for its tests. Each r is a
 * rarity in [0, 1]; past is the customer's past events. */
double cu_mon_anomaly(double hour_rarity, double amount_rarity, double new_device,
                      double new_country, double new_payee, uint32_t past);

/* cu_mon_distance_km(lat1, lon1, lat2, lon2): the great-circle distance (haversine, a sphere
 * of radius 6,371 km). */
double cu_mon_distance_km(double lat1, double lon1, double lat2, double lon2);

#endif
