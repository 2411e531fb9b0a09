/*
 * mhd_bare.c - the yardstick for the HTTP benchmark: libmicrohttpd alone, with the same TLS
 * setup and thread pool as custodia, answering every request with a fixed 16-byte JSON body.
 * What custodia adds on top (routing, limits, headers, request ids, metrics, access log, the
 * health check) is the difference between the two figures.
 *
 * usage: mhd_bare CERT KEY PORT SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

static char *slurp(const char *path)
{
    static char bufs[2][16384];
    static int next;
    char *out = bufs[next++ & 1];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, sizeof(bufs[0]) - 1, f) : 0;
    if (f)
        fclose(f);
    out[n] = '\0';
    return out;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **ctx)
{
    static int seen;
    static const char body[] = "{\"status\":\"ok\"}\n";
    (void)cls, (void)url, (void)method, (void)version, (void)data, (void)size;
    if (*ctx == NULL) {
        *ctx = &seen; /* queue on the second call, as custodia does */
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    char *cert = slurp(argv[1]), *key = slurp(argv[2]);
    long port = strtol(argv[3], NULL, 10), secs = strtol(argv[4], NULL, 10);
    if (port < 1 || port > 65535 || secs < 1 || secs > 3600)
        return 2;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TLS, (uint16_t)port, NULL, NULL, answer, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(threads > 0 ? threads : 1),
        MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
    if (d == NULL)
        return 1;
    sleep((unsigned)secs);
    MHD_stop_daemon(d);
    return 0;
}
