/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mp_perf: DPDK's side of the IPC comparison. Measures DPDK 22.11's multi-process messaging
 * (rte_mp_request_sync, rte_mp_sendmsg) between one primary and one secondary, the way shoal's
 * mp_perf measures its own.
 *
 *   mp_perf [EAL options] -- [-n REQUESTS=10000] [-w WARMUP=1000] [-t SECONDS=1] [-T TIMEOUT=120]
 *           [-c CASE_SUFFIX]
 *
 * Start the primary first, then the secondary (--proc-type=secondary, same --file-prefix). The
 * secondary drives the run:
 *   1. WARMUP, then REQUESTS timed rte_mp_request_sync("perf_ping") to the primary, whose action
 *      replies at once;                                    -> "request_sync secondary->primary"
 *   2. rte_mp_sendmsg("perf_msg") for SECONDS; the primary's action counts them, and a final
 *      sync request "perf_stats" (handled after every message before it: one socket, in order)
 *      returns the count and the receive times of the first and last;
 *                                                          -> "sendmsg secondary->primary"
 *   3. a "perf_p2s" message wakes the primary's main thread, which does 1 and 2 the other way
 *      (requests from the primary go to every secondary: here the one);
 *                                                          -> "request_sync primary->secondary",
 *                                                             "sendmsg primary->secondary"
 *   4. the primary sends "perf_done"; both exit.
 * Each process prints its own results as JSON lines on stdout. Latencies are CLOCK_MONOTONIC
 * around each call (µs); throughput is messages per second as the receiver saw them.
 * Every wait is bounded: TIMEOUT seconds in all (alarm), 5 s per request. After perf_done the
 * primary waits up to 5 s more for SIGINT, so that it outlives the secondary's clean-up; SIGINT
 * or SIGTERM also ends any other wait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_string_fns.h>

#define ACT_PING "perf_ping"
#define ACT_MSG "perf_msg"
#define ACT_STATS "perf_stats"
#define ACT_P2S "perf_p2s"
#define ACT_DONE "perf_done"

/* What the receiver of a stream of perf_msg saw; written and read only by the IPC thread. */
struct recv_stats {
	uint64_t count;
	uint64_t first_ns;
	uint64_t last_ns;
};

static struct recv_stats rx;
static sem_t go; /* primary: perf_p2s arrived; secondary: perf_done arrived; or a signal */
static volatile sig_atomic_t stop_requested; /* SIGINT/SIGTERM seen */
static unsigned long n_requests = 10000, n_warmup = 1000;
static double stream_secs = 1.0;
static unsigned timeout_secs = 120;
static const char *case_suffix = "";

static uint64_t
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void
msg_init(struct rte_mp_msg *m, const char *name, const void *param, int len)
{
	memset(m, 0, sizeof(*m));
	rte_strlcpy(m->name, name, sizeof(m->name));
	if (len > 0) {
		memcpy(m->param, param, (size_t)len);
		m->len_param = len;
	}
}

/* perf_ping: echo the request's parameter straight back. */
static int
on_ping(const struct rte_mp_msg *msg, const void *peer)
{
	struct rte_mp_msg reply;

	msg_init(&reply, msg->name, msg->param, msg->len_param);
	return rte_mp_reply(&reply, peer);
}

/* perf_msg: count it and note when. */
static int
on_msg(const struct rte_mp_msg *msg, const void *peer)
{
	uint64_t t = now_ns();

	(void)msg;
	(void)peer;
	if (rx.count++ == 0)
		rx.first_ns = t;
	rx.last_ns = t;
	return 0;
}

/* perf_stats: reply with what perf_msg counted so far, and start counting afresh. */
static int
on_stats(const struct rte_mp_msg *msg, const void *peer)
{
	struct rte_mp_msg reply;

	msg_init(&reply, msg->name, &rx, sizeof(rx));
	memset(&rx, 0, sizeof(rx));
	return rte_mp_reply(&reply, peer);
}

/* perf_p2s (primary) / perf_done (secondary): wake the main thread. */
static int
on_wake(const struct rte_mp_msg *msg, const void *peer)
{
	(void)msg;
	(void)peer;
	sem_post(&go);
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* One synchronous request; the reply must come from exactly one peer. */
static int
request(const char *name, const void *param, int len, struct rte_mp_msg *out)
{
	struct rte_mp_msg req;
	struct rte_mp_reply reply;
	const struct timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	int ok;

	msg_init(&req, name, param, len);
	memset(&reply, 0, sizeof(reply));
	if (rte_mp_request_sync(&req, &reply, &ts) != 0) {
		fprintf(stderr, "mp_perf: request %s failed: %s\n", name, rte_strerror(rte_errno));
		return -1;
	}
	ok = reply.nb_received == 1;
	if (ok && out != NULL)
		*out = reply.msgs[0];
	if (!ok)
		fprintf(stderr, "mp_perf: request %s: %d replies of %d sent\n", name,
			reply.nb_received, reply.nb_sent);
	free(reply.msgs);
	return ok ? 0 : -1;
}

/* Warm-up, then n_requests timed perf_ping requests; prints one JSON line. */
static int
latency_case(const char *direction)
{
	uint64_t *lat = calloc(n_requests, sizeof(*lat));
	uint64_t seq = 0, sum = 0;
	unsigned long i, i99;
	int rc = -1;

	if (lat == NULL)
		return -1;
	for (i = 0; i < n_warmup && !stop_requested; i++, seq++)
		if (request(ACT_PING, &seq, sizeof(seq), NULL) != 0)
			goto out;
	for (i = 0; i < n_requests; i++, seq++) {
		if (stop_requested)
			goto out;
		uint64_t t0 = now_ns();

		if (request(ACT_PING, &seq, sizeof(seq), NULL) != 0)
			goto out;
		lat[i] = now_ns() - t0;
		sum += lat[i];
	}
	qsort(lat, n_requests, sizeof(*lat), cmp_u64);
	i99 = (n_requests * 99 + 99) / 100; /* ceil(0.99 n), 1-based */
	printf("{\"side\":\"dpdk\",\"case\":\"request_sync %s%s\",\"unit\":\"us\","
	       "\"p50\":%.2f,\"p99\":%.2f,\"mean\":%.2f,\"min\":%.2f,\"max\":%.2f,\"n\":%lu}\n",
	       direction, case_suffix, lat[(n_requests - 1) / 2] / 1e3, lat[i99 - 1] / 1e3,
	       (double)sum / n_requests / 1e3, lat[0] / 1e3, lat[n_requests - 1] / 1e3,
	       n_requests);
	fflush(stdout);
	rc = 0;
out:
	free(lat);
	return rc;
}

/* perf_msg for stream_secs, then ask the receiver what it counted; prints one JSON line. */
static int
throughput_case(const char *direction)
{
	struct rte_mp_msg m, got;
	struct recv_stats st;
	uint64_t sent = 0, t0 = now_ns(), limit = (uint64_t)(stream_secs * 1e9);
	double rate;

	do {
		/* a few per clock reading; sendmsg blocks when the receiver's queue is full */
		for (int k = 0; k < 16; k++, sent++) {
			msg_init(&m, ACT_MSG, &sent, sizeof(sent));
			if (rte_mp_sendmsg(&m) != 0) {
				fprintf(stderr, "mp_perf: sendmsg failed: %s\n", rte_strerror(rte_errno));
				return -1;
			}
		}
	} while (now_ns() - t0 < limit && !stop_requested);
	if (stop_requested)
		return -1;
	if (request(ACT_STATS, NULL, 0, &got) != 0 || got.len_param != (int)sizeof(st))
		return -1;
	memcpy(&st, got.param, sizeof(st));
	rate = st.count > 1 && st.last_ns > st.first_ns ?
		(double)(st.count - 1) * 1e9 / (double)(st.last_ns - st.first_ns) : 0.0;
	printf("{\"side\":\"dpdk\",\"case\":\"sendmsg %s%s\",\"unit\":\"msg/s\",\"rate\":%.0f,"
	       "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 "}\n",
	       direction, case_suffix, rate, sent, st.count);
	fflush(stdout);
	return st.count == sent ? 0 : -1;
}

static int
wait_go(unsigned secs)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += secs;
	while (sem_timedwait(&go, &dl) != 0) {
		if (errno != EINTR) {
			fprintf(stderr, "mp_perf: gave up waiting after %u s\n", secs);
			return -1;
		}
	}
	return 0;
}

static int
parse_app_args(int argc, char **argv)
{
	int opt;
	char *end;

	while ((opt = getopt(argc, argv, "n:w:t:T:c:")) != -1) {
		errno = 0;
		switch (opt) {
		case 'n':
			n_requests = strtoul(optarg, &end, 10);
			if (errno || *end || n_requests < 1 || n_requests > 10000000)
				return -1;
			break;
		case 'w':
			n_warmup = strtoul(optarg, &end, 10);
			if (errno || *end || n_warmup > 10000000)
				return -1;
			break;
		case 't':
			stream_secs = strtod(optarg, &end);
			if (errno || *end || !(stream_secs > 0 && stream_secs <= 60))
				return -1;
			break;
		case 'T':
			timeout_secs = (unsigned)strtoul(optarg, &end, 10);
			if (errno || *end || timeout_secs < 1 || timeout_secs > 3600)
				return -1;
			break;
		case 'c':
			case_suffix = optarg;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/* SIGINT/SIGTERM: stop the loops and wake the main thread (sem_post is async-signal-safe). */
static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	sem_post(&go);
}

static int
run_primary(void)
{
	struct rte_mp_msg m;
	int rc;

	if (wait_go(timeout_secs) != 0)
		return -1;
	if (latency_case("primary->secondary") != 0 || throughput_case("primary->secondary") != 0)
		return -1;
	msg_init(&m, ACT_DONE, NULL, 0);
	rc = rte_mp_sendmsg(&m);
	/* Outlive the secondary, whose own clean-up still talks to us: wait for SIGINT (sent
	 * once it has exited) or 5 s. */
	wait_go(5);
	return rc;
}

static int
run_secondary(void)
{
	struct rte_mp_msg m;

	if (latency_case("secondary->primary") != 0 || throughput_case("secondary->primary") != 0)
		return -1;
	msg_init(&m, ACT_P2S, NULL, 0);
	if (rte_mp_sendmsg(&m) != 0)
		return -1;
	return wait_go(timeout_secs);
}

int
main(int argc, char **argv)
{
	int ret = rte_eal_init(argc, argv);
	int primary;

	if (ret < 0) {
		fprintf(stderr, "mp_perf: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (parse_app_args(argc - ret, argv + ret) != 0) {
		fprintf(stderr, "usage: %s [EAL options] -- [-n REQUESTS] [-w WARMUP] [-t SECONDS]"
			" [-T TIMEOUT] [-c CASE_SUFFIX]\n", argv[0]);
		rte_eal_cleanup();
		return 2;
	}
	alarm(timeout_secs + 10); /* last resort: SIGALRM ends the process */
	sem_init(&go, 0, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	primary = rte_eal_process_type() == RTE_PROC_PRIMARY;
	if (rte_mp_action_register(ACT_PING, on_ping) != 0 ||
	    rte_mp_action_register(ACT_MSG, on_msg) != 0 ||
	    rte_mp_action_register(ACT_STATS, on_stats) != 0 ||
	    rte_mp_action_register(primary ? ACT_P2S : ACT_DONE, on_wake) != 0) {
		fprintf(stderr, "mp_perf: cannot register actions: %s\n", rte_strerror(rte_errno));
		rte_eal_cleanup();
		return 1;
	}
	fprintf(stderr, "mp_perf: %s ready on lcore %u\n", primary ? "primary" : "secondary",
		rte_lcore_id());
	ret = primary ? run_primary() : run_secondary();
	rte_eal_cleanup();
	return ret == 0 ? 0 : 1;
}
