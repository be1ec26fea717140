//! One writer, many readers: how the control thread publishes tables to the workers.
//!
//! Every table the workers read (neighbors, ISP state, and next the M6 contexts) has exactly
//! one writer, the dataplane's control thread, which runs the slow-path state machines and
//! owns the master copy. Each worker owns a [`Reader`]: a private *replica* of the table plus
//! the receiving end of a bounded queue of changes. The worker calls [`Reader::sync`] between
//! bursts; during a burst it reads its replica through a plain `&T`, so the hot path takes no
//! lock, runs no atomic read-modify-write and writes no cache line another core reads.
//!
//! The writer sends each change ([`Table::Op`]) to every reader. A reader that falls behind
//! (its queue is full) is not waited for and loses nothing: the writer stops sending it
//! changes, marks it for resynchronisation, and on a later [`Writer::flush`] sends it a whole
//! copy of the master table instead, after which changes flow again. The order of changes is
//! the writer's order on every reader, so every replica converges to the master.
//!
//! Why replicas and not an RCU-published pointer (both were considered; see
//! `docs/architecture.md`, "tables"): a replica costs nothing per lookup (an RCU read needs
//! a guard per burst and an extra indirection per lookup), and a change to a table of a
//! million M6 contexts costs one small message per worker instead of a copy of the table
//! (or a persistent map) per change. The price is memory: one replica per worker, which
//! DESIGN section 6 accepts. `benches/tables.rs` measures both read sides.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

/// A table that can be kept in step by replaying changes.
pub trait Table: Clone + Send + 'static {
    /// One change. Applying the same sequence of changes to equal tables gives equal
    /// tables.
    type Op: Clone + Send + 'static;

    /// Applies one change.
    fn apply(&mut self, op: &Self::Op);
}

/// What travels from the writer to one reader.
enum Update<T: Table> {
    Op(T::Op),
    /// The whole table, replacing the replica (after the reader fell behind).
    Snapshot(Box<T>),
}

struct Link<T: Table> {
    tx: Sender<Update<T>>,
    /// Changes were dropped for this reader: send a snapshot before any further change.
    behind: bool,
}

/// The single writer of a table: owns the master copy and a link to every reader.
pub struct Writer<T: Table> {
    master: T,
    links: Vec<Link<T>>,
    depth: usize,
    /// Snapshots sent because a reader fell behind, since creation.
    resyncs: u64,
}

impl<T: Table> Writer<T> {
    /// A writer whose master copy starts as `initial`; each reader's queue holds at most
    /// `depth` changes (at least 1).
    pub fn new(initial: T, depth: usize) -> Writer<T> {
        Writer {
            master: initial,
            links: Vec::new(),
            depth: depth.max(1),
            resyncs: 0,
        }
    }

    /// A new reader, starting from a copy of the master as it is now.
    pub fn reader(&mut self) -> Reader<T> {
        let (tx, rx) = bounded(self.depth);
        self.links.push(Link { tx, behind: false });
        Reader {
            replica: self.master.clone(),
            rx,
        }
    }

    /// The master copy: what every reader will hold once it has synced.
    pub fn get(&self) -> &T {
        &self.master
    }

    /// Applies `op` to the master and sends it to every reader that is in step.
    pub fn publish(&mut self, op: T::Op) {
        self.master.apply(&op);
        for link in &mut self.links {
            if link.behind {
                continue;
            }
            match link.tx.try_send(Update::Op(op.clone())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => link.behind = true,
                // The reader is gone (its worker stopped): nothing to keep in step.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Sends a snapshot of the master to every reader that fell behind and has room for
    /// it now. Call it regularly (the control thread does on every tick). Returns how
    /// many readers are still behind.
    pub fn flush(&mut self) -> usize {
        let mut behind = 0;
        for link in &mut self.links {
            if !link.behind {
                continue;
            }
            let snapshot = Update::Snapshot(Box::new(self.master.clone()));
            match link.tx.try_send(snapshot) {
                Ok(()) => {
                    link.behind = false;
                    self.resyncs += 1;
                }
                Err(TrySendError::Full(_)) => behind += 1,
                Err(TrySendError::Disconnected(_)) => link.behind = false,
            }
        }
        behind
    }

    /// Snapshots sent to readers that fell behind, since creation.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }
}

/// One worker's replica of a table and its queue of changes.
pub struct Reader<T: Table> {
    replica: T,
    rx: Receiver<Update<T>>,
}

impl<T: Table> Reader<T> {
    /// Applies every change queued so far; returns how many updates were taken. Call it
    /// between bursts: when nothing is queued it only reads the queue's indices.
    #[inline]
    pub fn sync(&mut self) -> usize {
        let mut n = 0;
        while let Ok(u) = self.rx.try_recv() {
            match u {
                Update::Op(op) => self.replica.apply(&op),
                Update::Snapshot(t) => self.replica = *t,
            }
            n += 1;
        }
        n
    }

    /// The replica, as of the last [`Self::sync`].
    #[inline]
    pub fn get(&self) -> &T {
        &self.replica
    }
}

/// A table that is only ever replaced whole (a handful of values, such as ISP state):
/// each op is the new value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whole<V>(pub V);

impl<V: Clone + Send + 'static> Table for Whole<V> {
    type Op = V;

    fn apply(&mut self, op: &V) {
        self.0 = op.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct Map(BTreeMap<u32, u32>);

    #[derive(Clone, Debug)]
    enum Op {
        Set(u32, u32),
        Remove(u32),
    }

    impl Table for Map {
        type Op = Op;
        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Set(k, v) => {
                    self.0.insert(k, v);
                }
                Op::Remove(k) => {
                    self.0.remove(&k);
                }
            }
        }
    }

    #[test]
    fn readers_see_nothing_until_they_sync_then_the_master() {
        let mut w = Writer::new(Map::default(), 16);
        w.publish(Op::Set(1, 10));
        let mut a = w.reader();
        let mut b = w.reader();
        assert_eq!(
            a.get().0.get(&1),
            Some(&10),
            "a new reader starts from the master"
        );
        w.publish(Op::Set(2, 20));
        w.publish(Op::Remove(1));
        assert_eq!(a.get().0.get(&2), None, "unsynced");
        assert_eq!(a.sync(), 2);
        assert_eq!(a.get(), w.get());
        assert_eq!(b.sync(), 2);
        assert_eq!(b.get(), w.get());
        assert_eq!(a.sync(), 0);
    }

    #[test]
    fn a_reader_that_falls_behind_is_resynced_and_converges() {
        let mut w = Writer::new(Map::default(), 4);
        let mut slow = w.reader();
        let mut fast = w.reader();
        for i in 0..100 {
            w.publish(Op::Set(i % 7, i));
            if i % 7 == 3 {
                w.publish(Op::Remove(i % 5));
            }
            fast.sync();
            w.flush();
        }
        assert_eq!(fast.get(), w.get());
        // The slow reader's queue overflowed long ago: no flush could get a snapshot in.
        assert_ne!(slow.get(), w.get());
        slow.sync(); // drains the stale changes; the queue has room again
        assert_eq!(w.flush(), 0);
        assert!(w.resyncs() >= 1);
        slow.sync();
        assert_eq!(slow.get(), w.get());
        // And changes flow again after the snapshot.
        w.publish(Op::Set(99, 1));
        slow.sync();
        assert_eq!(slow.get(), w.get());
    }

    #[test]
    fn a_dropped_reader_does_not_stop_the_writer() {
        let mut w = Writer::new(Map::default(), 1);
        let r = w.reader();
        drop(r);
        for i in 0..10 {
            w.publish(Op::Set(i, i));
        }
        assert_eq!(w.flush(), 0);
        assert_eq!(w.get().0.len(), 10);
    }

    #[test]
    fn whole_tables_are_replaced() {
        let mut w = Writer::new(Whole(vec![true, true]), 2);
        let mut r = w.reader();
        w.publish(vec![false, true]);
        r.sync();
        assert_eq!(r.get().0, vec![false, true]);
    }
}
