//! `pagecore-bench smoke`: a short end-to-end check against a running server. Creates a tenant
//! and timeline, appends images and deltas, reads pages back at several LSNs (GetPage and
//! GetPages), checks every byte against an independent model, and fails on any mismatch.

use crate::credentials::Credentials;
use crate::model::Model;
use anyhow::{bail, ensure, Context};
use server::proto::{Role, Status};
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, PAGE_SIZE};

const BLOCKS: u32 = 16;
const ROUNDS: u64 = 4;

pub fn run(addr: &str, admin_addr: &str, auth: &Credentials) -> anyhow::Result<()> {
    let admin = auth.admin(admin_addr);
    let tenant = admin.create_tenant(None).context("creating tenant")?;
    let timeline = admin.create_timeline(tenant.tenant_id, None).context("creating timeline")?;
    let (tenant_id, timeline_id) = (tenant.tenant_id, timeline.timeline_id);
    let mut client =
        auth.client(addr, Role::Writer, (tenant_id, timeline_id), 1).context("connecting")?;
    let rel = RelTag { spc_oid: 1663, db_oid: 1, rel_number: 16384, fork: Fork::Main };
    let key = |block| PageKey { rel, block: BlockNumber(block) };
    let mut model = Model::default();
    let mut lsn = 0x100u64;
    let mut round_lsns = Vec::new();
    for round in 0..ROUNDS {
        let mut batch = Vec::new();
        for block in 0..BLOCKS {
            lsn += 0x40;
            let body = if round == 0 || (round + u64::from(block)) % 3 == 0 {
                let mut page = Box::new([0u8; PAGE_SIZE]);
                for (i, byte) in page.iter_mut().enumerate() {
                    *byte = (i as u64 ^ lsn ^ u64::from(block)) as u8;
                }
                RecordBody::Image(page)
            } else {
                let text = format!("round {round} block {block} lsn {lsn:x}");
                let offset = ((lsn * 7) % 8000) as u16;
                RecordBody::Delta(Delta::from_patches([(offset, text.as_bytes())])?)
            };
            batch.push(Record { lsn: Lsn(lsn), key: key(block), body });
        }
        for record in &batch {
            model.add(record);
        }
        let durable = client.append_wal(&batch).context("appending WAL")?;
        ensure!(durable >= Lsn(lsn), "durable LSN {durable} below appended {}", Lsn(lsn));
        round_lsns.push(Lsn(lsn));
    }
    let mut checked = 0;
    for &at in &round_lsns {
        for block in 0..BLOCKS {
            let expected = model.page_at(key(block), at).context("model has the page")?;
            let page = client.get_page(key(block), at, at).context("GetPage")?;
            if page[..] != expected[..] {
                bail!("page {} at {at} differs from the model", key(block));
            }
            checked += 1;
        }
        let blocks: Vec<BlockNumber> = (0..BLOCKS).map(BlockNumber).collect();
        for (block, result) in client.get_pages(rel, at, &blocks)?.into_iter().enumerate() {
            let expected = model.page_at(key(block as u32), at).context("model has the page")?;
            match result {
                Ok(page) if page[..] == expected[..] => checked += 1,
                Ok(_) => bail!("GetPages block {block} at {at} differs from the model"),
                Err(status) => bail!("GetPages block {block} at {at}: {status}"),
            }
        }
    }
    let nblocks = client.rel_size(rel, Lsn(lsn))?;
    ensure!(nblocks == BLOCKS, "RelSize {nblocks}, expected {BLOCKS}");
    let before_first = client.get_page(key(0), Lsn(0x101), Lsn(0x101));
    ensure!(
        before_first.as_ref().err().and_then(|e| e.status()) == Some(Status::NotFound),
        "a read before the first record must be NotFound, got {before_first:?}"
    );
    println!(
        "smoke: ok: tenant {} timeline {}: {} records appended, {checked} pages checked at {} LSNs",
        tenant.tenant_id,
        timeline.timeline_id,
        BLOCKS as u64 * ROUNDS,
        round_lsns.len()
    );
    Ok(())
}
