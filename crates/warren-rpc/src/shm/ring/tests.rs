use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use proptest::prelude::*;

use super::*;

fn rings(c2s: u64, s2c: u64) -> (Arc<Segment>, Layout) {
    let layout = Layout::new(c2s, s2c).expect("sizes");
    let (segment, _fd) = Segment::create(layout.segment_len()).expect("segment");
    assert!(layout.write_header(&segment));
    (Arc::new(segment), layout)
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<u8>),
    Read(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..9000).prop_map(Op::Write),
        (0usize..9000).prop_map(Op::Read),
    ];
    prop::collection::vec(op, 1..60)
}

proptest! {
    /// Whatever sizes are written and read, in any order and across any number of wraps, the
    /// bytes come out as a queue would give them, and no more than the ring holds.
    #[test]
    fn bytes_come_out_as_a_queue_gives_them(ops in ops(), direction in prop_oneof![Just(Direction::ClientToServer), Just(Direction::ServerToClient)]) {
        let (segment, layout) = rings(4096, 8192);
        let cap = if direction == Direction::ClientToServer { 4096 } else { 8192 };
        let mut producer = Producer::new(Arc::clone(&segment), &layout, direction);
        let mut consumer = Consumer::new(Arc::clone(&segment), &layout, direction);
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Write(bytes) => {
                    let n = producer.write(&bytes).expect("a good peer");
                    prop_assert_eq!(n, bytes.len().min(cap - model.len()));
                    model.extend(&bytes[..n]);
                }
                Op::Read(want) => {
                    let mut into = vec![0; want];
                    let n = consumer.read(&mut into).expect("a good peer");
                    let expected: Vec<u8> = model.drain(..want.min(model.len())).collect();
                    prop_assert_eq!(&into[..n], &expected[..]);
                }
            }
            prop_assert!(model.len() <= cap);
        }
    }

    /// A peer writing any values into the index words it owns, at any time, makes this side
    /// read at most what it asked for, or stop with `Poisoned`: never a panic, never a byte
    /// from outside its ring.
    #[test]
    fn scribbled_indices_never_escape(ops in ops(), scribbles in prop::collection::vec((any::<bool>(), any::<u64>()), 1..60)) {
        let (segment, layout) = rings(4096, 4096);
        let mut producer = Producer::new(Arc::clone(&segment), &layout, Direction::ClientToServer);
        let mut consumer = Consumer::new(Arc::clone(&segment), &layout, Direction::ClientToServer);
        let (mut producer_poisoned, mut consumer_poisoned) = (false, false);
        for (op, (at_tail, value)) in ops.into_iter().zip(scribbles) {
            // The peer of each end scribbles the word the other end reads.
            let word = if at_tail { 128 } else { 256 };
            segment.word64(word).expect("a word").store(value, Ordering::Release);
            match op {
                Op::Write(bytes) if !producer_poisoned => match producer.write(&bytes) {
                    Ok(n) => prop_assert!(n <= bytes.len() && n <= 4096),
                    Err(_) => producer_poisoned = true,
                },
                Op::Read(want) if !consumer_poisoned => {
                    let mut into = vec![0; want];
                    match consumer.read(&mut into) {
                        Ok(n) => prop_assert!(n <= want && n <= 4096),
                        Err(_) => consumer_poisoned = true,
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn an_index_going_back_or_jumping_is_poisoned_with_what_moved() {
    let (segment, layout) = rings(4096, 4096);
    let mut producer = Producer::new(Arc::clone(&segment), &layout, Direction::ServerToClient);
    let mut consumer = Consumer::new(Arc::clone(&segment), &layout, Direction::ServerToClient);
    assert_eq!(producer.write(&[7; 100]).expect("write"), 100);
    assert_eq!(consumer.read(&mut [0; 40]).expect("read"), 40);
    // The writer's index goes back below what was read.
    segment.word64(384).expect("tail").store(10, Ordering::Release);
    let err = consumer.available().expect_err("a tail that went back");
    assert!(err.to_string().contains("from 100 to 10"), "{err}");
    // The reader's index jumps past what was written.
    segment.word64(512).expect("head").store(5000, Ordering::Release);
    let err = producer.room().expect_err("a head past the tail");
    assert!(err.to_string().contains("reader's index"), "{err}");
}

#[test]
fn a_header_is_read_back_and_a_bad_one_is_refused_with_what_is_wrong() {
    let (segment, layout) = rings(4096, 65536);
    assert_eq!(Layout::read_header(&segment), Ok(layout));
    let scribble = |offset: usize, value: u64| {
        let (segment, _) = rings(4096, 65536);
        segment.word64(offset).expect("a word").store(value, Ordering::Relaxed);
        Layout::read_header(&segment).expect_err("a bad header")
    };
    assert!(scribble(0, 0).contains("magic"));
    assert!(scribble(32, 5000).contains("ring sizes"));
    assert!(scribble(32, 8192).contains("segment length"), "another size than the segment's");
    assert!(scribble(40, 0).contains("second ring's offset"));
    assert!(Layout::new(4096, 1 << 30).is_none());
    assert!(Layout::new(3000, 4096).is_none());
}

#[test]
fn frames_larger_than_a_step_cross_whole_and_a_full_ring_takes_what_fits() {
    let (segment, layout) = rings(4096, 65536);
    let mut producer = Producer::new(Arc::clone(&segment), &layout, Direction::ServerToClient);
    let mut consumer = Consumer::new(Arc::clone(&segment), &layout, Direction::ServerToClient);
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    // More than a step (published along the way), then more than the room left.
    assert_eq!(producer.write(&bytes[..50_000]).expect("write"), 50_000);
    assert_eq!(producer.write(&bytes[50_000..]).expect("write"), 65536 - 50_000, "what fits");
    let mut out = vec![0; 100_000];
    assert_eq!(consumer.read(&mut out).expect("read"), 65536);
    assert!(out[..65536] == bytes[..65536]);
    // Across the wrap, in two slices at once.
    let rest = &bytes[65536..];
    let n = producer.write_vectored(&[IoSlice::new(&rest[..10_000]), IoSlice::new(&rest[10_000..])]).expect("write");
    assert_eq!(n, rest.len());
    assert_eq!(consumer.read(&mut out[65536..]).expect("read"), rest.len());
    assert!(out == bytes, "every byte in order");
}
