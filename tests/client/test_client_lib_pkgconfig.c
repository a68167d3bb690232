/* A program built the way an application builds against an installed libbftkv:
 * only <bftkv/client.h>, compiled and linked with `pkg-config --cflags --libs
 * bftkv` (test_client_lib_cli.sh does that after `cmake --install`).
 *
 *   client_lib_pkgconfig CONFIG
 *
 * Puts a key, reads it back synchronously and asynchronously, deletes it, and
 * exits 0 when every result is the expected one.
 */
#include <bftkv/client.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_status = 1;
static int g_done;

static void on_get(void *arg, int status, const void *val, size_t vlen)
{
    (void)arg;
    pthread_mutex_lock(&g_mu);
    g_status = status == 0 && vlen == 5 && memcmp(val, "world", 5) == 0 ? 0 : 1;
    g_done = 1;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: client_lib_pkgconfig CONFIG\n");
        return 2;
    }
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    struct bftkv_client *c;
    int rc = bftkv_client_open(argv[1], 1, &opt, &c);
    if (rc != 0) {
        fprintf(stderr, "open: %s: %s\n", bftkv_strerror(rc), err);
        return 1;
    }
    char buf[16];
    size_t vlen = 0;
    int ok = bftkv_put(c, "hello", 5, "world", 5) == 0 && bftkv_get(c, "hello", 5, buf, sizeof buf, &vlen) == 0
             && vlen == 5 && memcmp(buf, "world", 5) == 0;
    ok = ok && bftkv_submit(c, BFTKV_OP_GET, "hello", 5, NULL, 0, on_get, NULL) == 0;
    pthread_mutex_lock(&g_mu);
    while (ok && !g_done) {
        pthread_cond_wait(&g_cv, &g_mu); /* the handle's timeout bounds this */
    }
    pthread_mutex_unlock(&g_mu);
    ok = ok && g_status == 0 && bftkv_del(c, "hello", 5) == 0
         && bftkv_get(c, "hello", 5, buf, sizeof buf, &vlen) == BFTKV_E_NOT_FOUND;
    bftkv_client_close(c);
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
