/*
 * countries.c - the approximate centroid of each country (countries.h).
 *
 * The values are approximate centroids, to one decimal of a degree, written for this table
 * rather than copied from a data set: good for travel speeds between countries, not for
 * borders. A country of islands spread over an ocean (KI, UM, PF ...) is placed at its main
 * island group; France, Portugal, Spain and the Netherlands at their European part, their
 * overseas regions having codes of their own (RE, GP, BQ ...).
 *
 * The table is sorted by code, which bsearch relies on: 249 officially assigned ISO 3166-1
 * alpha-2 codes and XK (Kosovo, user-assigned).
 */
#include "monitor/countries.h"

#include <stdlib.h>
#include <string.h>

struct centroid {
    char cc[3];
    double lat, lon;
};

static const struct centroid table[] = {
    {"AD", 42.5, 1.5},     /* Andorra */
    {"AE", 23.4, 53.8},    /* United Arab Emirates */
    {"AF", 33.9, 67.7},    /* Afghanistan */
    {"AG", 17.1, -61.8},   /* Antigua and Barbuda */
    {"AI", 18.2, -63.1},   /* Anguilla */
    {"AL", 41.2, 20.2},    /* Albania */
    {"AM", 40.1, 45.0},    /* Armenia */
    {"AO", -11.2, 17.9},   /* Angola */
    {"AQ", -75.3, 0.0},    /* Antarctica */
    {"AR", -38.4, -63.6},  /* Argentina */
    {"AS", -14.3, -170.7}, /* American Samoa */
    {"AT", 47.5, 14.6},    /* Austria */
    {"AU", -25.3, 133.8},  /* Australia */
    {"AW", 12.5, -70.0},   /* Aruba */
    {"AX", 60.2, 20.0},    /* Aland Islands */
    {"AZ", 40.1, 47.6},    /* Azerbaijan */
    {"BA", 43.9, 17.7},    /* Bosnia and Herzegovina */
    {"BB", 13.2, -59.5},   /* Barbados */
    {"BD", 23.7, 90.4},    /* Bangladesh */
    {"BE", 50.5, 4.5},     /* Belgium */
    {"BF", 12.2, -1.6},    /* Burkina Faso */
    {"BG", 42.7, 25.5},    /* Bulgaria */
    {"BH", 26.0, 50.6},    /* Bahrain */
    {"BI", -3.4, 29.9},    /* Burundi */
    {"BJ", 9.3, 2.3},      /* Benin */
    {"BL", 17.9, -62.8},   /* Saint Barthelemy */
    {"BM", 32.3, -64.8},   /* Bermuda */
    {"BN", 4.5, 114.7},    /* Brunei */
    {"BO", -16.3, -63.6},  /* Bolivia */
    {"BQ", 12.2, -68.3},   /* Bonaire, Sint Eustatius and Saba */
    {"BR", -14.2, -51.9},  /* Brazil */
    {"BS", 24.3, -76.6},   /* Bahamas */
    {"BT", 27.5, 90.4},    /* Bhutan */
    {"BV", -54.4, 3.4},    /* Bouvet Island */
    {"BW", -22.3, 24.7},   /* Botswana */
    {"BY", 53.7, 28.0},    /* Belarus */
    {"BZ", 17.2, -88.5},   /* Belize */
    {"CA", 56.1, -106.3},  /* Canada */
    {"CC", -12.2, 96.9},   /* Cocos (Keeling) Islands */
    {"CD", -4.0, 21.8},    /* Congo, Democratic Republic */
    {"CF", 6.6, 20.9},     /* Central African Republic */
    {"CG", -0.2, 15.8},    /* Congo */
    {"CH", 46.8, 8.2},     /* Switzerland */
    {"CI", 7.5, -5.5},     /* Cote d'Ivoire */
    {"CK", -21.2, -159.8}, /* Cook Islands */
    {"CL", -35.7, -71.5},  /* Chile */
    {"CM", 7.4, 12.4},     /* Cameroon */
    {"CN", 35.9, 104.2},   /* China */
    {"CO", 4.6, -74.3},    /* Colombia */
    {"CR", 9.7, -83.8},    /* Costa Rica */
    {"CU", 21.5, -77.8},   /* Cuba */
    {"CV", 16.0, -24.0},   /* Cabo Verde */
    {"CW", 12.2, -69.0},   /* Curacao */
    {"CX", -10.5, 105.7},  /* Christmas Island */
    {"CY", 35.1, 33.4},    /* Cyprus */
    {"CZ", 49.8, 15.5},    /* Czechia */
    {"DE", 51.2, 10.5},    /* Germany */
    {"DJ", 11.8, 42.6},    /* Djibouti */
    {"DK", 56.3, 9.5},     /* Denmark */
    {"DM", 15.4, -61.4},   /* Dominica */
    {"DO", 18.7, -70.2},   /* Dominican Republic */
    {"DZ", 28.0, 1.7},     /* Algeria */
    {"EC", -1.8, -78.2},   /* Ecuador */
    {"EE", 58.6, 25.0},    /* Estonia */
    {"EG", 26.8, 30.8},    /* Egypt */
    {"EH", 24.2, -12.9},   /* Western Sahara */
    {"ER", 15.2, 39.8},    /* Eritrea */
    {"ES", 40.5, -3.7},    /* Spain */
    {"ET", 9.1, 40.5},     /* Ethiopia */
    {"FI", 61.9, 25.7},    /* Finland */
    {"FJ", -17.7, 178.1},  /* Fiji */
    {"FK", -51.8, -59.5},  /* Falkland Islands */
    {"FM", 7.4, 150.6},    /* Micronesia */
    {"FO", 61.9, -6.9},    /* Faroe Islands */
    {"FR", 46.2, 2.2},     /* France */
    {"GA", -0.8, 11.6},    /* Gabon */
    {"GB", 54.0, -2.5},    /* United Kingdom */
    {"GD", 12.1, -61.7},   /* Grenada */
    {"GE", 42.3, 43.4},    /* Georgia */
    {"GF", 3.9, -53.1},    /* French Guiana */
    {"GG", 49.5, -2.6},    /* Guernsey */
    {"GH", 7.9, -1.0},     /* Ghana */
    {"GI", 36.1, -5.4},    /* Gibraltar */
    {"GL", 71.7, -42.6},   /* Greenland */
    {"GM", 13.4, -15.3},   /* Gambia */
    {"GN", 9.9, -9.7},     /* Guinea */
    {"GP", 16.3, -61.6},   /* Guadeloupe */
    {"GQ", 1.7, 10.3},     /* Equatorial Guinea */
    {"GR", 39.1, 21.8},    /* Greece */
    {"GS", -54.4, -36.6},  /* South Georgia and the South Sandwich Islands */
    {"GT", 15.8, -90.2},   /* Guatemala */
    {"GU", 13.4, 144.8},   /* Guam */
    {"GW", 11.8, -15.2},   /* Guinea-Bissau */
    {"GY", 4.9, -58.9},    /* Guyana */
    {"HK", 22.4, 114.1},   /* Hong Kong */
    {"HM", -53.1, 73.5},   /* Heard Island and McDonald Islands */
    {"HN", 15.2, -86.2},   /* Honduras */
    {"HR", 45.1, 15.2},    /* Croatia */
    {"HT", 19.0, -72.3},   /* Haiti */
    {"HU", 47.2, 19.5},    /* Hungary */
    {"ID", -0.8, 113.9},   /* Indonesia */
    {"IE", 53.4, -8.2},    /* Ireland */
    {"IL", 31.0, 34.9},    /* Israel */
    {"IM", 54.2, -4.5},    /* Isle of Man */
    {"IN", 20.6, 79.0},    /* India */
    {"IO", -6.3, 71.9},    /* British Indian Ocean Territory */
    {"IQ", 33.2, 43.7},    /* Iraq */
    {"IR", 32.4, 53.7},    /* Iran */
    {"IS", 64.9, -19.0},   /* Iceland */
    {"IT", 41.9, 12.6},    /* Italy */
    {"JE", 49.2, -2.1},    /* Jersey */
    {"JM", 18.1, -77.3},   /* Jamaica */
    {"JO", 30.6, 36.2},    /* Jordan */
    {"JP", 36.2, 138.3},   /* Japan */
    {"KE", 0.0, 37.9},     /* Kenya */
    {"KG", 41.2, 74.8},    /* Kyrgyzstan */
    {"KH", 12.6, 105.0},   /* Cambodia */
    {"KI", 1.4, 173.0},    /* Kiribati */
    {"KM", -11.9, 43.9},   /* Comoros */
    {"KN", 17.3, -62.7},   /* Saint Kitts and Nevis */
    {"KP", 40.3, 127.5},   /* Korea, North */
    {"KR", 35.9, 127.8},   /* Korea, South */
    {"KW", 29.3, 47.5},    /* Kuwait */
    {"KY", 19.3, -81.3},   /* Cayman Islands */
    {"KZ", 48.0, 66.9},    /* Kazakhstan */
    {"LA", 19.9, 102.5},   /* Laos */
    {"LB", 33.9, 35.9},    /* Lebanon */
    {"LC", 13.9, -61.0},   /* Saint Lucia */
    {"LI", 47.2, 9.6},     /* Liechtenstein */
    {"LK", 7.9, 80.8},     /* Sri Lanka */
    {"LR", 6.4, -9.4},     /* Liberia */
    {"LS", -29.6, 28.2},   /* Lesotho */
    {"LT", 55.2, 23.9},    /* Lithuania */
    {"LU", 49.8, 6.1},     /* Luxembourg */
    {"LV", 56.9, 24.6},    /* Latvia */
    {"LY", 26.3, 17.2},    /* Libya */
    {"MA", 31.8, -7.1},    /* Morocco */
    {"MC", 43.7, 7.4},     /* Monaco */
    {"MD", 47.4, 28.4},    /* Moldova */
    {"ME", 42.7, 19.4},    /* Montenegro */
    {"MF", 18.1, -63.1},   /* Saint Martin (French part) */
    {"MG", -18.8, 46.9},   /* Madagascar */
    {"MH", 7.1, 171.2},    /* Marshall Islands */
    {"MK", 41.6, 21.7},    /* North Macedonia */
    {"ML", 17.6, -4.0},    /* Mali */
    {"MM", 21.9, 95.9},    /* Myanmar */
    {"MN", 46.9, 103.8},   /* Mongolia */
    {"MO", 22.2, 113.5},   /* Macao */
    {"MP", 15.1, 145.7},   /* Northern Mariana Islands */
    {"MQ", 14.6, -61.0},   /* Martinique */
    {"MR", 21.0, -10.9},   /* Mauritania */
    {"MS", 16.7, -62.2},   /* Montserrat */
    {"MT", 35.9, 14.4},    /* Malta */
    {"MU", -20.3, 57.6},   /* Mauritius */
    {"MV", 3.2, 73.2},     /* Maldives */
    {"MW", -13.3, 34.3},   /* Malawi */
    {"MX", 23.6, -102.6},  /* Mexico */
    {"MY", 4.2, 102.0},    /* Malaysia */
    {"MZ", -18.7, 35.5},   /* Mozambique */
    {"NA", -23.0, 18.5},   /* Namibia */
    {"NC", -20.9, 165.6},  /* New Caledonia */
    {"NE", 17.6, 8.1},     /* Niger */
    {"NF", -29.0, 168.0},  /* Norfolk Island */
    {"NG", 9.1, 8.7},      /* Nigeria */
    {"NI", 12.9, -85.2},   /* Nicaragua */
    {"NL", 52.1, 5.3},     /* Netherlands */
    {"NO", 60.5, 8.5},     /* Norway */
    {"NP", 28.4, 84.1},    /* Nepal */
    {"NR", -0.5, 166.9},   /* Nauru */
    {"NU", -19.1, -169.9}, /* Niue */
    {"NZ", -40.9, 174.9},  /* New Zealand */
    {"OM", 21.5, 55.9},    /* Oman */
    {"PA", 8.5, -80.8},    /* Panama */
    {"PE", -9.2, -75.0},   /* Peru */
    {"PF", -17.7, -149.4}, /* French Polynesia */
    {"PG", -6.3, 143.9},   /* Papua New Guinea */
    {"PH", 12.9, 121.8},   /* Philippines */
    {"PK", 30.4, 69.3},    /* Pakistan */
    {"PL", 51.9, 19.1},    /* Poland */
    {"PM", 46.9, -56.3},   /* Saint Pierre and Miquelon */
    {"PN", -25.1, -130.1}, /* Pitcairn */
    {"PR", 18.2, -66.6},   /* Puerto Rico */
    {"PS", 31.9, 35.2},    /* Palestine */
    {"PT", 39.4, -8.2},    /* Portugal */
    {"PW", 7.5, 134.6},    /* Palau */
    {"PY", -23.4, -58.4},  /* Paraguay */
    {"QA", 25.4, 51.2},    /* Qatar */
    {"RE", -21.1, 55.5},   /* Reunion */
    {"RO", 45.9, 25.0},    /* Romania */
    {"RS", 44.0, 21.0},    /* Serbia */
    {"RU", 61.5, 105.3},   /* Russia */
    {"RW", -1.9, 29.9},    /* Rwanda */
    {"SA", 23.9, 45.1},    /* Saudi Arabia */
    {"SB", -9.6, 160.2},   /* Solomon Islands */
    {"SC", -4.7, 55.5},    /* Seychelles */
    {"SD", 15.9, 30.2},    /* Sudan */
    {"SE", 60.1, 18.6},    /* Sweden */
    {"SG", 1.4, 103.8},    /* Singapore */
    {"SH", -16.0, -5.7},   /* Saint Helena, Ascension and Tristan da Cunha */
    {"SI", 46.2, 15.0},    /* Slovenia */
    {"SJ", 77.6, 23.7},    /* Svalbard and Jan Mayen */
    {"SK", 48.7, 19.7},    /* Slovakia */
    {"SL", 8.5, -11.8},    /* Sierra Leone */
    {"SM", 43.9, 12.5},    /* San Marino */
    {"SN", 14.5, -14.5},   /* Senegal */
    {"SO", 5.2, 46.2},     /* Somalia */
    {"SR", 3.9, -56.0},    /* Suriname */
    {"SS", 7.6, 30.2},     /* South Sudan */
    {"ST", 0.2, 6.6},      /* Sao Tome and Principe */
    {"SV", 13.8, -88.9},   /* El Salvador */
    {"SX", 18.0, -63.1},   /* Sint Maarten (Dutch part) */
    {"SY", 34.8, 39.0},    /* Syria */
    {"SZ", -26.5, 31.5},   /* Eswatini */
    {"TC", 21.7, -71.8},   /* Turks and Caicos Islands */
    {"TD", 15.5, 18.7},    /* Chad */
    {"TF", -49.3, 69.3},   /* French Southern Territories */
    {"TG", 8.6, 0.8},      /* Togo */
    {"TH", 15.9, 101.0},   /* Thailand */
    {"TJ", 38.9, 71.3},    /* Tajikistan */
    {"TK", -9.2, -171.8},  /* Tokelau */
    {"TL", -8.9, 125.7},   /* Timor-Leste */
    {"TM", 39.0, 59.6},    /* Turkmenistan */
    {"TN", 33.9, 9.5},     /* Tunisia */
    {"TO", -21.2, -175.2}, /* Tonga */
    {"TR", 39.0, 35.2},    /* Turkiye */
    {"TT", 10.7, -61.2},   /* Trinidad and Tobago */
    {"TV", -8.5, 179.2},   /* Tuvalu */
    {"TW", 23.7, 121.0},   /* Taiwan */
    {"TZ", -6.4, 34.9},    /* Tanzania */
    {"UA", 48.4, 31.2},    /* Ukraine */
    {"UG", 1.4, 32.3},     /* Uganda */
    {"UM", 19.3, 166.6},   /* United States Minor Outlying Islands */
    {"US", 39.8, -98.6},   /* United States */
    {"UY", -32.5, -55.8},  /* Uruguay */
    {"UZ", 41.4, 64.6},    /* Uzbekistan */
    {"VA", 41.9, 12.5},    /* Holy See */
    {"VC", 13.0, -61.2},   /* Saint Vincent and the Grenadines */
    {"VE", 6.4, -66.6},    /* Venezuela */
    {"VG", 18.4, -64.6},   /* Virgin Islands (British) */
    {"VI", 18.3, -64.9},   /* Virgin Islands (U.S.) */
    {"VN", 14.1, 108.3},   /* Viet Nam */
    {"VU", -15.4, 166.9},  /* Vanuatu */
    {"WF", -13.8, -177.2}, /* Wallis and Futuna */
    {"WS", -13.8, -172.1}, /* Samoa */
    {"XK", 42.6, 20.9},    /* Kosovo */
    {"YE", 15.6, 48.5},    /* Yemen */
    {"YT", -12.8, 45.2},   /* Mayotte */
    {"ZA", -30.6, 22.9},   /* South Africa */
    {"ZM", -13.1, 27.8},   /* Zambia */
    {"ZW", -19.0, 29.2},   /* Zimbabwe */
};

static int cmp(const void *key, const void *elem)
{
    const struct centroid *c = elem;
    return memcmp(key, c->cc, 2);
}

bool cu_country_centroid(const char *cc, double *lat, double *lon)
{
    if (cc == NULL || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' || cc[2] != '\0')
        return false;
    const struct centroid *c =
        bsearch(cc, table, sizeof(table) / sizeof(table[0]), sizeof(table[0]), cmp);
    if (c == NULL)
        return false;
    *lat = c->lat;
    *lon = c->lon;
    return true;
}

size_t cu_country_count(void)
{
    return sizeof(table) / sizeof(table[0]);
}
