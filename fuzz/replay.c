/*
 * replay.c - runs a fuzz target over every file of the corpus directories it is given, so the
 * normal test run (and its sanitizer and valgrind runs) replays what fuzzing found. Built with
 * each target when fuzzing is off; libFuzzer provides main() when it is on.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1u << 20)

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
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    int files = 0, bad = 0;
    if (buf == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
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
    free(buf);
    printf("replayed %d inputs\n", files);
    /* An empty corpus proves nothing: that is a failure, not a pass. */
    return bad == 0 && files > 0 ? 0 : 1;
}
