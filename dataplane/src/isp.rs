//! Whether each ISP can carry traffic now, with one owner.
//!
//! Three causes take an ISP out of service: the operator (`admin: down`), the link (carrier
//! lost, polled by the control thread), and its next hop (it stopped answering Neighbor
//! Discovery: [`crate::neighbor::owner`] reports it). [`IspOwner`] (the control thread) holds
//! them, logs every change with its cause, and publishes the combined state to the workers
//! through [`crate::tables`]; the egress stage reads [`IspLive::usable`].

use crate::site::Site;
use crate::tables::{Reader, Whole, Writer};

/// One ISP's state as the workers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IspLive {
    pub admin_up: bool,
    pub link_up: bool,
    /// The next hop answers Neighbor Discovery (true while unknown).
    pub next_hop_up: bool,
}

impl IspLive {
    /// Whether the ISP may carry traffic.
    #[inline]
    pub fn usable(&self) -> bool {
        self.admin_up && self.link_up && self.next_hop_up
    }
}

/// The published table: one [`IspLive`] per ISP, in configuration order.
pub type IspTable = Whole<Vec<IspLive>>;

/// The single writer of the ISP state.
pub struct IspOwner {
    names: Vec<String>,
    live: Vec<IspLive>,
    writer: Writer<IspTable>,
}

impl IspOwner {
    /// Every ISP as configured (admin state from the file), link and next hop up.
    pub fn new(site: &Site) -> IspOwner {
        let live: Vec<IspLive> = site
            .isps
            .iter()
            .map(|s| IspLive {
                admin_up: s.admin_up,
                link_up: true,
                next_hop_up: true,
            })
            .collect();
        IspOwner {
            names: site.isps.iter().map(|s| s.name.clone()).collect(),
            writer: Writer::new(Whole(live.clone()), 64),
            live,
        }
    }

    /// A reader for one more worker.
    pub fn reader(&mut self) -> Reader<IspTable> {
        self.writer.reader()
    }

    /// The state of ISP `isp`.
    pub fn get(&self, isp: usize) -> Option<IspLive> {
        self.live.get(isp).copied()
    }

    /// Sets the link state; returns a log line if it changed.
    pub fn set_link(&mut self, isp: usize, up: bool) -> Option<String> {
        self.change(isp, |l| &mut l.link_up, up, "link")
    }

    /// Sets the administrative state; returns a log line if it changed.
    pub fn set_admin(&mut self, isp: usize, up: bool) -> Option<String> {
        self.change(isp, |l| &mut l.admin_up, up, "admin")
    }

    /// Sets whether the next hop answers; returns a log line if it changed.
    pub fn set_next_hop(&mut self, isp: usize, up: bool) -> Option<String> {
        self.change(isp, |l| &mut l.next_hop_up, up, "next hop")
    }

    /// Resends the table to workers that fell behind.
    pub fn flush(&mut self) -> usize {
        self.writer.flush()
    }

    fn change(
        &mut self,
        isp: usize,
        field: impl Fn(&mut IspLive) -> &mut bool,
        up: bool,
        cause: &str,
    ) -> Option<String> {
        let l = self.live.get_mut(isp)?;
        let was = l.usable();
        let f = field(l);
        if *f == up {
            return None;
        }
        *f = up;
        let now = l.usable();
        self.writer.publish(self.live.clone());
        let name = self.names.get(isp).map_or("?", |n| n.as_str());
        let word = |b: bool| if b { "up" } else { "down" };
        Some(if was != now {
            format!(
                "isp {name} {} ({cause} {})",
                if now { "restored" } else { "withdrawn" },
                word(up)
            )
        } else {
            format!(
                "isp {name}: {cause} {} (still {})",
                word(up),
                if now { "usable" } else { "withdrawn" }
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::two_isp_site;

    #[test]
    fn changes_are_published_and_logged_with_their_cause() {
        let mut o = IspOwner::new(&two_isp_site());
        let mut r = o.reader();
        assert!(r.get().0.iter().all(|l| l.usable()));
        assert_eq!(o.set_link(0, true), None, "no change, no log");
        assert_eq!(
            o.set_next_hop(0, false).as_deref(),
            Some("isp isp1 withdrawn (next hop down)")
        );
        assert_eq!(
            o.set_link(0, false).as_deref(),
            Some("isp isp1: link down (still withdrawn)")
        );
        r.sync();
        assert!(!r.get().0[0].usable());
        assert!(r.get().0[1].usable());
        o.set_next_hop(0, true);
        assert_eq!(
            o.set_link(0, true).as_deref(),
            Some("isp isp1 restored (link up)")
        );
        r.sync();
        assert!(r.get().0[0].usable());
        assert_eq!(o.set_admin(7, false), None);
    }
}
