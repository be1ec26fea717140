//! (e) Mbuf length operations stay within the buffer and report what they cannot do.
mod common;

use dpdk_bindings::{free_bulk, Mbuf, Mempool};

#[test]
fn mbuf_prepend_adj_trim_append_respect_bounds() {
    let eal = common::eal(&[]);
    let pool = Mempool::new("mbuf_pool", 63, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    assert_eq!(pool.data_room(), Mempool::DEFAULT_DATA_ROOM);
    let start = pool.avail_count();

    let mut m = pool.alloc().expect("mbuf");
    assert!(m.is_empty());
    assert_eq!((m.len(), m.pkt_len(), m.nb_segs()), (0, 0, 1));
    assert_eq!((m.headroom(), m.tailroom()), (128, 2048));
    assert_eq!(m.rss_hash(), None);

    // Front: prepend within headroom only.
    assert!(m.prepend(129).is_none());
    assert!(m.prepend(usize::from(u16::MAX) + 1).is_none());
    assert_eq!(
        (m.len(), m.headroom()),
        (0, 128),
        "failed prepend changes nothing"
    );
    m.prepend(14).expect("fits").copy_from_slice(&[0xee; 14]);
    assert_eq!((m.len(), m.pkt_len(), m.headroom()), (14, 14, 114));

    // Back: append within tailroom only.
    assert!(m.append(2049).is_none());
    let body: Vec<u8> = (0..100u8).collect();
    m.append(100).expect("fits").copy_from_slice(&body);
    assert_eq!((m.len(), m.tailroom()), (114, 1948));
    assert_eq!(&m.data()[..14], &[0xee; 14]);
    assert_eq!(&m.data()[14..], body.as_slice());

    // Remove from the front.
    assert!(!m.adj(115));
    assert!(!m.adj(usize::MAX));
    assert_eq!(m.len(), 114);
    assert!(m.adj(14));
    assert_eq!(m.data(), body.as_slice());
    assert_eq!(m.headroom(), 128);

    // Remove from the end.
    assert!(!m.trim(101));
    assert!(m.trim(10));
    assert_eq!(m.data(), &body[..90]);
    m.truncate(500);
    assert_eq!(m.len(), 90, "truncate to a longer length is a no-op");
    m.truncate(50);
    assert_eq!((m.len(), m.pkt_len()), (50, 50));
    m.data_mut()[0] = 0xaa;
    assert_eq!(m.data()[0], 0xaa);
    assert!(m.adj(50));
    assert!(m.is_empty());
    assert!(!m.trim(1));
    drop(m);

    // Prepend can use exactly the whole headroom, append exactly the whole tailroom.
    let mut m = pool.alloc().expect("mbuf");
    assert!(m.prepend(128).is_some());
    assert!(m.prepend(1).is_none());
    assert!(m.append(2048).is_some());
    assert!(m.append(1).is_none());
    assert_eq!(m.len(), 2176);
    drop(m);

    // from_slice: fits the data room after headroom or returns None without leaking.
    assert!(Mbuf::from_slice(&pool, &[1; 2049]).is_none());
    let m = Mbuf::from_slice(&pool, &[7; 2048]).expect("fits");
    assert_eq!(m.data(), &[7; 2048][..]);
    drop(m);
    assert_eq!(pool.avail_count(), start);

    // Bulk allocation is all or nothing; exhaustion is None, not a panic.
    let mut v = Vec::new();
    assert!(pool.alloc_bulk(&mut v, 10));
    assert_eq!(v.len(), 10);
    assert!(!pool.alloc_bulk(&mut v, 60), "only 53 left");
    assert_eq!(v.len(), 10, "failed bulk alloc leaves the Vec alone");
    while let Some(m) = pool.alloc() {
        v.push(m);
    }
    assert_eq!(v.len(), 63);
    assert_eq!(pool.avail_count(), 0);
    free_bulk(&mut v);
    assert!(v.is_empty());
    assert_eq!(pool.avail_count(), start);

    // Chains: data() is the first segment only, trim/append act on the last, truncate and
    // pkt_len see the whole packet, and every segment is freed exactly once.
    let mut head = Mbuf::from_slice(&pool, &[1; 100]).expect("mbuf");
    head.chain(Mbuf::from_slice(&pool, &[2; 50]).expect("mbuf"))
        .expect("chain");
    head.chain(Mbuf::from_slice(&pool, &[3; 30]).expect("mbuf"))
        .expect("chain");
    assert_eq!((head.nb_segs(), head.pkt_len(), head.len()), (3, 180, 100));
    assert_eq!(
        head.data(),
        &[1; 100][..],
        "first segment only, never past it"
    );
    assert_eq!(pool.in_use_count(), 3);
    head.append(10).expect("room in the last segment").fill(4);
    assert_eq!((head.pkt_len(), head.len()), (190, 100));
    assert!(!head.trim(41), "the last segment holds 40");
    assert!(head.trim(10));
    assert!(head.adj(10));
    assert!(head.prepend(10).is_some());
    assert_eq!((head.nb_segs(), head.pkt_len()), (3, 180));
    head.truncate(120);
    assert_eq!((head.nb_segs(), head.pkt_len(), head.len()), (2, 120, 100));
    assert_eq!(
        pool.in_use_count(),
        2,
        "the cut-off segment went back to the pool"
    );
    head.truncate(100);
    assert_eq!((head.nb_segs(), head.pkt_len()), (1, 100));
    assert_eq!(pool.in_use_count(), 1);
    head.chain(Mbuf::from_slice(&pool, &[5; 20]).expect("mbuf"))
        .expect("chain");
    head.truncate(0);
    assert_eq!((head.nb_segs(), head.pkt_len(), head.len()), (1, 0, 0));
    drop(head);
    assert_eq!(pool.avail_count(), start);

    // A pool dropped while an mbuf is out is kept, so the mbuf stays valid.
    let leaked = Mempool::new("kept_pool", 63, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let mut survivor = Mbuf::from_slice(&leaked, b"still here").expect("mbuf");
    drop(leaked);
    assert_eq!(survivor.data(), b"still here");
    assert!(survivor.prepend(2).is_some());
    drop(survivor);

    drop(pool);
    // kept_pool was leaked (an mbuf was out when it was dropped), so EAL stays up.
    let e = eal.cleanup().expect_err("the leaked pool still holds EAL");
    assert!(e.to_string().contains("rte_eal_cleanup not called"), "{e}");
}
