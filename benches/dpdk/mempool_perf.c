/* mempool_perf.c: DPDK's side of benches/src/bin/mempool_perf.rs, with a time per case that
 * can be chosen and only the cases asked for, so that a comparison does not take the hour
 * dpdk-test's mempool_perf_autotest takes. It measures what that test measures, the same way:
 * each lcore gets n_keep objects by bulks of n_get_bulk with rte_mempool_generic_get and its
 * default cache, puts them back by bulks of n_put_bulk with rte_mempool_generic_put, 65536
 * objects per loop; pools of lcores * (512 + 512) - 1 objects of 2048 bytes with a 512-object
 * cache or none, made with rte_mempool_create (default ops, ring_mp_mc). It prints
 * dpdk-test's line format.
 *
 * Build: cc -O3 -o mempool_perf_dpdk mempool_perf.c $(pkg-config --cflags --libs libdpdk)
 * Run:   mempool_perf_dpdk -l 0-1 --no-pci --file-prefix X -- SECS CACHE CORES GET PUT KEEP [...]
 *        (the last five repeated for more cases)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#define N 65536
#define MAX_KEEP 512
#define ELT_SIZE 2048

static volatile uint32_t synchro;
static unsigned n_get, n_put, n_keep;
static double secs;
static uint64_t counts[RTE_MAX_LCORE];
static double elapsed[RTE_MAX_LCORE];

static void obj_init(struct rte_mempool *mp, void *arg, void *obj, unsigned i)
{
	(void)arg;
	memset(obj, 0, mp->elt_size);
	*(uint32_t *)obj = i;
}

static int loop(struct rte_mempool *mp, struct rte_mempool_cache *cache)
{
	void *objs[MAX_KEEP] __rte_cache_aligned;
	unsigned i, idx;

	for (i = 0; i < N / n_keep; i++) {
		for (idx = 0; idx < n_keep; idx += n_get)
			if (rte_mempool_generic_get(mp, &objs[idx], n_get, cache) < 0)
				return -1;
		for (idx = 0; idx < n_keep; idx += n_put)
			rte_mempool_generic_put(mp, &objs[idx], n_put, cache);
	}
	return 0;
}

static int per_lcore(void *arg)
{
	struct rte_mempool *mp = arg;
	unsigned lcore = rte_lcore_id();
	struct rte_mempool_cache *cache = rte_mempool_default_cache(mp, lcore);
	uint64_t hz = rte_get_timer_hz(), start, now;
	uint64_t count = 0;

	while (synchro == 0)
		rte_pause();
	start = rte_get_timer_cycles();
	do {
		if (loop(mp, cache) < 0) {
			printf("get failed\n");
			return -1;
		}
		count += N;
		now = rte_get_timer_cycles();
	} while ((double)(now - start) / hz < secs);
	counts[lcore] = count;
	elapsed[lcore] = (double)(now - start) / hz;
	return 0;
}

int main(int argc, char **argv)
{
	int used = rte_eal_init(argc, argv);
	if (used < 0) {
		fprintf(stderr, "EAL init failed\n");
		return 1;
	}
	argc -= used;
	argv += used;
	if (argc < 7 || (argc - 2) % 5 != 0) {
		fprintf(stderr, "usage: ... -- SECS CACHE CORES GET PUT KEEP [CACHE CORES GET PUT KEEP ...]\n");
		return 2;
	}
	secs = atof(argv[1]);
	unsigned size = rte_lcore_count() * (MAX_KEEP + RTE_MEMPOOL_CACHE_MAX_SIZE) - 1;
	struct rte_mempool *pools[2];
	pools[0] = rte_mempool_create("perf_nocache", size, ELT_SIZE, 0, 0, NULL, NULL, obj_init,
				      NULL, SOCKET_ID_ANY, 0);
	pools[1] = rte_mempool_create("perf_cache", size, ELT_SIZE, RTE_MEMPOOL_CACHE_MAX_SIZE, 0,
				      NULL, NULL, obj_init, NULL, SOCKET_ID_ANY, 0);
	if (!pools[0] || !pools[1]) {
		fprintf(stderr, "mempool creation failed\n");
		return 1;
	}
	for (int a = 2; a + 4 < argc; a += 5) {
		unsigned cache = atoi(argv[a]), cores = atoi(argv[a + 1]);
		struct rte_mempool *mp = pools[cache ? 1 : 0];
		unsigned lcore, left = cores;
		n_get = atoi(argv[a + 2]);
		n_put = atoi(argv[a + 3]);
		n_keep = atoi(argv[a + 4]);
		if (rte_mempool_avail_count(mp) != size) {
			printf("mempool is not full\n");
			return 1;
		}
		memset(counts, 0, sizeof(counts));
		synchro = 0;
		RTE_LCORE_FOREACH_WORKER(lcore) {
			if (left == 1)
				break;
			left--;
			rte_eal_remote_launch(per_lcore, mp, lcore);
		}
		synchro = 1;
		int ret = per_lcore(mp);
		rte_eal_mp_wait_lcore();
		if (ret < 0)
			return 1;
		double rate = 0;
		for (lcore = 0; lcore < RTE_MAX_LCORE; lcore++)
			if (counts[lcore])
				rate += counts[lcore] / elapsed[lcore];
		printf("mempool_autotest cache=%u cores=%u n_get_bulk=%u n_put_bulk=%u n_keep=%u "
		       "constant_n=0 rate_persec=%" PRIu64 "\n",
		       cache ? RTE_MEMPOOL_CACHE_MAX_SIZE : 0, cores, n_get, n_put, n_keep,
		       (uint64_t)rate);
		fflush(stdout);
	}
	rte_mempool_free(pools[0]);
	rte_mempool_free(pools[1]);
	rte_eal_cleanup();
	return 0;
}
