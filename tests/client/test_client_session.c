/* Sessions of the client library (client/client_session.c): leases of lane runs
 * through lock files, without a cluster. Every test runs in a fresh session
 * directory (BFTKV_RUNTIME_DIR under a mkdtemp directory) on a config built in
 * code: group 3, client_lanes 8, client 0 with made-up public keys.
 *
 * What is checked: leases of one client id never overlap (first free run of the
 * wanted length, else the longest free run, else BFTKV_E_SESSION_BUSY); the
 * lanes of a process killed with SIGKILL are free at once; a lease waits for a
 * lane when asked; a later lessee's timestamp floor covers what the earlier one
 * recorded; another cluster's client (other keys) does not share the files; an
 * unsafe session directory is refused. The process stays single-threaded, so the
 * forked children may lease freely.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "client/client_internal.h"
#include "cluster/cluster.h"

static char g_tmp[64];
static char g_run[128];
static struct bftkv_config *g_cfg;

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bftkv-session-test-XXXXXX");
    if (mkdtemp(g_tmp) == NULL) {
        return -1;
    }
    snprintf(g_run, sizeof g_run, "%s/run", g_tmp);
    setenv("BFTKV_RUNTIME_DIR", g_run, 1);
    g_cfg = bftkv_config_new();
    if (g_cfg == NULL) {
        return -1;
    }
    g_cfg->group = 3;
    g_cfg->client_lanes = 8;
    g_cfg->clients = 2;
    for (uint16_t id = 0; id < 2; id++) {
        g_cfg->client[id].allowed = true;
        memset(g_cfg->client[id].x25519, 0x10 + id, sizeof g_cfg->client[id].x25519);
        memset(g_cfg->client[id].ed25519, 0x20 + id, sizeof g_cfg->client[id].ed25519);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bftkv_config_free(g_cfg);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static int lease(struct client_lease *ls, uint16_t id, uint16_t lanes, uint16_t first, uint16_t count, int wait_ms)
{
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.lanes = lanes;
    opt.lane_first = first;
    opt.lane_count = count;
    opt.session_wait_ms = wait_ms;
    char err[512] = "";
    int rc = client_session_lease(ls, g_cfg, id, &opt, err, sizeof err);
    if (rc != 0) {
        printf("# lease: %s (%s)\n", bftkv_errname(rc), err);
    }
    return rc;
}

static void test_leases_are_disjoint(void **state)
{
    (void)state;
    struct client_lease a, b, c, d, e;
    assert_int_equal(lease(&a, 0, 3, 0, 0, 0), 0);
    assert_int_equal(a.base, 0);
    assert_int_equal(a.count, 3);
    assert_int_equal(lease(&b, 0, 3, 0, 0, 0), 0);
    assert_int_equal(b.base, 3);
    assert_int_equal(b.count, 3);
    /* all 8 wanted, lanes 6..7 left: the longest free run */
    assert_int_equal(lease(&c, 0, 0, 0, 0, 0), 0);
    assert_int_equal(c.base, 6);
    assert_int_equal(c.count, 2);
    assert_int_equal(lease(&d, 0, 1, 0, 0, 0), BFTKV_E_SESSION_BUSY);
    /* b's lanes come back; a run of 4 is not there, the longest (3) is */
    client_session_release(&b, 0);
    assert_int_equal(lease(&e, 0, 4, 0, 0, 0), 0);
    assert_int_equal(e.base, 3);
    assert_int_equal(e.count, 3);
    /* another client id, and the same id of another cluster (other keys), have
     * files of their own */
    assert_int_equal(lease(&d, 1, 8, 0, 0, 0), 0);
    assert_int_equal(d.count, 8);
    client_session_release(&d, 0);
    uint8_t saved = g_cfg->client[0].x25519[0];
    g_cfg->client[0].x25519[0] ^= 0xff;
    assert_int_equal(lease(&d, 0, 8, 0, 0, 0), 0);
    assert_int_equal(d.count, 8);
    client_session_release(&d, 0);
    g_cfg->client[0].x25519[0] = saved;
    client_session_release(&a, 0);
    client_session_release(&c, 0);
    client_session_release(&e, 0);
    assert_int_equal(lease(&a, 0, 0, 0, 0, 0), 0);
    assert_int_equal(a.count, 8);
    client_session_release(&a, 0);
}

static void test_lane_ranges(void **state)
{
    (void)state;
    struct client_lease a, b;
    assert_int_equal(lease(&a, 0, 0, 4, 4, 0), 0);
    assert_int_equal(a.base, 4);
    assert_int_equal(a.count, 4);
    assert_int_equal(lease(&b, 0, 1, 4, 0, 0), BFTKV_E_SESSION_BUSY); /* 4..7: all taken */
    assert_int_equal(lease(&b, 0, 0, 0, 4, 0), 0);                    /* 0..3 is another range */
    assert_int_equal(b.base, 0);
    assert_int_equal(b.count, 4);
    client_session_release(&a, 0);
    client_session_release(&b, 0);
    assert_int_equal(lease(&a, 0, 0, 6, 4, 0), BFTKV_E_INVAL); /* past client_lanes */
    assert_int_equal(lease(&a, 0, 0, 8, 0, 0), BFTKV_E_INVAL);
    assert_int_equal(lease(&a, 0, 5, 0, 4, 0), BFTKV_E_INVAL); /* more lanes than the range */
}

/* A child that leases every lane, publishes first_ts, says so on fd, and waits
 * to be killed (or, with hold_ms > 0, exits after that long). */
static pid_t child_holding_all(uint64_t first_ts, int hold_ms)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct client_lease ls;
        if (lease(&ls, 0, 0, 0, 0, 0) != 0 || ls.count != 8) {
            _exit(3);
        }
        struct sockaddr_storage self;
        memset(&self, 0, sizeof self);
        self.ss_family = AF_INET;
        ls.first_ts = first_ts;
        client_session_publish(&ls, &self);
        char ok = 1;
        if (write(p[1], &ok, 1) != 1) {
            _exit(4);
        }
        if (hold_ms > 0) {
            usleep((useconds_t)hold_ms * 1000u);
            _exit(0); /* the kernel releases the locks */
        }
        for (;;) {
            pause();
        }
    }
    close(p[1]);
    char ok = 0;
    assert_int_equal(read(p[0], &ok, 1), 1);
    close(p[0]);
    return pid;
}

static void test_dead_process_lease_is_freed(void **state)
{
    (void)state;
    pid_t pid = child_holding_all(1000, 0);
    struct client_lease ls;
    assert_int_equal(lease(&ls, 0, 1, 0, 0, 0), BFTKV_E_SESSION_BUSY);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(lease(&ls, 0, 0, 0, 0, 0), 0);
    assert_int_equal(ls.base, 0);
    assert_int_equal(ls.count, 8);
    /* the killed holder recorded only its first timestamp: the floor covers it */
    assert_true(ls.ts_floor >= 1000);
    /* a clean release records the last timestamp sent */
    ls.first_ts = 5000;
    struct sockaddr_storage self;
    memset(&self, 0, sizeof self);
    self.ss_family = AF_INET;
    client_session_publish(&ls, &self);
    client_session_release(&ls, 5007);
    assert_int_equal(lease(&ls, 0, 2, 0, 0, 0), 0);
    assert_int_equal(ls.ts_floor, 5007);
    client_session_release(&ls, 0);
}

static void test_lease_waits_for_a_lane(void **state)
{
    (void)state;
    pid_t pid = child_holding_all(1, 300);
    struct client_lease ls;
    assert_int_equal(lease(&ls, 0, 1, 0, 0, 20000), 0); /* the child exits after 300 ms */
    assert_int_equal(ls.count, 1);
    client_session_release(&ls, 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_owner_address(void **state)
{
    (void)state;
    struct client_lease ls;
    assert_int_equal(lease(&ls, 0, 2, 0, 0, 0), 0);
    struct sockaddr_storage self, got;
    socklen_t glen = 0;
    assert_int_equal(client_session_owner(&ls, ls.base, &got, &glen), BFTKV_E_NOT_FOUND); /* not published */
    memset(&self, 0, sizeof self);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&self;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(4242);
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ls.first_ts = 77;
    client_session_publish(&ls, &self);
    assert_int_equal(client_session_owner(&ls, (uint16_t)(ls.base + 1u), &got, &glen), 0);
    assert_int_equal(glen, sizeof(struct sockaddr_in));
    assert_int_equal(((struct sockaddr_in *)&got)->sin_port, htons(4242));
    assert_int_equal(((struct sockaddr_in *)&got)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    uint16_t base = ls.base;
    client_session_release(&ls, 80);
    assert_int_equal(client_session_owner(&ls, base, &got, &glen), BFTKV_E_NOT_FOUND); /* released */
}

static void test_unsafe_directory_refused(void **state)
{
    (void)state;
    char open_dir[128];
    snprintf(open_dir, sizeof open_dir, "%s/open", g_tmp);
    assert_int_equal(mkdir(open_dir, 0700), 0);
    assert_int_equal(chmod(open_dir, 0777), 0);
    setenv("BFTKV_RUNTIME_DIR", open_dir, 1);
    struct client_lease ls;
    assert_int_equal(lease(&ls, 0, 1, 0, 0, 0), BFTKV_E_IO);
    setenv("BFTKV_RUNTIME_DIR", g_run, 1);
    char dir[256];
    assert_int_equal(client_session_dir(dir, sizeof dir, NULL, 0), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leases_are_disjoint),
        cmocka_unit_test(test_lane_ranges),
        cmocka_unit_test(test_dead_process_lease_is_freed),
        cmocka_unit_test(test_lease_waits_for_a_lane),
        cmocka_unit_test(test_owner_address),
        cmocka_unit_test(test_unsafe_directory_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
