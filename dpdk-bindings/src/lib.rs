//! Safe API over DPDK. Filled in by the foundation work.
