//! `pagecore-bench init`: creates tenants and loads pgbench's tables into each through the page
//! protocol, as `AppendWal` page images, then records what it made in the state file.
//!
//! Each tenant is loaded by its own thread over one writer connection (term 1). Images go in
//! `AppendWal` batches of [`IMAGES_PER_APPEND`] (under the 1 MiB frame limit), two batches in
//! flight so the next batch is on the wire while the server syncs the previous one. LSNs start
//! at `0/1000000` and advance by each record's encoded size, as a WAL position would.

use crate::credentials::Credentials;
use crate::layout::{initial_image, Table, LOADED_TABLES};
use crate::report::{Interval, Report};
use crate::state::{State, TenantState};
use crate::stats::Recorder;
use crate::Outputs;
use anyhow::{bail, Context};
use serde_json::json;
use server::client::Client;
use server::proto::{Role, Status};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use wal::{BlockNumber, Lsn, PageKey, Record, RecordBody, TenantId, TimelineId};

/// Page images per `AppendWal`: 120 × 8,224 encoded bytes stays under the 1 MiB frame limit.
const IMAGES_PER_APPEND: usize = 120;
/// First LSN of a fresh timeline's load (PostgreSQL's WAL starts near here too).
const FIRST_LSN: Lsn = Lsn(0x0100_0000);
pub const INIT_WRITER_TERM: u64 = 1;

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Scale factor: 100,000 accounts (1,640 pages) per unit, as pgbench's.
    #[arg(long, short = 's', default_value_t = 1)]
    pub scale: u64,
    /// Tenants to create, each loaded with the whole data set.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Where to record the created tenants for `run`.
    #[arg(long, default_value = "pagecore-bench.json")]
    pub state: PathBuf,
}

struct Loaded {
    tenant: TenantState,
    pages: u64,
    recorder: Recorder,
}

pub fn run(
    addr: &str,
    admin_addr: &str,
    auth: &Credentials,
    args: &InitArgs,
    outputs: &Outputs,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.scale >= 1, "--scale must be at least 1");
    anyhow::ensure!(args.tenants >= 1, "--tenants must be at least 1");
    let admin = auth.admin(admin_addr);
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..args.tenants {
        let tenant = admin.create_tenant(None).context("creating a tenant")?;
        let timeline =
            admin.create_timeline(tenant.tenant_id, None).context("creating a timeline")?;
        ids.push((tenant.tenant_id, timeline.timeline_id));
    }
    let loaders: Vec<_> = ids
        .into_iter()
        .map(|(tenant_id, timeline_id)| {
            let (addr, scale, auth) = (addr.to_string(), args.scale, auth.clone());
            std::thread::spawn(move || load(&addr, &auth, tenant_id, timeline_id, scale))
        })
        .collect();
    let mut loaded = Vec::new();
    for loader in loaders {
        loaded.push(loader.join().expect("loader thread")?);
    }
    let elapsed = started.elapsed();
    let mut total = Recorder::default();
    let mut pages = 0;
    for tenant in &loaded {
        total.merge(&tenant.recorder);
        pages += tenant.pages;
        println!(
            "init: tenant {} timeline {}: {} pages, LSN {}..{}",
            tenant.tenant.tenant_id,
            tenant.tenant.timeline_id,
            tenant.pages,
            tenant.tenant.load_start_lsn,
            tenant.tenant.load_end_lsn
        );
    }
    let state = State {
        schema_version: 1,
        scale: args.scale,
        writer_term: INIT_WRITER_TERM,
        addr: addr.to_string(),
        admin_addr: admin_addr.to_string(),
        tenants: loaded.into_iter().map(|l| l.tenant).collect(),
    };
    state.save(&args.state)?;
    let throughput = pages as f64 / elapsed.as_secs_f64();
    println!(
        "init: done in {:.2} s: {} tenants x scale {}, {pages} pages ({throughput:.0} pages/s, {:.1} MB/s); state in {}",
        elapsed.as_secs_f64(), args.tenants, args.scale, throughput * 8192.0 / 1e6, args.state.display()
    );
    let mut extra = serde_json::Map::new();
    extra.insert("pages".into(), json!(pages));
    extra.insert("tenants".into(), serde_json::to_value(&state.tenants)?);
    let report = Report {
        command: "init",
        config: json!({ "addr": addr, "admin_addr": admin_addr, "scale": args.scale, "tenants": args.tenants,
                        "state": args.state }),
        started: started_at,
        elapsed,
        throughput_per_s: throughput,
        throughput_unit: "pages/s",
        intervals: vec![Interval::new(Duration::ZERO, elapsed, pages, &total)],
        total,
        extra,
    };
    report.write_outputs(outputs)
}

/// Loads one tenant; returns what the state file records and the append latencies.
fn load(
    addr: &str,
    auth: &Credentials,
    tenant_id: TenantId,
    timeline_id: TimelineId,
    scale: u64,
) -> anyhow::Result<Loaded> {
    let role = Role::Writer;
    let mut client = auth
        .client(addr, role, (tenant_id, timeline_id), INIT_WRITER_TERM)
        .with_context(|| format!("connecting as writer for tenant {tenant_id}"))?;
    let mut lsn = Lsn(client.hello().last_lsn).max(FIRST_LSN);
    let mut recorder = Recorder::default();
    let mut in_flight: VecDeque<Instant> = VecDeque::new();
    let mut batch = Vec::with_capacity(IMAGES_PER_APPEND);
    let mut first_lsn = None;
    let mut pages = 0;
    let mut send = |client: &mut Client,
                    batch: &mut Vec<Record>,
                    in_flight: &mut VecDeque<Instant>|
     -> anyhow::Result<()> {
        if !batch.is_empty() {
            client.send_append_wal(batch)?;
            in_flight.push_back(Instant::now());
            batch.clear();
        }
        while in_flight.len() > 1 {
            await_ack(client, in_flight, &mut recorder)?;
        }
        Ok(())
    };
    for table in LOADED_TABLES {
        for block in 0..table.pages(scale) {
            let record_lsn =
                lsn.advanced_by((wal::record::RECORD_HEADER_SIZE + wal::PAGE_SIZE) as u64);
            lsn = record_lsn;
            first_lsn.get_or_insert(record_lsn);
            let key = PageKey { rel: table.rel(), block: BlockNumber(block as u32) };
            batch.push(Record {
                lsn: record_lsn,
                key,
                body: RecordBody::Image(initial_image(table, block, scale, record_lsn)),
            });
            pages += 1;
            if batch.len() == IMAGES_PER_APPEND {
                send(&mut client, &mut batch, &mut in_flight)?;
            }
        }
    }
    // History starts empty but exists, as after pgbench's initialisation.
    lsn = lsn.advanced_by(64);
    let history = PageKey { rel: Table::History.rel(), block: BlockNumber(0) };
    batch.push(Record { lsn, key: history, body: RecordBody::RelSize(0) });
    send(&mut client, &mut batch, &mut in_flight)?;
    while !in_flight.is_empty() {
        await_ack(&mut client, &mut in_flight, &mut recorder)?;
    }
    let tenant = TenantState {
        tenant_id: tenant_id.to_string(),
        timeline_id: timeline_id.to_string(),
        load_start_lsn: first_lsn.unwrap_or(lsn).to_string(),
        load_end_lsn: lsn.to_string(),
    };
    Ok(Loaded { tenant, pages, recorder })
}

fn await_ack(
    client: &mut Client,
    in_flight: &mut VecDeque<Instant>,
    recorder: &mut Recorder,
) -> anyhow::Result<()> {
    let response = client.recv().context("waiting for an AppendWal answer")?;
    let sent = in_flight.pop_front().context("an answer nobody waited for")?;
    recorder.record("append_wal", sent.elapsed());
    if response.status != Status::Ok {
        bail!(
            "AppendWal refused: {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    Ok(())
}
