//! Page encryption throughput on one core: `cargo run --release -p crypto --example page_speed`.
//!
//! Measures, on 8 KiB pages, the chosen mode (AES-256-GCM seal and open through `PageSealer` /
//! `PageOpener`) and, for the mode decision in `crypto/src/page.rs`, the two halves of the
//! rejected XTS + keyed-checksum design: raw AES-256 blocks (an upper bound for XTS) and
//! HMAC-SHA256 (the integrity pass XTS would need). Each figure is the median of 5 runs of
//! `PAGE_SPEED_SECONDS` (default 1) seconds, in GB/s (10^9 bytes). Open copies the sealed page
//! into the buffer before each call (an 8 KiB copy in L1, a few percent of the time), because
//! opening in place consumes the ciphertext.

use std::time::{Duration, Instant};

use aes::cipher::consts::U16;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use crypto::{FileId, PageBuf, PageSealer, PAGE_SIZE_BYTES};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const RUN_COUNT: usize = 5;

fn main() {
    let seconds: f64 =
        std::env::var("PAGE_SPEED_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let run_time = Duration::from_secs_f64(seconds);

    let mut sealer = PageSealer::generate(FileId(7)).expect("OS random source");
    let opener = sealer.opener();
    let mut page: Box<PageBuf> = Box::new([0x5a; PAGE_SIZE_BYTES]);
    let mut next_index = 0u64;
    report("aes-256-gcm seal (PageSealer)", run_time, || {
        let tag = sealer.seal_page(next_index, &mut page);
        next_index += 1;
        std::hint::black_box(tag);
    });

    let mut sealed: Box<PageBuf> = Box::new([0x5a; PAGE_SIZE_BYTES]);
    let sealed_index = next_index;
    let tag = sealer.seal_page(sealed_index, &mut sealed);
    report("aes-256-gcm open (PageOpener)", run_time, || {
        page.copy_from_slice(&sealed[..]);
        opener.open_page(sealed_index, &mut page, &tag).expect("authentic page");
        std::hint::black_box(&page);
    });

    let aes = aes::Aes256::new(&Array::from([0x11u8; 32]));
    let mut blocks = vec![Array::from([0u8; 16]); PAGE_SIZE_BYTES / 16];
    report("aes-256 raw blocks (XTS upper bound)", run_time, || {
        aes.encrypt_blocks(&mut blocks);
        std::hint::black_box(&blocks);
    });

    let xts = XtsSketch::new([0x11; 32], [0x22; 32]);
    check_xts_sketch(&xts);
    report("aes-256-xts sketch over encrypt_blocks", run_time, || {
        xts.encrypt_page(5, &mut page, &mut blocks);
        std::hint::black_box(&page);
    });

    let hmac_key = [0x22u8; 32];
    report("hmac-sha256 (XTS integrity pass)", run_time, || {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&hmac_key).expect("any key length");
        mac.update(&page[..]);
        std::hint::black_box(mac.finalize().into_bytes());
    });
}

/// XTS-AES-256 encryption of one page (IEEE 1619), only to measure the rejected design: tweaks
/// computed first (a shift and xor each), then one multi-block AES call, then the xors.
struct XtsSketch {
    data_cipher: aes::Aes256,
    tweak_cipher: aes::Aes256,
}

impl XtsSketch {
    fn new(data_key: [u8; 32], tweak_key: [u8; 32]) -> XtsSketch {
        XtsSketch {
            data_cipher: aes::Aes256::new(&Array::from(data_key)),
            tweak_cipher: aes::Aes256::new(&Array::from(tweak_key)),
        }
    }

    fn encrypt_page(&self, sector: u128, page: &mut PageBuf, tweaks: &mut [Array<u8, U16>]) {
        let mut tweak = Array::from(sector.to_le_bytes());
        self.tweak_cipher.encrypt_block(&mut tweak);
        let mut t = u128::from_le_bytes(tweak.into());
        for (chunk, scratch) in page.chunks_exact_mut(16).zip(tweaks.iter_mut()) {
            let mut block = [0u8; 16];
            block.copy_from_slice(chunk);
            *scratch = Array::from((u128::from_le_bytes(block) ^ t).to_le_bytes());
            chunk.copy_from_slice(&t.to_le_bytes());
            t = (t << 1) ^ if t >> 127 == 1 { 0x87 } else { 0 };
        }
        self.data_cipher.encrypt_blocks(tweaks);
        for (chunk, block) in page.chunks_exact_mut(16).zip(tweaks.iter()) {
            for (out, b) in chunk.iter_mut().zip(block.iter()) {
                *out ^= b;
            }
        }
    }
}

/// The sketch matches XTS-AES-256 as computed by Python `cryptography` 48 (OpenSSL).
fn check_xts_sketch(xts: &XtsSketch) {
    let mut page: Box<PageBuf> = Box::new([0; PAGE_SIZE_BYTES]);
    for (i, byte) in page.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    let mut scratch = vec![Array::from([0u8; 16]); PAGE_SIZE_BYTES / 16];
    xts.encrypt_page(5, &mut page, &mut scratch);
    assert_eq!(page[..16], hex16(0x00756833e533c831cfde47d05ec55930));
    assert_eq!(page[PAGE_SIZE_BYTES - 16..], hex16(0xa5e1d09e191d4cdd1cceed5c2bb4b1cb));
}

fn hex16(value: u128) -> [u8; 16] {
    value.to_be_bytes()
}

/// Runs `op` (one 8 KiB page per call) for `run_time`, `RUN_COUNT` times, and prints the median.
fn report(name: &str, run_time: Duration, mut op: impl FnMut()) {
    for _ in 0..1000 {
        op(); // warm-up: caches, branch predictors, CPU frequency
    }
    let mut rates_gb_per_s: Vec<f64> = (0..RUN_COUNT)
        .map(|_| {
            let start = Instant::now();
            let mut page_count = 0u64;
            while start.elapsed() < run_time {
                for _ in 0..64 {
                    op();
                }
                page_count += 64;
            }
            let bytes = page_count as f64 * PAGE_SIZE_BYTES as f64;
            bytes / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates_gb_per_s.sort_by(f64::total_cmp);
    let median = rates_gb_per_s[RUN_COUNT / 2];
    let min = rates_gb_per_s[0];
    let max = rates_gb_per_s[RUN_COUNT - 1];
    println!("{name:40} {median:6.2} GB/s  (min {min:.2}, max {max:.2}; 8 KiB pages, 1 core)");
}
