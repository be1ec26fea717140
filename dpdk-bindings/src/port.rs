//! Ethernet ports and their RX/TX queues.
//!
//! DPDK's ethdev control path is not thread safe, and a queue's burst functions must never
//! run while the port is reconfigured, started, stopped or closed. So every control call
//! takes one process-wide lock (never taken on the fast path), and a table under that lock
//! records which queues have a live [`RxQueue`]/[`TxQueue`]: configure, start, stop and close
//! refuse to run while any of a port's queues is held, and a queue can be held once.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, c_uint, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::eal::Lease;
use crate::error::Error;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::ring::Ring;
use crate::sys;

/// Bytes a frame needs beyond its MTU: Ethernet header, one VLAN tag and the CRC.
const FRAME_OVERHEAD: u32 = 14 + 4 + 4;
/// The MTU DPDK applies when `rxmode.mtu` is 0 (`RTE_ETHER_MTU`).
const DEFAULT_MTU: u16 = 1500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    Rx,
    Tx,
}

/// Control-path bookkeeping, guarded by [`TABLE`].
#[derive(Debug)]
pub(crate) struct Table {
    /// Queues with a live handle: (port, direction, queue).
    held: BTreeSet<(u16, Dir, u16)>,
    /// Ports whose last configure succeeded: (RX queues, TX queues).
    configured: BTreeMap<u16, (u16, u16)>,
    /// Ports started through this crate and not stopped since.
    started: BTreeSet<u16>,
    /// Pools each port's RX queues may allocate from, until the port is closed.
    pools: BTreeMap<u16, Vec<usize>>,
    /// Rings each ring port reads and writes, until the port is closed.
    rings: BTreeMap<u16, Vec<usize>>,
    /// Names given to `Port::from_rings`: DPDK keeps a ring port's name for the process,
    /// closed or not.
    ring_names: BTreeSet<String>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    held: BTreeSet::new(),
    configured: BTreeMap::new(),
    started: BTreeSet::new(),
    pools: BTreeMap::new(),
    rings: BTreeMap::new(),
    ring_names: BTreeSet::new(),
});

/// Locks the control table. Nothing in this crate panics while holding it, so a poisoned
/// lock (a panic in a test thread, say) still guards a consistent table.
pub(crate) fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    /// Whether a port may still allocate from the pool at `pool`.
    pub(crate) fn uses_pool(&self, pool: *mut sys::rte_mempool) -> bool {
        self.pools.values().flatten().any(|&p| p == pool as usize)
    }

    /// Whether a port not yet closed reads or writes the ring at `ring`.
    pub(crate) fn uses_ring(&self, ring: *mut sys::rte_ring) -> bool {
        self.rings.values().flatten().any(|&r| r == ring as usize)
    }

    fn ensure_idle(&self, port: u16, call: &'static str) -> Result<(), Error> {
        let held: Vec<String> = self
            .held
            .range((port, Dir::Rx, 0)..=(port, Dir::Tx, u16::MAX))
            .map(|(_, d, q)| format!("{d:?}{q}").to_lowercase())
            .collect();
        if held.is_empty() {
            Ok(())
        } else {
            Err(Error::Busy {
                call,
                reason: format!(
                    "port {port} still has live queue handles ({}); drop them first",
                    held.join(", ")
                ),
            })
        }
    }
}

/// Lease plus table lock: what every control-path call holds.
fn control() -> Result<(Lease, MutexGuard<'static, Table>), Error> {
    let lease = Lease::acquire()?;
    Ok((lease, table()))
}

/// How to set up a port. `Default` gives one RX and one TX queue of 1024 descriptors, no RSS
/// and the device's default MTU (1500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (at least 1).
    pub rx_queues: u16,
    /// Number of TX queues (at least 1).
    pub tx_queues: u16,
    /// RX descriptors per queue; rounded to the device's limits.
    pub rx_desc: u16,
    /// TX descriptors per queue; rounded to the device's limits.
    pub tx_desc: u16,
    /// Spread flows over the RX queues by an IP/TCP/UDP hash, as far as the device can
    /// (the hash types are masked with the device's `flow_type_rss_offloads`). On a device
    /// with no RSS at all it stays off, and every packet arrives on RX queue 0.
    pub rss: bool,
    /// MTU to set; `None` keeps 1500. Frames must fit one mbuf of the RX pool.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
            mtu: None,
        }
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s; 0 if unknown.
    pub speed_mbps: u32,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware because no RX descriptor was free.
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An Ethernet port (a DPDK port id). Cheap to copy; every method is a control-path call
/// that checks the id, so a stale `Port` yields errors (or, once DPDK has given its id to a
/// new port, refers to that one), never undefined behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    id: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.id)
    }
}

/// Turns an ethdev return value (`-errno` on failure) into a Result.
fn check(ret: i32, call: &'static str, context: impl FnOnce() -> String) -> Result<i32, Error> {
    if ret < 0 {
        Err(Error::dpdk(call, context(), ret))
    } else {
        Ok(ret)
    }
}

impl Port {
    /// Number of usable ports (`rte_eth_dev_count_avail`); 0 if EAL is not running.
    pub fn count() -> u16 {
        match control() {
            // SAFETY: EAL is running (lease held) and the control lock is held.
            Ok(_guard) => unsafe { sys::rte_eth_dev_count_avail() },
            Err(_) => 0,
        }
    }

    /// The port with this id, if it exists.
    pub fn from_id(id: u16) -> Result<Port, Error> {
        let _guard = control()?;
        // SAFETY: EAL is running; the call checks any id.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1 {
            Ok(Port { id })
        } else {
            Err(Error::dpdk(
                "rte_eth_dev_is_valid_port",
                format!("port {id}"),
                libc::ENODEV,
            ))
        }
    }

    /// Creates a port named `name` over rings (`rte_eth_from_rings`, the net_ring PMD): RX
    /// queue i dequeues from `rx[i]`, TX queue i enqueues into `tx[i]`. The port is then
    /// configured and started like any other, with at most `rx.len()` RX and `tx.len()` TX
    /// queues. DPDK names the device `net_ring_` + `name` (so `name` has at most 19 bytes),
    /// which stays taken for the process even after [`Port::close`]. Until the port is
    /// closed, dropping one of the rings keeps it for the process (see [`Ring`]).
    ///
    /// Errors: EAL not running; no rings, or more than 16 either way (the PMD's fixed
    /// arrays: DPDK 22.11 itself does not check the TX count and writes past them); a name
    /// too long, with a NUL byte, or used before; or DPDK's reason (`ENOMEM`).
    pub fn from_rings(name: &str, rx: &[&Ring], tx: &[&Ring]) -> Result<Port, Error> {
        let (_lease, mut table) = control()?;
        let call = "rte_eth_from_rings";
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument {
            call,
            reason: format!("port name {name:?} contains a NUL byte"),
        })?;
        let (max_rx, max_tx) = (
            sys::RTE_PMD_RING_MAX_RX_RINGS as usize,
            sys::RTE_PMD_RING_MAX_TX_RINGS as usize,
        );
        if rx.is_empty() || tx.is_empty() || rx.len() > max_rx || tx.len() > max_tx {
            return Err(Error::InvalidArgument {
                call,
                reason: format!(
                    "port {name:?}: {} RX and {} TX rings; expected 1 to {max_rx} RX and 1 \
                     to {max_tx} TX",
                    rx.len(),
                    tx.len()
                ),
            });
        }
        // DPDK 22.11 refuses longer names with ENAMETOOLONG ("net_ring_" + name lands in a
        // 29-octet name buffer inside the PMD; tests/ring_adversarial.rs pins the limit).
        let max_name = 19;
        if name.len() > max_name {
            return Err(Error::InvalidArgument {
                call,
                reason: format!(
                    "port name {name:?}: {} bytes; at most {max_name}",
                    name.len()
                ),
            });
        }
        // DPDK itself answers a name used before with a bare EINVAL: say which.
        if table.ring_names.contains(name) {
            return Err(Error::InvalidArgument {
                call,
                reason: format!(
                    "a ring port named {name:?} exists already or did (DPDK keeps the name \
                     after close)"
                ),
            });
        }
        let rx_ptrs: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
        let tx_ptrs: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
        // SAFETY: EAL is running and the control lock is held; cname is a valid C string;
        // the arrays hold rx.len() and tx.len() valid ring pointers (the borrows keep the
        // Rings alive), at most the PMD's 16 each (checked above), which DPDK copies. They are entered in the table below under the
        // same lock, so a Ring dropped from now on is kept while the port may use it.
        let ret = unsafe {
            sys::rte_eth_from_rings(
                cname.as_ptr(),
                rx_ptrs.as_ptr(),
                rx_ptrs.len() as u32,
                tx_ptrs.as_ptr(),
                tx_ptrs.len() as u32,
                sys::SOCKET_ID_ANY as c_uint,
            )
        };
        if ret < 0 {
            return Err(Error::from_rte_errno(call, format!("port {name:?}")));
        }
        let id = ret as u16;
        let used = rx_ptrs
            .iter()
            .chain(&tx_ptrs)
            .map(|&r| r as usize)
            .collect();
        table.rings.insert(id, used);
        table.ring_names.insert(name.to_string());
        Ok(Port { id })
    }

    /// Looks a port up by device name (`rte_eth_dev_get_port_by_name`): for a vdev given as
    /// `--vdev=net_af_packet0,iface=x` the name is `net_af_packet0`; for PCI, the address.
    pub fn by_name(name: &str) -> Result<Port, Error> {
        let _guard = control()?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument {
            call: "rte_eth_dev_get_port_by_name",
            reason: format!("port name {name:?} contains a NUL byte"),
        })?;
        let mut id = 0u16;
        // SAFETY: EAL is running, the control lock is held, cname is a valid C string and id
        // a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        check(ret, "rte_eth_dev_get_port_by_name", || format!("{name:?}"))?;
        Ok(Port { id })
    }

    /// The DPDK port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name (`rte_eth_dev_get_name_by_port`).
    pub fn name(&self) -> Result<String, Error> {
        let _guard = control()?;
        self.name_locked()
    }

    fn name_locked(&self) -> Result<String, Error> {
        let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: EAL is running and the control lock is held (callers hold both); buf has
        // the RTE_ETH_NAME_MAX_LEN bytes the call may write, NUL included.
        let ret = unsafe { sys::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
        check(ret, "rte_eth_dev_get_name_by_port", || self.to_string())?;
        // SAFETY: on success the buffer holds a NUL-terminated name within its length.
        let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
        Ok(name.to_string_lossy().into_owned())
    }

    /// "port 0 (net_ring0)", for error messages.
    fn describe(&self) -> String {
        match self.name_locked() {
            Ok(name) => format!("port {} ({name})", self.id),
            Err(_) => self.to_string(),
        }
    }

    fn info(&self) -> Result<sys::rte_eth_dev_info, Error> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: EAL is running and the control lock is held (callers hold both); info is
        // a writable rte_eth_dev_info, which the call fills.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        check(ret, "rte_eth_dev_info_get", || self.to_string())?;
        Ok(info)
    }

    /// Configures the port and sets up its queues, RX queues allocating from `pool`.
    ///
    /// RSS is enabled only for the hash types the device supports
    /// (`flow_type_rss_offloads`); descriptor counts are rounded to the device's limits
    /// (`rte_eth_dev_adjust_nb_rx_tx_desc`). The port must be stopped and none of its
    /// queues held. `pool` is then kept alive, even past its drop, until [`Port::close`].
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<(), Error> {
        const CALL: &str = "rte_eth_dev_configure";
        let (_lease, mut table) = control()?;
        table.ensure_idle(self.id, CALL)?;
        if table.started.contains(&self.id) {
            // Checked here, not left to DPDK's EBUSY, so the bookkeeping below only runs
            // when the port really is reconfigured.
            return Err(Error::Busy {
                call: CALL,
                reason: format!("{} is started; stop it first", self.describe()),
            });
        }
        let info = self.info()?;
        let invalid = |reason: String| Error::InvalidArgument {
            call: CALL,
            reason: format!("{}: {reason}", self.describe()),
        };
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(invalid("need at least one RX and one TX queue".into()));
        }
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(invalid(format!(
                "{} RX / {} TX queues requested, device supports at most {} / {}",
                cfg.rx_queues, cfg.tx_queues, info.max_rx_queues, info.max_tx_queues
            )));
        }
        let mtu = cfg.mtu.unwrap_or(DEFAULT_MTU);
        if cfg.mtu.is_some() && !(info.min_mtu..=info.max_mtu).contains(&mtu) {
            return Err(invalid(format!(
                "MTU {mtu} outside the device's range {}..={}",
                info.min_mtu, info.max_mtu
            )));
        }
        let room = u32::from(pool.data_room()).saturating_sub(u32::from(Mempool::HEADROOM));
        if u32::from(mtu) + FRAME_OVERHEAD > room {
            return Err(invalid(format!(
                "MTU {mtu} frames do not fit one mbuf ({room} bytes after headroom); \
                 multi-segment RX is not supported"
            )));
        }

        let mut conf = sys::rte_eth_conf::default();
        if let Some(mtu) = cfg.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        if cfg.rss {
            // SAFETY: reading an immutable constant defined in shim.c.
            let wanted = unsafe { sys::m6_rss_hf_default };
            let hf = wanted & info.flow_type_rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
            }
        }

        // From here on the port may reference the pool, even if a later step fails.
        table.configured.remove(&self.id);
        let pools = table.pools.entry(self.id).or_default();
        if !pools.contains(&(pool.as_ptr() as usize)) {
            pools.push(pool.as_ptr() as usize);
        }

        // SAFETY: EAL is running, the control lock is held and no queue handle of this port
        // exists, so no burst runs on it; conf is a valid rte_eth_conf that DPDK copies.
        let ret =
            unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        check(ret, CALL, || self.describe())?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: as above; both pointers are valid u16 in/out parameters.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc) };
        check(ret, "rte_eth_dev_adjust_nb_rx_tx_desc", || self.describe())?;

        // SAFETY: as above; the call only reads the device's NUMA node.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        // SOCKET_ID_ANY (-1) is passed as (unsigned)-1, as C callers do.
        let socket = socket.max(sys::SOCKET_ID_ANY) as c_uint;
        for q in 0..cfg.rx_queues {
            // SAFETY: as above; NULL rxconf selects the device defaults; the pool is valid and
            // is recorded in the table, so it stays alive while the queue can use it.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(ret, "rte_eth_rx_queue_setup", || {
                format!("{} queue {q}", self.describe())
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above; NULL txconf selects the device defaults.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket, std::ptr::null())
            };
            check(ret, "rte_eth_tx_queue_setup", || {
                format!("{} queue {q}", self.describe())
            })?;
        }
        // Every queue was (re)set up, so older pools are no longer referenced.
        table.pools.insert(self.id, vec![pool.as_ptr() as usize]);
        table
            .configured
            .insert(self.id, (cfg.rx_queues, cfg.tx_queues));
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`). Take queue handles only after this.
    pub fn start(&self) -> Result<(), Error> {
        self.lifecycle("rte_eth_dev_start", sys::rte_eth_dev_start, |table| {
            table.started.insert(self.id);
        })
    }

    /// Stops the port (`rte_eth_dev_stop`); all its queue handles must be dropped first.
    pub fn stop(&self) -> Result<(), Error> {
        self.lifecycle("rte_eth_dev_stop", sys::rte_eth_dev_stop, |table| {
            table.started.remove(&self.id);
        })
    }

    /// Closes a stopped port (`rte_eth_dev_close`), releasing its queues and with them its
    /// hold on the RX pool. A vdev port id is gone afterwards.
    pub fn close(&self) -> Result<(), Error> {
        self.lifecycle("rte_eth_dev_close", sys::rte_eth_dev_close, |table| {
            table.configured.remove(&self.id);
            table.started.remove(&self.id);
            table.pools.remove(&self.id);
            table.rings.remove(&self.id);
        })
    }

    /// Runs start/stop/close with the port idle, then `after` under the same lock.
    fn lifecycle(
        &self,
        call: &'static str,
        f: unsafe extern "C" fn(u16) -> i32,
        after: impl FnOnce(&mut Table),
    ) -> Result<(), Error> {
        let (_lease, mut table) = control()?;
        table.ensure_idle(self.id, call)?;
        // SAFETY: EAL is running, the control lock is held and no queue handle of this port
        // exists, so no burst function runs on it while its state changes; f is one of
        // rte_eth_dev_start/stop/close, which validate the port id.
        let ret = unsafe { f(self.id) };
        check(ret, call, || self.describe())?;
        after(&mut table);
        Ok(())
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promiscuous(&self, on: bool) -> Result<(), Error> {
        let _guard = control()?;
        let (call, ret) = if on {
            // SAFETY: EAL is running and the control lock is held; the id is validated.
            ("rte_eth_promiscuous_enable", unsafe {
                sys::rte_eth_promiscuous_enable(self.id)
            })
        } else {
            // SAFETY: as above.
            ("rte_eth_promiscuous_disable", unsafe {
                sys::rte_eth_promiscuous_disable(self.id)
            })
        };
        check(ret, call, || self.describe()).map(|_| ())
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6], Error> {
        let _guard = control()?;
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: EAL is running, the control lock is held; addr is a writable rte_ether_addr.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id, &mut addr) };
        check(ret, "rte_eth_macaddr_get", || self.describe())?;
        Ok(addr.addr_bytes)
    }

    /// Link state without waiting (`rte_eth_link_get_nowait`). A port whose link cannot be
    /// read (bad id, EAL down) is reported down: for egress selection that is what it is.
    pub fn link(&self) -> LinkStatus {
        let Ok(_guard) = control() else {
            return LinkStatus::default();
        };
        let mut link = sys::rte_eth_link::default();
        // SAFETY: EAL is running, the control lock is held; link is a writable rte_eth_link.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        if ret < 0 {
            return LinkStatus::default();
        }
        LinkStatus {
            up: link.link_status() != 0,
            // RTE_ETH_SPEED_NUM_UNKNOWN is u32::MAX.
            speed_mbps: if link.link_speed == u32::MAX {
                0
            } else {
                link.link_speed
            },
        }
    }

    /// Basic counters (`rte_eth_stats_get`).
    pub fn stats(&self) -> Result<PortStats, Error> {
        let _guard = control()?;
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: EAL is running, the control lock is held; s is a writable rte_eth_stats.
        let ret = unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        check(ret, "rte_eth_stats_get", || self.describe())?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Driver-specific counters by name (`rte_eth_xstats_get_names` + `rte_eth_xstats_get`).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, Error> {
        let _guard = control()?;
        // SAFETY: EAL is running, the control lock is held; NULL/0 asks for the count only.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        let n = check(n, "rte_eth_xstats_get_names", || self.describe())? as usize;
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        let mut values = vec![sys::rte_eth_xstat::default(); n];
        let size = n as c_uint;
        // SAFETY: names has room for n entries, as the size argument says.
        let got = unsafe { sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), size) };
        let got_names = check(got, "rte_eth_xstats_get_names", || self.describe())? as usize;
        // SAFETY: values has room for n entries, as the size argument says.
        let got = unsafe { sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), size) };
        let got_values = check(got, "rte_eth_xstats_get", || self.describe())? as usize;
        if got_names > n || got_values > n {
            // The set grew between the calls; DPDK filled nothing in that case.
            return Err(Error::dpdk(
                "rte_eth_xstats_get",
                self.describe(),
                libc::EAGAIN,
            ));
        }
        Ok(values[..got_values]
            .iter()
            .filter_map(|v| {
                let name = names[..got_names].get(v.id as usize)?;
                // SAFETY: DPDK writes NUL-terminated names into the 64-byte arrays, which
                // start zeroed, so a NUL is always inside the array.
                let name = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((name.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    /// Takes the handle of RX queue `q` of a configured port. Fails if the queue does not
    /// exist or is already held: one owner (thread) per queue, as DPDK requires.
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue, Error> {
        let (lease, token) = self.hold(Dir::Rx, q)?;
        Ok(RxQueue {
            port: self.id,
            queue: q,
            _token: token,
            _lease: lease,
            _one_owner: PhantomData,
        })
    }

    /// Takes the handle of TX queue `q` of a configured port; see [`Port::rx_queue`].
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue, Error> {
        let (lease, token) = self.hold(Dir::Tx, q)?;
        Ok(TxQueue {
            port: self.id,
            queue: q,
            _token: token,
            _lease: lease,
            _one_owner: PhantomData,
        })
    }

    fn hold(&self, dir: Dir, q: u16) -> Result<(Lease, Held), Error> {
        let call = match dir {
            Dir::Rx => "rte_eth_rx_burst",
            Dir::Tx => "rte_eth_tx_burst",
        };
        let (lease, mut table) = control()?;
        let Some(&(rxq, txq)) = table.configured.get(&self.id) else {
            return Err(Error::InvalidArgument {
                call,
                reason: format!("{} is not configured", self.describe()),
            });
        };
        let count = if dir == Dir::Rx { rxq } else { txq };
        if q >= count {
            return Err(Error::InvalidArgument {
                call,
                reason: format!(
                    "{}: {dir:?} queue {q} does not exist ({count} configured)",
                    self.describe()
                ),
            });
        }
        if !table.held.insert((self.id, dir, q)) {
            return Err(Error::Busy {
                call,
                reason: format!(
                    "{}: {dir:?} queue {q} already has a handle",
                    self.describe()
                ),
            });
        }
        Ok((
            lease,
            Held {
                port: self.id,
                dir,
                queue: q,
            },
        ))
    }
}

/// A queue's entry in the table; removing it on drop lets the port be reconfigured.
#[derive(Debug)]
struct Held {
    port: u16,
    dir: Dir,
    queue: u16,
}

impl Drop for Held {
    fn drop(&mut self) {
        table().held.remove(&(self.port, self.dir, self.queue));
    }
}

/// The receive side of one queue of a port. `Send` but not `Sync` or `Clone`: DPDK's burst
/// functions are not thread safe per queue, so exactly one thread owns it.
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<dpdk_bindings::RxQueue>();
/// ```
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    // Field order matters: the table entry goes before the lease.
    _token: Held,
    _lease: Lease,
    _one_owner: NotSync,
}

/// Makes a type `Send` but `!Sync`.
type NotSync = PhantomData<Cell<()>>;

impl RxQueue {
    /// Receives up to `max` packets (at most 65535) and appends them to `out`, using its
    /// spare capacity: one FFI call per burst. Returns how many arrived.
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let n = u16::try_from(max).unwrap_or(u16::MAX);
        out.reserve(usize::from(n));
        let spare = out.spare_capacity_mut();
        // SAFETY: the port is configured with this queue and cannot be reconfigured, stopped
        // or closed while we hold it (table), and &mut self makes this the only caller on the
        // queue. spare has room for n pointers; Mbuf is repr(transparent) over
        // NonNull<rte_mbuf>, the layout of `struct rte_mbuf *`. The PMD writes `got` <= n
        // non-NULL pointers to mbufs whose ownership passes to us.
        let got = unsafe { sys::m6_rx_burst(self.port, self.queue, spare.as_mut_ptr().cast(), n) };
        let got = usize::from(got.min(n));
        // SAFETY: the first `got` spare slots were initialised by the PMD just above.
        unsafe { out.set_len(out.len() + got) };
        got
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

/// The transmit side of one queue of a port; one owner, as for [`RxQueue`].
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<dpdk_bindings::TxQueue>();
/// ```
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _token: Held,
    _lease: Lease,
    _one_owner: NotSync,
}

impl TxQueue {
    /// Transmits packets from the front of `pkts` (at most 65535 per call) and removes the
    /// ones the NIC accepted, which it now owns and frees. The rest stay in `pkts`, in
    /// order, for the caller to retry or drop. Returns how many were sent.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let n = u16::try_from(pkts.len()).unwrap_or(u16::MAX);
        // SAFETY: queue ownership as in rx_burst. pkts holds at least n owned mbufs laid out
        // as `struct rte_mbuf *`; the PMD takes ownership of the first `sent` of them and
        // does not write to the array.
        let sent = unsafe { sys::m6_tx_burst(self.port, self.queue, pkts.as_mut_ptr().cast(), n) };
        let sent = usize::from(sent.min(n));
        // The NIC owns the sent mbufs now: take them out without running Mbuf's Drop.
        pkts.drain(..sent).for_each(std::mem::forget);
        sent
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}
