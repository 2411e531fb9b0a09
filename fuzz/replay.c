/*
 * replay.c - runs a fuzz target over every file of the corpus directories it is given, so the
 * normal test run (and its sanitizer and valgrind runs) replays what fuzzing found. Built with
 * each target when fuzzing is off; libFuzzer provides main() when it is on.
 *
 * With `--mutate N [--seed S]` before the directories it then runs N more inputs, each a
 * corpus file changed by a few random edits (bytes flipped, inserted, removed or repeated,
 * tokens that parsers trip on spliced in, two files crossed), drawn from a generator seeded
 * with S (default 1): the same N and S give the same inputs, so a failure replays. A bounded,
 * blind fuzz for every test run; `make fuzz` is the guided one.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1u << 20)

static void keep(const uint8_t *data, size_t n);

static int replay_file(const char *path, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    n = fread(buf, 1, REPLAY_MAX_INPUT, f);
    fclose(f);
    keep(buf, n);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

/* The corpus, kept for mutation. */
#define REPLAY_MAX_FILES 4096

static uint8_t *kept[REPLAY_MAX_FILES];
static size_t kept_len[REPLAY_MAX_FILES];
static size_t nkept;
static uint64_t rng_state = 1;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static size_t below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

static void keep(const uint8_t *data, size_t n)
{
    if (nkept == REPLAY_MAX_FILES)
        return;
    kept[nkept] = malloc(n ? n : 1);
    if (kept[nkept] == NULL)
        return;
    memcpy(kept[nkept], data, n);
    kept_len[nkept++] = n;
}

static const char *const tokens[] = {
    "%00",
    "%0a",
    "%zz",
    "%",
    "\r\n",
    "\n\n",
    "\"",
    "\\",
    "\\u0000",
    "null",
    "[]",
    "{}",
    "-1",
    "0",
    "99999999999999999999",
    "1e308",
    "\xff\xfe",
    "\xc3\x28",
    ":",
    "?",
    "&",
    "=",
    "/",
    "..",
    "Content-Length: 5\n",
    "Transfer-Encoding: chunked\n",
    "Authorization: Bearer {{KEY}}\n",
    "Authorization: Bearer {{SESSION}}\n",
    "Authorization: Bearer {{RKEY}}\n",
    "{{CUS}}",
    "cus_0000000000000000",
    "ak_0000000000000000",
    ", \"email\": \"x\"",
    ", \"tags\": [1]",
    "Content-Type: application/json\n",
    "?limit=1000&after=",
    "\"password\": \"\"",
};

/* One random edit of buf (len bytes, room for cap), in place; returns the new length. */
static size_t edit(uint8_t *buf, size_t len, size_t cap)
{
    size_t at = below(len + 1), n;
    switch (rnd() % 6) {
    case 0: /* flip a byte */
        if (len > 0)
            buf[below(len)] ^= (uint8_t)(1u << below(8));
        return len;
    case 1: /* insert a random byte */
        if (len + 1 > cap)
            return len;
        memmove(buf + at + 1, buf + at, len - at);
        buf[at] = (uint8_t)rnd();
        return len + 1;
    case 2: /* remove a run */
        n = below(len - (at < len ? at : len) + 1);
        n = n > 16 ? 16 : n;
        memmove(buf + at, buf + at + n, len - at - n);
        return len - n;
    case 3: /* repeat a run */
        n = below(len - (at < len ? at : len) + 1) % 64;
        if (len + n > cap)
            return len;
        memmove(buf + at + n, buf + at, len - at);
        return len + n;
    case 4: { /* splice a token in */
        const char *t = tokens[below(sizeof(tokens) / sizeof(tokens[0]))];
        n = strlen(t);
        if (len + n > cap)
            return len;
        memmove(buf + at + n, buf + at, len - at);
        memcpy(buf + at, t, n);
        return len + n;
    }
    default: { /* cross with another file: this one's head, that one's tail */
        if (nkept == 0)
            return len;
        size_t k = below(nkept), from = below(kept_len[k] + 1), tail = kept_len[k] - from;
        if (at + tail > cap)
            return len;
        memcpy(buf + at, kept[k] + from, tail);
        return at + tail;
    }
    }
}

static void mutate(long count, uint8_t *buf)
{
    for (long i = 0; i < count && nkept > 0; i++) {
        size_t k = below(nkept), len = kept_len[k], edits = 1 + below(4);
        memcpy(buf, kept[k], len);
        for (size_t e = 0; e < edits; e++)
            len = edit(buf, len, REPLAY_MAX_INPUT);
        LLVMFuzzerTestOneInput(buf, len);
    }
}

int main(int argc, char **argv)
{
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    int files = 0, bad = 0, first = 1;
    long mutations = 0;
    if (buf == NULL)
        return 1;
    while (first + 1 < argc && strncmp(argv[first], "--", 2) == 0) {
        if (strcmp(argv[first], "--mutate") == 0)
            mutations = strtol(argv[first + 1], NULL, 10);
        else if (strcmp(argv[first], "--seed") == 0)
            rng_state = strtoull(argv[first + 1], NULL, 10) | 1;
        first += 2;
    }
    for (int i = first; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        if (d == NULL) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            bad++;
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            bad += replay_file(path, buf);
            files++;
        }
        closedir(d);
    }
    mutate(mutations, buf);
    free(buf);
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    printf("replayed %d inputs, then %ld mutated ones\n", files, mutations);
    /* An empty corpus proves nothing: that is a failure, not a pass. */
    return bad == 0 && files > 0 ? 0 : 1;
}
