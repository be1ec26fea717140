/* SPDX-License-Identifier: Apache-2.0
 *
 * C shim over DPDK 22.11's static inline functions and macros, which bindgen cannot bind
 * (DPDK-NOTES item 1). bindgen reads this header too, so the Rust declarations of the m6_*
 * functions always match their definitions in shim.c.
 *
 * Rule: one shim call per burst or per slow-path operation. Per-packet field access (mtod,
 * lengths, headroom) is done in Rust over bindgen's struct rte_mbuf layout.
 */
#ifndef M6_SHIM_H
#define M6_SHIM_H

#include <stdint.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP: built from RTE_BIT64(), which bindgen
 * cannot evaluate. */
extern const uint64_t m6_rss_hf_default;

/* rte_errno of the calling thread (a per-lcore TLS variable behind a macro). */
int m6_errno(void);
/* rte_lcore_id() of the calling thread; LCORE_ID_ANY for threads that are not lcores. */
unsigned int m6_lcore_id(void);

uint16_t m6_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t m6_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *m6_pktmbuf_alloc(struct rte_mempool *mp);
int m6_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void m6_pktmbuf_free(struct rte_mbuf *m);
uint16_t m6_pktmbuf_data_room_size(struct rte_mempool *mp);

/* Moves the objects in the calling lcore's cache of mp back to the common pool. */
void m6_mempool_flush_local_cache(struct rte_mempool *mp);

/*
 * Returns 1 when every object of mp is back in its common pool, so no thread can still be
 * inside a put to it and rte_mempool_free() is safe; 0 otherwise. Flushes the calling
 * lcore's own cache first (only the owning thread may touch a cache), and counts objects
 * sitting in any other lcore's cache as not returned.
 */
int m6_mempool_release_ready(struct rte_mempool *mp);

/* rte_ring_enqueue_burst / rte_ring_dequeue_burst / rte_ring_count over mbuf pointers (the
 * ring's own sync mode, chosen at creation, applies). */
unsigned int m6_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned int n);
unsigned int m6_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned int n);
unsigned int m6_ring_count(const struct rte_ring *r);

#endif /* M6_SHIM_H */
