//! The resolver thread: hickory on a current-thread tokio runtime, fed through a bounded
//! queue and answering through a channel plus a [`mio::Waker`], so the daemon's mio loop
//! never waits for the DNS (DESIGN.md section 8).
//!
//! ```text
//!  mio loop                                  m6-dns thread (tokio, current thread)
//!  engine: Action::Dns{id, query} --submit--> queue (bounded) -> one task per lookup,
//!                                                 at most max_inflight at once
//!  engine <- Event::Dns{id, result} <-try_recv-- results channel <- task + waker.wake()
//! ```
//!
//! A full queue does not block the loop: the lookup is answered [`DnsResult::Transient`] at
//! once and the engine retries it with backoff (seed 001 section 7.13), like any SERVFAIL.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::Resolver;
use tokio::sync::{mpsc, Semaphore};

use super::config::ResolverSetup;
use super::lookup::resolve;
use crate::engine::dns::{DnsQuery, DnsQueryId, DnsResult};

/// A finished lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub id: DnsQueryId,
    pub query: DnsQuery,
    pub result: DnsResult,
    /// Wall-clock time from [`DnsService::submit`] to the answer (for metrics and tests).
    pub took: Duration,
}

/// Counters of the service (for metrics).
#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    ok: AtomicU64,
    permanent: AtomicU64,
    transient: AtomicU64,
    /// Answered transient at once because the queue was full (or the thread gone).
    overflow: AtomicU64,
}

/// A snapshot of the service's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsServiceStats {
    pub submitted: u64,
    pub ok: u64,
    pub permanent: u64,
    pub transient: u64,
    pub overflow: u64,
}

impl DnsServiceStats {
    /// Lookups submitted and not answered yet.
    pub fn in_flight(&self) -> u64 {
        self.submitted
            .saturating_sub(self.ok + self.permanent + self.transient)
    }
}

struct Job {
    id: DnsQueryId,
    query: DnsQuery,
    submitted: Instant,
}

/// Tells the loop that results are waiting.
#[derive(Clone)]
struct Notifier(Option<Arc<mio::Waker>>);

impl Notifier {
    fn notify(&self) {
        if let Some(w) = &self.0 {
            // A failed wake only delays the results until the loop's next turn.
            let _ = w.wake();
        }
    }
}

/// Sends results back and counts them.
#[derive(Clone)]
struct Reply {
    tx: Sender<Completion>,
    notifier: Notifier,
    counters: Arc<Counters>,
}

impl Reply {
    fn send(&self, c: Completion) {
        let counter = match c.result {
            DnsResult::Ok { .. } => &self.counters.ok,
            DnsResult::Permanent => &self.counters.permanent,
            DnsResult::Transient => &self.counters.transient,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // The receiver lives in the service; if it is gone nobody wants the answer.
        let _ = self.tx.send(c);
        self.notifier.notify();
    }
}

/// Shared between the service and its thread: tells the thread to stop taking lookups.
struct Shutdown {
    /// Set by [`DnsService`]'s `Drop`; queued jobs seen after it are answered transient.
    flag: AtomicBool,
    /// The in-flight slots; closed on shutdown so a receive loop waiting for a slot wakes.
    slots: Arc<Semaphore>,
}

/// How long `Drop` lets the runtime wind down lookups still in flight before abandoning
/// them (their tasks are cancelled, not awaited).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(50);

/// The DNS component the daemon runs beside the engine. Dropping it stops the thread
/// promptly: lookups still queued are answered [`DnsResult::Transient`] without going to the
/// wire, and lookups still running are abandoned (their tasks cancelled), so dropping never
/// waits for DNS timeouts.
pub struct DnsService {
    jobs: Option<mpsc::Sender<Job>>,
    shutdown: Arc<Shutdown>,
    reply: Reply,
    results: Receiver<Completion>,
    thread: Option<JoinHandle<()>>,
}

impl DnsService {
    /// Starts the resolver thread. `waker` is woken whenever a result is ready (the daemon
    /// registers it with its mio `Poll`); without one, poll [`DnsService::try_recv`] or block
    /// in [`DnsService::recv_timeout`].
    pub fn start(setup: ResolverSetup, waker: Option<Arc<mio::Waker>>) -> io::Result<DnsService> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(setup.queue.max(1));
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let reply = Reply {
            tx: res_tx,
            notifier: Notifier(waker),
            counters: Arc::new(Counters::default()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let shutdown = Arc::new(Shutdown {
            flag: AtomicBool::new(false),
            slots: Arc::new(Semaphore::new(setup.max_inflight.max(1))),
        });
        let thread_reply = reply.clone();
        let thread_shutdown = Arc::clone(&shutdown);
        let thread = std::thread::Builder::new()
            .name("m6-dns".into())
            .spawn(move || run(runtime, setup, jobs_rx, thread_reply, thread_shutdown))?;
        Ok(DnsService {
            jobs: Some(jobs_tx),
            shutdown,
            reply,
            results: res_rx,
            thread: Some(thread),
        })
    }

    /// Queues a lookup; never blocks. A full queue answers [`DnsResult::Transient`] at once.
    pub fn submit(&self, id: DnsQueryId, query: DnsQuery) {
        self.reply
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        let job = Job {
            id,
            query,
            submitted: Instant::now(),
        };
        let refused = match &self.jobs {
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(j))
                | Err(mpsc::error::TrySendError::Closed(j)) => j,
            },
            None => job,
        };
        self.reply.counters.overflow.fetch_add(1, Ordering::Relaxed);
        self.reply.send(Completion {
            id: refused.id,
            query: refused.query,
            result: DnsResult::Transient,
            took: Duration::ZERO,
        });
    }

    /// A finished lookup, if any.
    pub fn try_recv(&self) -> Option<Completion> {
        self.results.try_recv().ok()
    }

    /// Waits up to `timeout` for a finished lookup.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Completion> {
        self.results.recv_timeout(timeout).ok()
    }

    /// The results channel, for callers that select over several.
    pub fn results(&self) -> &Receiver<Completion> {
        &self.results
    }

    /// Counters.
    pub fn stats(&self) -> DnsServiceStats {
        let c = &self.reply.counters;
        DnsServiceStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            ok: c.ok.load(Ordering::Relaxed),
            permanent: c.permanent.load(Ordering::Relaxed),
            transient: c.transient.load(Ordering::Relaxed),
            overflow: c.overflow.load(Ordering::Relaxed),
        }
    }
}

impl Drop for DnsService {
    fn drop(&mut self) {
        // Stop order matters: the flag makes the loop answer whatever is still queued at
        // once, closing the semaphore wakes a loop waiting for an in-flight slot, and closing
        // the queue ends the receive loop once it is drained. The thread then shuts its
        // runtime down with a short grace, cancelling lookups still in flight.
        self.shutdown.flag.store(true, Ordering::Release);
        self.shutdown.slots.close();
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    runtime: tokio::runtime::Runtime,
    setup: ResolverSetup,
    mut jobs: mpsc::Receiver<Job>,
    reply: Reply,
    shutdown: Arc<Shutdown>,
) {
    let ResolverSetup {
        config,
        options,
        marker_type,
        lookup_deadline,
        ..
    } = setup;
    runtime.block_on(async move {
        let resolver = Resolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build();
        // `max_inflight` sized `shutdown.slots` in `DnsService::start`.
        while let Some(job) = jobs.recv().await {
            if shutdown.flag.load(Ordering::Acquire) {
                abandon(&reply, job);
                continue;
            }
            let slot = match Arc::clone(&shutdown.slots).acquire_owned().await {
                Ok(slot) => slot,
                // Closed: the service is being dropped.
                Err(_) => {
                    abandon(&reply, job);
                    continue;
                }
            };
            let resolver = resolver.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let result = match tokio::time::timeout(
                    lookup_deadline,
                    resolve(&resolver, marker_type, &job.query),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => DnsResult::Transient,
                };
                drop(slot);
                reply.send(Completion {
                    id: job.id,
                    query: job.query,
                    result,
                    took: job.submitted.elapsed(),
                });
            });
        }
    });
    // Lookups still in flight are cancelled rather than awaited (a stopped server would
    // otherwise hold the thread for up to a lookup deadline each).
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
}

/// Answers a queued lookup [`DnsResult::Transient`] without running it (shutdown).
fn abandon(reply: &Reply, job: Job) {
    reply.send(Completion {
        id: job.id,
        query: job.query,
        result: DnsResult::Transient,
        took: job.submitted.elapsed(),
    });
}
