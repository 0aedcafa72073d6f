use super::*;

#[test]
fn flows_of_live_workers_stay_put_when_one_leaves() {
    let all = [0, 1, 2, 3];
    let without2 = [0, 1, 3];
    let mut moved = 0;
    for h in 0..10_000u32 {
        let h = h.wrapping_mul(2654435761);
        let before = worker_for_hash(h, &all).unwrap();
        let after = worker_for_hash(h, &without2).unwrap();
        if before != 2 {
            assert_eq!(before, after, "flow {h} moved from a live worker");
        } else {
            moved += 1;
            assert_ne!(after, 2);
        }
    }
    // Roughly a quarter of the flows lived on worker 2.
    assert!((1500..3500).contains(&moved), "{moved}");
    assert_eq!(worker_for_hash(7, &[]), None);
}

#[test]
fn specs_parse_and_bad_ones_say_why() {
    assert!(from_spec("rr", 2).is_ok());
    assert!(from_spec("flow", 2).is_ok());
    assert!(from_spec("prio:46=1,10=0", 2).is_ok());
    assert!(from_spec("prio:99=1", 2).err().unwrap().contains("DSCP"));
    assert!(from_spec("prio:10=5", 2)
        .err()
        .unwrap()
        .contains("worker 5"));
    assert!(from_spec("prio:10", 2)
        .err()
        .unwrap()
        .contains("DSCP=WORKER"));
    assert!(from_spec("bogus", 2).err().unwrap().contains("unknown"));
}

#[test]
fn names_are_checked() {
    assert!(check_name("pipe_1-a").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name("a/b").is_err());
    assert!(check_name(&"x".repeat(21)).is_err());
}

#[test]
fn neighbour_frames_are_told_apart_as_the_full_parser_does() {
    use crate::net::{self, EthernetAddress, FiveTuple, FrameBuilder, PacketClass, VlanTci};
    let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
    let mut buf = [0u8; 256];
    let n =
        net::build_arp_request(&mut buf, a, [10, 0, 0, 1].into(), [10, 0, 0, 2].into()).unwrap();
    assert!(is_neighbour_frame(&buf[..n]));
    let t = FiveTuple {
        src: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
        dst: std::net::Ipv4Addr::new(10, 0, 0, 2).into(),
        src_port: 1,
        dst_port: 2,
        proto: 17,
    };
    let n = net::build_udp_ipv4(&mut buf, a, a, &t, 10).unwrap();
    assert!(!is_neighbour_frame(&buf[..n]));
    assert_ne!(flow_hash(&buf[..n]), 0);
    let mut b = FrameBuilder::new(a, EthernetAddress::BROADCAST);
    b.vlan = Some(VlanTci::new(0, false, 7));
    let n = b
        .arp(
            &mut buf,
            net::ArpOperation::REQUEST,
            [10, 0, 0, 1].into(),
            EthernetAddress([0; 6]),
            [10, 0, 0, 9].into(),
        )
        .unwrap();
    assert!(is_neighbour_frame(&buf[..n]));
    assert_eq!(net::parse_frame(&buf[..n]).unwrap().class, PacketClass::Arp);
    for cut in 0..n {
        let _ = is_neighbour_frame(&buf[..cut]);
        let _ = flow_hash(&buf[..cut]);
    }
}
