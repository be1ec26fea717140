/* SPDX-License-Identifier: Apache-2.0 */
#include "shim.h"

const uint64_t m6_rss_hf_default = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;

int m6_errno(void)
{
	return rte_errno;
}

unsigned int m6_lcore_id(void)
{
	return rte_lcore_id();
}

uint16_t m6_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t m6_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *m6_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int m6_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void m6_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint16_t m6_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

void m6_mempool_flush_local_cache(struct rte_mempool *mp)
{
	/* NULL when the pool has no caches or the caller is not an lcore. */
	struct rte_mempool_cache *own = rte_mempool_default_cache(mp, rte_lcore_id());

	if (own != NULL)
		rte_mempool_cache_flush(own, mp);
}

int m6_mempool_release_ready(struct rte_mempool *mp)
{
	m6_mempool_flush_local_cache(mp);
	if (mp->cache_size != 0) {
		/*
		 * A put through a cache raises cache->len before it copies the object pointer in,
		 * so a non-empty cache may belong to a put still in progress: never free then.
		 */
		for (unsigned int i = 0; i < RTE_MAX_LCORE; i++)
			if (__atomic_load_n(&mp->local_cache[i].len, __ATOMIC_ACQUIRE) != 0)
				return 0;
	}
	/*
	 * A put to the common ring publishes its objects with the ring's tail store, its last
	 * write to pool memory; once every object is counted there, no put is in flight.
	 */
	/* rte_mempool_ops_get_count() is not exported by 22.11's shared library; this is its
	 * body, through the exported ops table. */
	int all_back = rte_mempool_get_ops(mp->ops_index)->get_count(mp) == mp->size;

	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return all_back;
}

unsigned int m6_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned int n)
{
	return rte_ring_enqueue_burst(r, (void *const *)pkts, n, NULL);
}

unsigned int m6_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned int n)
{
	return rte_ring_dequeue_burst(r, (void **)pkts, n, NULL);
}

unsigned int m6_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}
