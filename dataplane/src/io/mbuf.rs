//! DPDK mbufs are packet buffers for the pipeline.

use dpdk_bindings::Mbuf;

use crate::buf::PacketBuf;

impl PacketBuf for Mbuf {
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    fn len(&self) -> usize {
        Mbuf::len(self)
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::prepend(self, n)
    }

    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }

    fn trim(&mut self, n: usize) -> bool {
        Mbuf::trim(self, n)
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::append(self, n)
    }

    fn truncate(&mut self, len: usize) {
        Mbuf::truncate(self, len)
    }
}
