//! Loopback TCP: 16-byte requests answered with 8 KiB replies, the network half of a GetPage
//! with nothing behind it. The most a page server on this machine can answer over loopback.
//!
//! Best effort, kept simple, and the fastest structure measured here (PLATFORM.md): one std
//! thread per connection on each side. The server answers every request found in one `read`
//! with one `write` of a prebuilt reply buffer (no per-reply copy). Each client keeps `pipeline`
//! requests in flight and, per `read`, sends as many new requests as replies completed, in one
//! `write`. Latency is measured per request from the send to the arrival of its last byte.

use crate::stats::Recorder;
use anyhow::Context;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use wal::PAGE_SIZE;

const REQUEST_BYTES: usize = 16;
/// Replies written per `write` call at most.
const REPLY_BATCH: usize = 64;
/// Replies received before this much time has passed are not counted (connection setup,
/// slow start).
const WARMUP: Duration = Duration::from_millis(200);

/// Runs the test; records `loopback_reply` latencies and returns replies per second.
pub fn run(
    connections: usize,
    pipeline: usize,
    duration: Duration,
    recorder: &mut Recorder,
) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let acceptor = thread::spawn(move || -> std::io::Result<Vec<thread::JoinHandle<()>>> {
        let mut servers = Vec::new();
        for _ in 0..connections {
            let (stream, _) = listener.accept()?;
            servers.push(thread::spawn(move || serve(stream)));
        }
        Ok(servers)
    });
    let start = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let stream = TcpStream::connect(addr);
            thread::spawn(move || client(stream?, pipeline, start, duration))
        })
        .collect();
    let mut replies = 0u64;
    for client in clients {
        let (count, measured) = client.join().expect("loopback client thread")?;
        replies += count;
        recorder.merge(&measured);
    }
    for server in acceptor.join().expect("loopback acceptor thread")? {
        server.join().expect("loopback server thread");
    }
    Ok(replies as f64 / duration.saturating_sub(WARMUP).as_secs_f64())
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let replies = vec![0xA5u8; REPLY_BATCH * PAGE_SIZE];
    let mut input = vec![0u8; 64 * 1024];
    let mut partial = 0usize;
    loop {
        let count = match stream.read(&mut input) {
            Ok(0) | Err(_) => return,
            Ok(count) => count,
        };
        let total = partial + count;
        let mut requests = total / REQUEST_BYTES;
        partial = total % REQUEST_BYTES;
        while requests > 0 {
            let batch = requests.min(REPLY_BATCH);
            if stream.write_all(&replies[..batch * PAGE_SIZE]).is_err() {
                return;
            }
            requests -= batch;
        }
    }
}

fn client(
    mut stream: TcpStream,
    pipeline: usize,
    start: Instant,
    duration: Duration,
) -> anyhow::Result<(u64, Recorder)> {
    stream.set_nodelay(true)?;
    let requests = vec![0x5Au8; pipeline * REQUEST_BYTES];
    let mut input = vec![0u8; 256 * 1024];
    let mut sent_at = VecDeque::with_capacity(pipeline);
    let mut recorder = Recorder::default();
    let (measure_from, end) = (start + WARMUP, start + duration);
    stream.write_all(&requests)?;
    let now = Instant::now();
    sent_at.extend(std::iter::repeat_n(now, pipeline));
    let (mut partial, mut counted) = (0usize, 0u64);
    while !sent_at.is_empty() {
        let count = stream.read(&mut input)?;
        anyhow::ensure!(count > 0, "loopback server closed early");
        let now = Instant::now();
        let total = partial + count;
        let done = total / PAGE_SIZE;
        partial = total % PAGE_SIZE;
        for _ in 0..done {
            let sent = sent_at.pop_front().context("a reply without a request")?;
            if sent >= measure_from && now <= end {
                recorder.record("loopback_reply", now - sent);
                counted += 1;
            }
        }
        if now < end && done > 0 {
            stream.write_all(&requests[..done * REQUEST_BYTES])?;
            sent_at.extend(std::iter::repeat_n(now, done));
        }
    }
    Ok((counted, recorder))
}
