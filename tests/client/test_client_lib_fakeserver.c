/* client_lib_fakeserver: the fake cluster of test_client_lib_fake.h as a process,
 * for the CLI test (test_client_lib_cli.sh), which needs a cluster to talk to
 * without depending on the server runtime.
 *
 *   client_lib_fakeserver [--n N] [--seconds S]
 *
 * Builds an n-replica cluster (n = 4, f = 1 by default; --n 1 gives f = 0) in a
 * fresh /tmp directory, prints the config file's path on one line of stdout, and
 * pumps until SIGTERM or SIGINT, or by itself after S seconds (default 60); then
 * removes the directory and exits 0. Listens on 127.0.0.1 only.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "tests/client/test_client_lib_fake.h"

int main(int argc, char **argv)
{
    long n = 4, seconds = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0) {
            n = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = strtol(argv[i + 1], NULL, 10);
        }
    }
    if (n < 1 || n > (long)FAKE_REPLICAS_MAX || seconds < 1 || seconds > 3600) {
        fprintf(stderr, "usage: client_lib_fakeserver [--n 1..%u] [--seconds 1..3600]\n", FAKE_REPLICAS_MAX);
        return 2;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* taken below with sigtimedwait */
    if (sodium_init() < 0) {
        return 1;
    }
    static struct fake_cluster fc;
    if (fake_create(&fc, (uint16_t)n, (uint16_t)((n - 1) / 3), 4,
                    "client_lanes 8\nrequest_timeout_ms 2000\nclient_timeout_ms 5000\n")
        != 0) {
        fake_destroy(&fc);
        return 1;
    }
    fake_start(&fc);
    printf("%s\n", fc.conf);
    fflush(stdout);
    struct timespec ts = { .tv_sec = seconds, .tv_nsec = 0 };
    (void)sigtimedwait(&stop, NULL, &ts);
    fake_destroy(&fc);
    return 0;
}
