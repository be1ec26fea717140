//! The CC hot path allocates nothing: `CcEcho::from_packet` (the zero-copy CCR reader the
//! dataplane uses), `cc::check` and `cc::generate` run with a counting global allocator that
//! must see zero allocations, reallocations and frees on this thread.
//!
//! An integration test of its own because `#[global_allocator]` is per binary: counting here
//! does not slow down or disturb the other tests. The counter is per thread, so the test
//! harness's own threads cannot make the count flaky.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv6Addr;

use proto::cc::{self, CcEcho, CcInput, CcKey, CcKeyring, CcPolicy, Locators};
use proto::wire::m6::{Cc, IcmpTypes, Message, Packet, Repr};
use proto::wire::FlowLabel;

struct Counting;

thread_local! {
    /// Heap operations (alloc, alloc_zeroed, realloc, dealloc) on this thread.
    static OPS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the thread-local may be gone while the thread is being torn down.
    let _ = OPS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` unchanged; counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap operations `f` performed on this thread, and its result.
fn heap_ops<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = OPS.with(Cell::get);
    let r = std::hint::black_box(f());
    (OPS.with(Cell::get) - before, r)
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const NOW: u32 = 0x1000;

#[test]
fn the_counter_sees_allocations() {
    // Guards against a vacuous pass (an allocator that is not installed or not counting).
    let (ops, v) = heap_ops(|| vec![1u8; 100]);
    assert!(ops >= 1, "{ops}");
    let (ops, ()) = heap_ops(|| drop(v));
    assert_eq!(ops, 1);
}

#[test]
fn cc_echo_from_packet_check_and_generate_do_not_allocate() {
    let lsl_i = [a("2001:db8:1::a"), a("2001:db8:3::a")];
    let lsr_r = [a("2001:db8:2::b")];
    let lsl_r = [a("2001:db8:2::b"), a("2001:db8:4::b")];
    let input = CcInput {
        init_src: a("2001:db8:1::a"),
        init_dst: a("2001:db8:2::b"),
        aid_initiator: a("2001:db8:1::a"),
        aid_responder: a("2001:db8:2::b"),
        initiator_nonce: 0x0102_0304_0506_0708,
        initiator_flow_label: FlowLabel::new(0x12345).unwrap(),
        initiator_birthday: 1000,
        responder_birthday: 5,
        ulp_discarded: true,
        lsl_initiator: Locators::from_addrs(&lsl_i),
        lsr_responder: Locators::from_addrs(&lsr_r),
        lsl_responder: Locators::from_addrs(&lsl_r),
    };
    let keys = CcKeyring::new(CcKey::new(7, &[0x5a; 32]));
    let policy = CcPolicy::default();

    // generate: the responder answering an INIT.
    let (ops, state) = heap_ops(|| cc::generate(&keys, &input, NOW));
    assert_eq!(ops, 0, "cc::generate allocated");

    // The CCR as it arrives (building it allocates; that is not the hot path).
    let ccr = Repr {
        rewrite_ok: true,
        nonce: 99,
        message: Message::Ccr(Cc {
            aid_initiator: input.aid_initiator,
            aid_responder: input.aid_responder,
            lsl_initiator: lsl_i.to_vec(),
            lsr_responder: lsr_r.to_vec(),
            lsl_responder: lsl_r.to_vec(),
            state,
        }),
        piggyback: None,
    };
    let bytes = ccr
        .to_bytes(
            &input.aid_initiator,
            &input.aid_responder,
            &IcmpTypes::default(),
        )
        .unwrap();

    // from_packet: view and read the echo straight from the octets.
    let (ops, packet) = heap_ops(|| Packet::new_checked(&bytes[..]).unwrap());
    assert_eq!(ops, 0, "Packet::new_checked allocated");
    let (ops, echo) = heap_ops(|| CcEcho::from_packet(&packet));
    assert_eq!(ops, 0, "CcEcho::from_packet allocated");
    let echo = echo.unwrap();
    assert_eq!(echo.state, state);
    assert_eq!(echo.lsl_initiator, Locators::from_addrs(&lsl_i));

    // check: a valid echo, from an echoed locator to an echoed locator.
    let (ops, verified) = heap_ops(|| {
        cc::check(
            &keys,
            &echo,
            &a("2001:db8:3::a"),
            &a("2001:db8:4::b"),
            NOW + 1,
            &policy,
        )
    });
    assert_eq!(ops, 0, "cc::check allocated");
    assert_eq!(verified.unwrap().key_serial, 7);

    // The failure paths allocate nothing either (a forged MAC, an unknown key, a stranger).
    let mut forged = echo;
    forged.state.mac[0] ^= 1;
    let (ops, r) = heap_ops(|| {
        cc::check(
            &keys,
            &forged,
            &input.aid_initiator,
            &input.aid_responder,
            NOW,
            &policy,
        )
    });
    assert_eq!(ops, 0, "cc::check (bad MAC) allocated");
    assert_eq!(r.unwrap_err(), cc::CcError::BadMac);
    let other = CcKeyring::new(CcKey::new(8, &[0x5a; 32]));
    let (ops, r) = heap_ops(|| {
        cc::check(
            &other,
            &echo,
            &input.aid_initiator,
            &input.aid_responder,
            NOW,
            &policy,
        )
    });
    assert_eq!(ops, 0, "cc::check (unknown serial) allocated");
    assert_eq!(r.unwrap_err(), cc::CcError::UnknownSerial);
    let (ops, r) = heap_ops(|| {
        cc::check(
            &keys,
            &echo,
            &a("2001:db8:66::1"),
            &input.aid_responder,
            NOW,
            &policy,
        )
    });
    assert_eq!(ops, 0, "cc::check (stranger) allocated");
    assert_eq!(r.unwrap_err(), cc::CcError::SourceNotInLsl);

    // A truncated CCR is rejected without allocating.
    let short = &bytes[..bytes.len() - 8];
    let (ops, r) = heap_ops(|| Packet::new_checked(short).map(|p| CcEcho::from_packet(&p).err()));
    assert_eq!(ops, 0, "rejecting a truncated CCR allocated");
    assert!(
        !matches!(r, Ok(None)),
        "a truncated CCR was accepted: {r:?}"
    );
}
