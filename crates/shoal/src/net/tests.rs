//! Cross-header tests: build/parse round trips and the no-panic property.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

const SRC_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const DST_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

/// Reads every field of every view that accepts `bytes`, so a panic anywhere shows up.
fn touch_all_views(bytes: &[u8]) {
    if let Ok(p) = EthernetFrame::new_checked(bytes) {
        let _ = (p.src_addr(), p.dst_addr(), p.ethertype(), p.payload().len());
        let _ = EthernetRepr::parse(&p);
    }
    if let Ok(p) = VlanHeader::new_checked(bytes) {
        let _ = (p.tci(), p.ethertype(), p.payload().len());
    }
    if let Ok(p) = ArpPacket::new_checked(bytes) {
        let _ = (
            p.operation(),
            p.source_hardware_addr(),
            p.source_protocol_addr(),
        );
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        let _ = ArpRepr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.dscp(),
            p.ecn(),
            p.ident(),
            p.frag_offset(),
            p.is_fragment(),
        );
        let _ = (
            p.src_addr(),
            p.dst_addr(),
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
        );
        let _ = Ipv4Repr::parse(&p);
    }
    if let Ok(p) = Ipv6Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.hop_limit(),
        );
        let _ = (
            p.src_addr(),
            p.dst_addr(),
            p.payload().len(),
            p.upper_layer(),
        );
        let _ = Ipv6Repr::parse(&p);
    }
    let any = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if let Ok(p) = TcpPacket::new_checked(bytes) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.flags(),
            p.window_len(),
        );
        let _ = (
            p.urgent_at(),
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(any, any),
        );
        let _ = TcpRepr::parse(&p);
    }
    if let Ok(p) = UdpPacket::new_checked(bytes) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.payload().len(),
            p.verify_checksum(any, any),
        );
        let _ = UdpRepr::parse(&p);
    }
    if let Ok(p) = Icmpv4Packet::new_checked(bytes) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.payload().len(),
            p.verify_checksum(),
        );
    }
    if let Ok(p) = Icmpv6Packet::new_checked(bytes) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.target_addr(),
            p.na_router(),
            p.na_solicited(),
            p.na_override(),
        );
        let _ = (p.payload().len(), p.verify_checksum(any, any));
    }
    let _ = ipv6::walk_extension_headers(IpProtocol::HOP_BY_HOP, bytes);
    let _ = checksum::data(bytes);
    let _ = crc::hash_crc(bytes, 0);
    let _ = toeplitz::toeplitz_hash(&toeplitz::RSS_KEY_DEFAULT, bytes);
}

fn arb_ip(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u8; 16]>()
            .prop_map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)))
            .boxed()
    }
}

fn arb_tuple() -> impl Strategy<Value = FiveTuple> {
    (any::<bool>(), any::<bool>())
        .prop_flat_map(|(v6, tcp)| {
            let proto = if tcp {
                IpProtocol::TCP
            } else {
                IpProtocol::UDP
            };
            (
                arb_ip(v6),
                arb_ip(v6),
                any::<u16>(),
                any::<u16>(),
                Just(proto),
            )
        })
        .prop_map(|(src, dst, sp, dp, proto)| FiveTuple::new(src, sp, dst, dp, proto))
}

fn arb_builder() -> impl Strategy<Value = FrameBuilder> {
    (
        proptest::option::of(any::<u16>()),
        0u8..64,
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(vlan, dscp, l4_checksum, pad, hop_limit)| FrameBuilder {
            vlan: vlan.map(VlanTci),
            dscp,
            l4_checksum,
            pad,
            hop_limit,
            ..FrameBuilder::new(SRC_MAC, DST_MAC)
        })
}

fn build(b: &FrameBuilder, t: &FiveTuple, buf: &mut [u8], payload_len: usize) -> usize {
    if t.protocol() == IpProtocol::TCP {
        b.tcp(buf, t, payload_len).unwrap()
    } else {
        b.udp(buf, t, payload_len).unwrap()
    }
}

proptest! {
    #[test]
    fn parse_frame_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_frame(&bytes);
        touch_all_views(&bytes);
    }

    #[test]
    fn parse_frame_never_panics_on_likely_headers(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100), Just(0x88a8), any::<u16>()],
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        // Arbitrary bytes rarely form an IP header; start from a plausible EtherType and version.
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(&tail);
        if let Some(first) = frame.get_mut(14) {
            *first = match ethertype { 0x0800 => 0x45 | (*first & 0x0f), 0x86dd => 0x60 | (*first & 0x0f), _ => *first };
        }
        let _ = parse_frame(&frame);
        touch_all_views(&frame[14..]);
    }

    #[test]
    fn corrupted_valid_frames_never_panic(
        t in arb_tuple(),
        b in arb_builder(),
        payload_len in 0usize..64,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut buf = vec![0u8; 256];
        let len = build(&b, &t, &mut buf, payload_len);
        let frame = &mut buf[..len];
        for (at, value) in flips {
            let i = at % frame.len();
            frame[i] = value;
        }
        let _ = parse_frame(frame);
        let cut = cut % (frame.len() + 1);
        let _ = parse_frame(&frame[..cut]);
        for start in [14usize, 18, 22, 34, 38, 54, 58] {
            if let Some(rest) = frame.get(start..) {
                touch_all_views(rest);
            }
        }
    }

    #[test]
    fn built_frames_parse_back_to_what_was_built(
        t in arb_tuple(),
        b in arb_builder(),
        payload_len in 0usize..300,
    ) {
        let mut buf = vec![0xa5u8; 512];
        let len = build(&b, &t, &mut buf, payload_len);
        let frame = &buf[..len];
        let info = parse_frame(frame).unwrap();
        prop_assert_eq!(info.tuple, Some(t));
        prop_assert_eq!(info.vlan, b.vlan);
        prop_assert_eq!(info.dscp, b.dscp);
        prop_assert!(!info.fragment);
        let l2 = if b.vlan.is_some() { 18 } else { 14 };
        let l3_len = if t.src.is_ipv4() { 20 } else { 40 };
        let l4_len = if t.protocol() == IpProtocol::TCP { 20 } else { 8 };
        prop_assert_eq!(info.l3_offset, l2);
        prop_assert_eq!(info.l4_offset, Some(l2 + l3_len));
        prop_assert_eq!(info.payload_offset, Some(l2 + l3_len + l4_len));
        prop_assert_eq!(info.l3_end, l2 + l3_len + l4_len + payload_len);
        prop_assert_eq!(len, if b.pad { info.l3_end.max(60) } else { info.l3_end });

        let eth = EthernetFrame::new_checked(frame).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&eth).unwrap().src_addr, SRC_MAC);
        let l3 = &frame[info.l3_offset..];
        let l4 = match (t.src, t.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let ip = Ipv4Packet::new_checked(l3).unwrap();
                let repr = Ipv4Repr::parse(&ip).unwrap(); // verifies the header checksum
                prop_assert_eq!((repr.src_addr, repr.dst_addr, repr.ttl), (src, dst, b.hop_limit));
                ip.payload()
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Packet::new_checked(l3).unwrap();
                let repr = Ipv6Repr::parse(&ip).unwrap();
                prop_assert_eq!((repr.src_addr, repr.dst_addr, repr.hop_limit), (src, dst, b.hop_limit));
                ip.payload()
            }
            _ => unreachable!("arb_tuple gives one family"),
        };
        if t.protocol() == IpProtocol::TCP {
            let tcp = TcpPacket::new_checked(l4).unwrap();
            let repr = TcpRepr::parse(&tcp).unwrap();
            prop_assert_eq!((repr.src_port, repr.dst_port, repr.flags), (t.src_port, t.dst_port, b.tcp_flags));
            prop_assert_eq!(tcp.payload().len(), payload_len);
            if b.l4_checksum {
                prop_assert!(tcp.verify_checksum(t.src, t.dst));
            }
        } else {
            let udp = UdpPacket::new_checked(l4).unwrap();
            prop_assert_eq!(UdpRepr::parse(&udp).unwrap(), UdpRepr { src_port: t.src_port, dst_port: t.dst_port });
            prop_assert_eq!(udp.payload().len(), payload_len);
            if b.l4_checksum || t.src.is_ipv6() {
                prop_assert!(udp.checksum() != 0);
            }
            prop_assert!(udp.verify_checksum(t.src, t.dst));
        }
    }

    #[test]
    fn arp_frames_parse_back(sender in any::<[u8; 4]>(), target in any::<[u8; 4]>(), reply in any::<bool>()) {
        let (sender, target) = (Ipv4Addr::from(sender), Ipv4Addr::from(target));
        let mut buf = [0u8; 64];
        let len = if reply {
            build_arp_reply(&mut buf, SRC_MAC, sender, DST_MAC, target).unwrap()
        } else {
            build_arp_request(&mut buf, SRC_MAC, sender, target).unwrap()
        };
        prop_assert_eq!(len, 60);
        let info = parse_frame(&buf[..len]).unwrap();
        prop_assert_eq!(info.class, PacketClass::Arp);
        let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
        prop_assert_eq!(eth.dst_addr(), if reply { DST_MAC } else { EthernetAddress::BROADCAST });
        let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        prop_assert_eq!(repr.operation, if reply { ArpOperation::REPLY } else { ArpOperation::REQUEST });
        prop_assert_eq!(repr.source_hardware_addr, SRC_MAC);
        prop_assert_eq!(repr.source_protocol_addr, sender);
        prop_assert_eq!(repr.target_protocol_addr, target);
        prop_assert_eq!(repr.target_hardware_addr, if reply { DST_MAC } else { EthernetAddress::ZERO });
    }

    #[test]
    fn crc_hardware_equals_software(data in proptest::collection::vec(any::<u8>(), 0..512), init in any::<u32>()) {
        if let Some(hw) = crc::hash_crc_hw(&data, init) {
            prop_assert_eq!(hw, crc::hash_crc_sw(&data, init));
        }
    }

    #[test]
    fn symmetric_key_and_symmetric_tuple_agree_across_directions(t in arb_tuple()) {
        let key = &toeplitz::RSS_KEY_SYMMETRIC;
        prop_assert_eq!(t.rss_hash(key), t.reversed().rss_hash(key));
        prop_assert_eq!(t.symmetric(), t.reversed().symmetric());
        prop_assert_eq!(t.symmetric().crc_hash(7), t.reversed().symmetric().crc_hash(7));
    }
}

#[test]
fn builders_report_small_buffers_and_wrong_families() {
    let v4 = FiveTuple::new(
        Ipv4Addr::new(1, 1, 1, 1).into(),
        1,
        Ipv4Addr::new(2, 2, 2, 2).into(),
        2,
        IpProtocol::UDP,
    );
    let v6 = FiveTuple::new(
        Ipv6Addr::LOCALHOST.into(),
        1,
        Ipv6Addr::LOCALHOST.into(),
        2,
        IpProtocol::UDP,
    );
    let mixed = FiveTuple {
        dst: Ipv6Addr::LOCALHOST.into(),
        ..v4
    };
    let mut buf = [0u8; 256];
    assert_eq!(
        build_udp_ipv4(&mut buf[..59], SRC_MAC, DST_MAC, &v4, 0),
        Err(Error::BufferTooSmall { need: 60, have: 59 })
    );
    assert_eq!(build_udp_ipv4(&mut buf, SRC_MAC, DST_MAC, &v4, 0), Ok(60));
    assert_eq!(
        build_udp_ipv4(&mut buf, SRC_MAC, DST_MAC, &v4, 100),
        Ok(142)
    );
    assert!(matches!(
        build_udp_ipv4(&mut buf, SRC_MAC, DST_MAC, &v6, 0),
        Err(Error::AddressFamily { .. })
    ));
    assert!(matches!(
        build_tcp_ipv4(&mut buf, SRC_MAC, DST_MAC, &mixed, 0),
        Err(Error::AddressFamily { .. })
    ));
    let b = FrameBuilder::new(SRC_MAC, DST_MAC);
    assert!(matches!(
        b.udp(&mut buf, &mixed, 0),
        Err(Error::AddressFamily { .. })
    ));
    assert!(matches!(
        b.udp(&mut buf, &v4, 65_508),
        Err(Error::TooLong {
            layer: Layer::Ipv4,
            ..
        })
    ));
    assert!(matches!(
        b.udp(&mut buf, &v4, 65_507),
        Err(Error::BufferTooSmall { .. })
    ));
    assert!(matches!(
        b.udp(&mut buf, &v6, 65_528),
        Err(Error::TooLong {
            layer: Layer::Ipv6,
            ..
        })
    ));
    assert!(matches!(
        build_arp_request(
            &mut buf[..59],
            SRC_MAC,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED
        ),
        Err(Error::BufferTooSmall { .. })
    ));
    let unpadded = FrameBuilder { pad: false, ..b };
    assert_eq!(unpadded.udp(&mut buf[..42], &v4, 0), Ok(42));
}

#[test]
fn errors_name_the_layer() {
    let err = parse_frame(&[0u8; 10]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Ethernet header truncated: needs 14 bytes, 10 available"
    );
    let mut frame = [0u8; 34];
    frame[12] = 0x08;
    frame[14] = 0x45;
    frame[17] = 60; // total length 60 in a 20-byte packet
    let err = parse_frame(&frame).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPv4 header truncated: needs 60 bytes, 20 available"
    );
}

/// Rough per-operation costs; prints one JSON line per case. Run with
/// `cargo test --release -p shoal net::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "prints timings; run by hand in release mode"]
fn throughput_figures() {
    use std::hint::black_box;
    use std::time::Instant;

    fn time(name: &str, iters: u32, mut f: impl FnMut() -> u32) {
        let mut acc = 0u32;
        for _ in 0..iters / 10 {
            acc ^= f();
        }
        let start = Instant::now();
        for _ in 0..iters {
            acc ^= f();
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iters);
        println!(
            "{{\"case\":\"{name}\",\"ns_per_op\":{ns:.1},\"sink\":{}}}",
            acc & 1
        );
    }

    let b = FrameBuilder::new(SRC_MAC, DST_MAC);
    let t = FiveTuple::new(
        Ipv4Addr::new(10, 0, 0, 1).into(),
        1234,
        Ipv4Addr::new(10, 0, 0, 2).into(),
        80,
        IpProtocol::UDP,
    );
    let mut frame = [0u8; 128];
    let len = b.udp(&mut frame, &t, 18).unwrap();
    time("parse_frame_ipv4_udp_64B", 2_000_000, || {
        parse_frame(black_box(&frame[..len])).map_or(0, |i| i.l3_offset as u32)
    });
    time("build_udp_ipv4_64B", 2_000_000, || {
        b.udp(black_box(&mut frame), &t, 18).map_or(0, |l| l as u32)
    });
    let data = vec![0x5au8; 1500];
    for size in [13usize, 64, 1500] {
        time(&format!("hash_crc_sw_{size}B"), 1_000_000, || {
            crc::hash_crc_sw(black_box(&data[..size]), 0)
        });
        time(&format!("hash_crc_{size}B"), 1_000_000, || {
            crc::hash_crc(black_box(&data[..size]), 0)
        });
    }
    let key = t.key();
    time("flow_key_crc_40B", 2_000_000, || {
        black_box(&key).crc_hash(0)
    });
    let input = t.rss_input();
    let table = toeplitz::ToeplitzTable::new(&toeplitz::RSS_KEY_DEFAULT, toeplitz::MAX_INPUT_LEN);
    time("toeplitz_bitwise_v4_l4", 2_000_000, || {
        black_box(&input).hash(&toeplitz::RSS_KEY_DEFAULT)
    });
    time("toeplitz_table_v4_l4", 2_000_000, || {
        table.hash(black_box(input.as_bytes()))
    });
    time("ipv4_checksum_20B", 2_000_000, || {
        u32::from(checksum::data(black_box(&frame[14..34])))
    });
}

#[test]
fn packet_types_are_dpdks_bits() {
    let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
    let mut buf = [0u8; 256];
    let t = |proto: u8| FiveTuple {
        src: Ipv4Addr::new(10, 0, 0, 1).into(),
        dst: Ipv4Addr::new(10, 0, 0, 2).into(),
        src_port: 1,
        dst_port: 2,
        proto,
    };
    // RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_UDP, as rte_net_get_ptype says.
    let n = build_udp_ipv4(&mut buf, a, a, &t(17), 10).unwrap();
    assert_eq!(parse_frame(&buf[..n]).unwrap().ptype(), 0x0000_0211);
    let n = build_tcp_ipv4(&mut buf, a, a, &t(6), 10).unwrap();
    assert_eq!(parse_frame(&buf[..n]).unwrap().ptype(), 0x0000_0111);
    let n = build_arp_request(&mut buf, a, [10, 0, 0, 1].into(), [10, 0, 0, 2].into()).unwrap();
    assert_eq!(parse_frame(&buf[..n]).unwrap().ptype(), ptype::L2_ETHER_ARP);
    let v6 = FiveTuple {
        src: Ipv6Addr::LOCALHOST.into(),
        dst: Ipv6Addr::LOCALHOST.into(),
        src_port: 1,
        dst_port: 2,
        proto: 17,
    };
    let mut b = FrameBuilder::new(a, a);
    b.vlan = Some(VlanTci::new(0, false, 7));
    let n = b.udp(&mut buf, &v6, 10).unwrap();
    assert_eq!(
        parse_frame(&buf[..n]).unwrap().ptype(),
        ptype::L2_ETHER_VLAN | ptype::L3_IPV6 | ptype::L4_UDP
    );
}
