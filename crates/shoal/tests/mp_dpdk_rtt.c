/* rte_mp_request_sync round trip, both directions: DPDK's side of shoal's
 * sync_round_trip_latency test (crates/shoal/tests/mp.rs), to run alternately with it.
 * Build (Debian's DPDK 22.11: apt-get install dpdk-dev libdpdk-dev):
 *   cc -O2 -o mp_dpdk_rtt mp_dpdk_rtt.c $(pkg-config --cflags --libs libdpdk)
 * Run the primary, wait for "primary ready", then the secondary (same prefix); each prints
 * "dpdk <direction> p50 <us> p99 <us>" for 20000 requests after 2000 warm-up ones:
 *   EAL="--file-prefix rtt -m 64 --no-pci --log-level=lib.eal:error"
 *   taskset -c 0 ./mp_dpdk_rtt -l 0 $EAL --proc-type=primary -- 20000 &
 *   taskset -c 1 ./mp_dpdk_rtt -l 1 $EAL --proc-type=secondary -- 20000
 * (taskset -c 0 and -l 0 for the secondary measures both on one CPU.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <rte_eal.h>
#include <rte_string_fns.h>

static volatile int s_done, quit;

static int echo(const struct rte_mp_msg *msg, const void *peer)
{
	struct rte_mp_msg r;
	memset(&r, 0, sizeof(r));
	strlcpy(r.name, msg->name, sizeof(r.name));
	memcpy(r.param, msg->param, msg->len_param);
	r.len_param = msg->len_param;
	return rte_mp_reply(&r, peer);
}
static int on_done(const struct rte_mp_msg *m, const void *p) { (void)m; (void)p; s_done = 1; return 0; }
static int on_quit(const struct rte_mp_msg *m, const void *p) { (void)m; (void)p; quit = 1; return 0; }

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void measure(const char *label, int n)
{
	struct rte_mp_msg req;
	struct rte_mp_reply reply;
	struct timespec ts = { 5, 0 };
	double *v = malloc(n * sizeof(*v));
	memset(&req, 0, sizeof(req));
	strlcpy(req.name, "rtt", sizeof(req.name));
	memcpy(req.param, "0123456789abcdef", 16);
	req.len_param = 16;
	for (int i = -n / 10; i < n; i++) {
		double t0 = now_us();
		if (rte_mp_request_sync(&req, &reply, &ts) != 0 || reply.nb_received != 1) {
			fprintf(stderr, "request failed\n");
			exit(1);
		}
		double t1 = now_us();
		free(reply.msgs);
		if (i >= 0)
			v[i] = t1 - t0;
	}
	qsort(v, n, sizeof(*v), cmp);
	printf("%s p50 %.1f p99 %.1f\n", label, v[n / 2], v[n * 99 / 100]);
	fflush(stdout);
	free(v);
}

int main(int argc, char **argv)
{
	int ret = rte_eal_init(argc, argv);
	if (ret < 0)
		return 1;
	int n = argc - ret > 1 ? atoi(argv[ret + 1]) : 20000;
	struct rte_mp_msg m;
	memset(&m, 0, sizeof(m));
	rte_mp_action_register("rtt", echo);
	if (rte_eal_process_type() == RTE_PROC_PRIMARY) {
		rte_mp_action_register("s_done", on_done);
		printf("primary ready\n");
		fflush(stdout);
		for (int i = 0; !s_done && i < 600000; i++)
			usleep(100);
		measure("dpdk primary->secondary", n);
		strlcpy(m.name, "quit", sizeof(m.name));
		rte_mp_sendmsg(&m);
		usleep(100000);
	} else {
		rte_mp_action_register("quit", on_quit);
		measure("dpdk secondary->primary", n);
		strlcpy(m.name, "s_done", sizeof(m.name));
		rte_mp_sendmsg(&m);
		for (int i = 0; !quit && i < 600000; i++)
			usleep(100);
	}
	rte_eal_cleanup();
	return 0;
}
