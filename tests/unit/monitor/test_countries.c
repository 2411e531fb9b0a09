/*
 * test_countries.c - the country centroids the travel features fall back on.
 */
#include "cu_test.h"

#include <math.h>

#include "monitor/countries.h"

/* Every code the table should hold, in order: the ISO 3166-1 alpha-2 codes and XK. */
static const char all_codes[] =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCM"
    "CNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGY"
    "HKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMF"
    "MGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARE"
    "RORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZ"
    "VAVCVEVGVIVNVUWFWSXKYEYTZAZMZW";

/* The table is sorted: bsearch finds every code it should hold, and nothing else is found. */
static void test_sorted_and_complete(void **state)
{
    (void)state;
    size_t n = strlen(all_codes) / 2;
    assert_true(n >= 245);
    assert_int_equal(cu_country_count(), n);
    char prev[3] = "";
    for (size_t i = 0; i < n; i++) {
        char cc[3] = {all_codes[2 * i], all_codes[2 * i + 1], '\0'};
        double lat = 0, lon = 0;
        if (!cu_country_centroid(cc, &lat, &lon))
            fail_msg("%s not found", cc);
        if (strcmp(prev, cc) >= 0)
            fail_msg("the list of codes is out of order at %s", cc);
        memcpy(prev, cc, sizeof(prev));
    }
    /* a sample across the alphabet, the ends included */
    const char *sample[] = {"AD", "AQ", "GI", "GU", "HK", "MO", "PR", "RE", "XK", "ZW"};
    for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++) {
        double lat, lon;
        assert_true(cu_country_centroid(sample[i], &lat, &lon));
    }
}

static void test_known_values(void **state)
{
    (void)state;
    static const struct {
        const char *cc;
        double lat, lon;
    } known[] = {
        {"GB", 54.0, -2.0},   {"FR", 46.2, 2.2},   {"US", 39.8, -98.6},  {"AU", -25.3, 133.8},
        {"BR", -14.2, -51.9}, {"JP", 36.2, 138.3}, {"ZA", -30.6, 22.9},  {"IN", 20.6, 79.0},
        {"CN", 35.9, 104.2},  {"RU", 61.5, 105.3}, {"NZ", -40.9, 174.9}, {"CA", 56.1, -106.3},
        {"AR", -38.4, -63.6}, {"EG", 26.8, 30.8},  {"SG", 1.4, 103.8},   {"IS", 64.9, -19.0},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        double lat, lon;
        assert_true(cu_country_centroid(known[i].cc, &lat, &lon));
        if (fabs(lat - known[i].lat) > 3.0 || fabs(lon - known[i].lon) > 3.0)
            fail_msg("%s: %.1f,%.1f, wanted about %.1f,%.1f", known[i].cc, lat, lon, known[i].lat,
                     known[i].lon);
    }
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {"ZZ", "gb", "Gb", "gB", "G", "GBR", "", "AA", "G1", " GB", "GB "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double lat = 1234.0, lon = 5678.0;
        if (cu_country_centroid(bad[i], &lat, &lon))
            fail_msg("'%s' was accepted", bad[i]);
        /* lat and lon are left alone */
        assert_true(lat == 1234.0 && lon == 5678.0);
    }
    double lat, lon;
    assert_false(cu_country_centroid(NULL, &lat, &lon));
}

/* Every pair of upper-case letters: each one found is in range, and as many are found as the
 * table holds. */
static void test_every_pair(void **state)
{
    (void)state;
    size_t found = 0;
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            char cc[3] = {a, b, '\0'};
            double lat, lon;
            if (!cu_country_centroid(cc, &lat, &lon))
                continue;
            found++;
            if (!(lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0))
                fail_msg("%s: %f,%f out of range", cc, lat, lon);
        }
    }
    assert_int_equal(found, cu_country_count());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_and_complete),
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_every_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
