/*
 * countries.h - the approximate centroid of each country, for the travel features
 * travel_km() and travel_kmh() (docs/monitoring.md, "State") of an event that carries a country
 * but no lat/lon.
 *
 * The table holds every officially assigned ISO 3166-1 alpha-2 code, territories included
 * (GI, HK, MO, PR, RE ...), and XK for Kosovo, user-assigned but in wide use. A centroid is
 * given to a tenth of a degree: near enough to tell how fast someone went from one country to
 * another, no use for telling which side of a border a point lies.
 */
#ifndef CU_MONITOR_COUNTRIES_H
#define CU_MONITOR_COUNTRIES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * cu_country_centroid(cc, lat, lon): true, with the centroid in degrees (lat in [-90, 90], lon
 * in [-180, 180]), for a known code of exactly two upper-case letters; false, leaving lat and
 * lon alone, for NULL, another length, lower case or a code the table does not hold.
 */
bool cu_country_centroid(const char *cc, double *lat, double *lon);

/* cu_country_count(): how many codes the table holds. */
size_t cu_country_count(void);

#endif
