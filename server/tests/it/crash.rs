//! A seeded, repeatable crash harness: many `kill -9` cycles at random points under a mixed
//! read/write load on several tenants (on both cores, with flushes, image sets and merges
//! running). Each restart is checked against a client-side model: every acknowledged record is
//! readable at its LSN, an unacknowledged batch is all there or not at all, and no read, during
//! the load or after the restart, ever returns a wrong page.
//!
//! `SEED=<n>` replays a run; `CRASH_CYCLES=<n>` runs more cycles (CI runs a few).

use crate::harness::TestServer;
use crate::support::{random_batch, Model, Rng};
use server::client::Client;
use server::proto::Role;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wal::{Lsn, Record, TenantId, TimelineId};

const STORE: &str = "[store]\nflush_threshold_bytes = 65536\nflush_interval_ms = 300\n\
    image_after_delta_layers = 2\nmerge_delta_layers_after = 3\nimage_layer_max_pages = 16\n\
    background_tick_ms = 40\npitr_lsn_window = 0\n";

struct TenantState {
    tenant: TenantId,
    timeline: TimelineId,
    model: Mutex<Model>,
    /// Last acknowledged LSN (readers only read at or below it).
    acked: AtomicU64,
    in_flight: Mutex<Vec<Record>>,
}

#[derive(Default)]
struct Totals {
    batches_acked: AtomicU64,
    reads_checked: AtomicU64,
}

#[test]
fn kill9_cycles_under_mixed_load_lose_nothing() {
    let mut rng = Rng::from_env("kill9_cycles_under_mixed_load_lose_nothing");
    let cycles: usize =
        std::env::var("CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(6);
    let mut server = TestServer::start_with(2, STORE);
    let tenants: Vec<Arc<TenantState>> = (0..3)
        .map(|_| {
            let (tenant, timeline) = server.create_tenant();
            Arc::new(TenantState {
                tenant: tenant.tenant_id,
                timeline,
                model: Mutex::new(Model::default()),
                acked: AtomicU64::new(0),
                in_flight: Mutex::new(Vec::new()),
            })
        })
        .collect();
    let totals = Arc::new(Totals::default());
    let mut recovered_batches = 0;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, state) in tenants.iter().enumerate() {
            let seed = rng.next();
            threads.push(spawn_writer(
                &server.addr,
                state.clone(),
                totals.clone(),
                stop.clone(),
                seed,
            ));
            threads.push(spawn_reader(
                &server.addr,
                state.clone(),
                totals.clone(),
                stop.clone(),
                seed ^ i as u64,
            ));
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(700)));
        server.kill9();
        stop.store(true, Ordering::Release);
        for thread in threads {
            thread.join().expect("no wrong page during the load");
        }
        server.restart_clean_after_stop();
        for state in &tenants {
            recovered_batches += check_recovery(&server, state, cycle);
            verify(&server, state, &mut rng);
        }
    }
    let batches = totals.batches_acked.load(Ordering::Relaxed);
    let reads = totals.reads_checked.load(Ordering::Relaxed);
    println!(
        "crash harness: {cycles} kill -9 cycles, {batches} acknowledged batches, \
         {recovered_batches} unacknowledged batches recovered whole, {reads} reads checked \
         during load, 0 lost"
    );
    assert!(batches > cycles as u64, "the load made progress");
}

fn spawn_writer(
    addr: &str,
    state: Arc<TenantState>,
    totals: Arc<Totals>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let mut rng = Rng::seeded(seed);
        let Ok(mut writer) = Client::connect(&addr, Role::Writer, state.tenant, state.timeline, 1)
        else {
            return;
        };
        let mut lsn = writer.hello().last_lsn.max(0x100);
        while !stop.load(Ordering::Acquire) {
            let len = 1 + rng.below(12) as usize;
            let batch = random_batch(&mut rng, &mut lsn, 24, len);
            *state.in_flight.lock().unwrap() = batch.clone();
            match writer.append_wal(&batch) {
                Ok(_) => {
                    state.model.lock().unwrap().add(&batch);
                    state.in_flight.lock().unwrap().clear();
                    state.acked.store(batch.last().unwrap().lsn.0, Ordering::Release);
                    totals.batches_acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => return, // killed: the batch stays in flight
            }
        }
    })
}

fn spawn_reader(
    addr: &str,
    state: Arc<TenantState>,
    totals: Arc<Totals>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let mut rng = Rng::seeded(seed);
        let Ok(mut reader) = Client::connect(&addr, Role::Reader, state.tenant, state.timeline, 0)
        else {
            return;
        };
        while !stop.load(Ordering::Acquire) {
            let acked = state.acked.load(Ordering::Acquire);
            if acked == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let model = state.model.lock().unwrap().clone();
            let lsns = model.lsns();
            let keys: Vec<_> = model.keys().collect();
            let at = lsns[rng.below(lsns.len() as u64) as usize].min(Lsn(acked));
            let key = keys[rng.below(keys.len() as u64) as usize];
            match (reader.get_page(key, at, at), model.page_at(key, at)) {
                (Ok(page), Some(expected)) => {
                    assert!(page[..] == expected[..], "wrong page {key} at {at} during load")
                }
                (Ok(_), None) => panic!("{key} at {at} must not exist"),
                (Err(error), _) if error.status().is_none() => return, // killed
                (Err(error), Some(_)) => panic!("{key} at {at}: {error}"),
                (Err(_), None) => {}
            }
            totals.reads_checked.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Returns 1 if the batch in flight at the kill was recovered (whole), 0 if it was not.
fn check_recovery(server: &TestServer, state: &TenantState, cycle: usize) -> usize {
    let reader = server.connect(Role::Reader, state.tenant, state.timeline, 0);
    let recovered = Lsn(reader.hello().last_lsn);
    let acked = Lsn(state.acked.load(Ordering::Acquire));
    let in_flight = std::mem::take(&mut *state.in_flight.lock().unwrap());
    assert!(recovered >= acked, "cycle {cycle}: acknowledged records lost ({recovered} < {acked})");
    if recovered == acked {
        return 0;
    }
    let last = in_flight.last().map(|r| r.lsn);
    assert_eq!(Some(recovered), last, "cycle {cycle}: half a batch recovered");
    state.model.lock().unwrap().add(&in_flight);
    state.acked.store(recovered.0, Ordering::Release);
    1
}

fn verify(server: &TestServer, state: &TenantState, rng: &mut Rng) {
    let model = state.model.lock().unwrap().clone();
    let lsns = model.lsns();
    if lsns.is_empty() {
        return;
    }
    let keys: Vec<_> = model.keys().collect();
    let mut reader = server.connect(Role::Reader, state.tenant, state.timeline, 0);
    let last = *lsns.last().unwrap();
    for key in &keys {
        let expected = model.page_at(*key, last).unwrap();
        assert!(reader.get_page(*key, last, last).unwrap()[..] == expected[..], "{key} at {last}");
    }
    for _ in 0..40 {
        let at = lsns[rng.below(lsns.len() as u64) as usize];
        let key = keys[rng.below(keys.len() as u64) as usize];
        match model.page_at(key, at) {
            Some(expected) => {
                assert!(reader.get_page(key, at, at).unwrap()[..] == expected[..], "{key} at {at}")
            }
            None => assert!(reader.get_page(key, at, at).is_err()),
        }
    }
}
