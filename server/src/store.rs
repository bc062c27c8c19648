//! Background work of one timeline's page store: flushing the in-memory layer into delta layer
//! files, writing image sets so reads stay bounded, and garbage-collecting what retention no
//! longer needs.
//!
//! It runs in the core's background task queue (lower CPU shares than request handling) and
//! writes under the per-core byte budget of `layer_io::write_layer`, so foreground reads keep
//! their latency. Flush, image creation and GC of one timeline never overlap (`store_busy`).
//!
//! Crash safety, step by step:
//! - flush: the delta layer file is whole on disk (temp + sync + rename + dir sync) before it
//!   joins the layer map; only then may WAL segments below it be deleted. A crash before the
//!   rename leaves a `.tmp` (removed at open) and the WAL still has every record.
//! - image set: each image file is whole before it is used; the set counts as complete (and so
//!   as a GC base) only once `timeline.json` lists its LSN.
//! - GC: `timeline.json` gets the new horizon before any file is unlinked, so after a crash no
//!   read is served below what may be gone.

use crate::layer_io::LayerFile;
use crate::layer_io::{join_all, write_layer, WriteBudget};
use crate::read::{get_page, rel_size, ReadError, ReadStats};
use crate::runtime::sync_dir;
use crate::timeline::{sort_layers, Timeline};
use cache::layer::{LayerKind, LayerWriter};
use cache::PageBody;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};
use wal::{Lsn, PageKey, PAGE_SIZE};

/// Pages rebuilt concurrently while writing an image set.
const REBUILD_IN_FLIGHT: usize = 32;

/// What an explicit store operation (admin API) should do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoreOp {
    Flush,
    Compact,
    Gc,
}

/// The per-timeline background loop.
pub(crate) async fn background(timeline: Rc<Timeline>) {
    let tick = Duration::from_millis(timeline.config.store.background_tick_ms);
    loop {
        let _ = glommio::timer::timeout(tick, async {
            timeline.store_wake.wait().await;
            Ok(())
        })
        .await;
        if timeline.shutting_down() || timeline.broken().is_some() {
            return;
        }
        sample_lsn(&timeline);
        if let Err(why) = run(&timeline, None).await {
            crate::metrics::store_error();
            tracing::warn!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id, %why,
                "background store work failed; retrying at the next tick");
        }
    }
}

/// Runs `op` now (admin API), or whatever is due (`None`, the background loop).
pub(crate) async fn run(timeline: &Rc<Timeline>, op: Option<StoreOp>) -> Result<String, String> {
    while timeline.store_busy.replace(true) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let result = run_locked(timeline, op).await;
    timeline.store_busy.set(false);
    result
}

async fn run_locked(timeline: &Rc<Timeline>, op: Option<StoreOp>) -> Result<String, String> {
    match op {
        Some(StoreOp::Flush) => flush(timeline).await.map(|done| format!("flushed: {done}")),
        Some(StoreOp::Compact) => {
            flush(timeline).await?;
            let lsn = create_images(timeline).await?;
            let merged = merge_deltas(timeline).await?;
            Ok(format!("image set at: {lsn:?}; delta layers merged: {merged}"))
        }
        Some(StoreOp::Gc) => gc(timeline).await.map(|removed| format!("layers removed: {removed}")),
        None => {
            if flush_due(timeline) {
                flush(timeline).await?;
            }
            if images_due(timeline) {
                create_images(timeline).await?;
            }
            gc(timeline).await?;
            merge_deltas(timeline).await?;
            Ok(String::new())
        }
    }
}

fn flush_due(timeline: &Timeline) -> bool {
    if timeline.frozen.borrow().is_some() {
        return true; // a failed flush to retry
    }
    let open = timeline.open.borrow();
    if open.is_empty() {
        return false;
    }
    let settings = &timeline.config.store;
    let age = timeline.open_since.get().map_or(Duration::ZERO, |t| t.elapsed());
    open.stats().payload_bytes >= settings.flush_threshold_bytes
        || age >= Duration::from_millis(settings.flush_interval_ms)
}

fn budget(timeline: &Timeline) -> WriteBudget {
    WriteBudget { bytes_per_sec: timeline.config.store.background_bytes_per_sec }
}

/// Freezes the open layer (unless a frozen one waits for a retry) and writes it as a delta
/// layer. Returns whether anything was written.
async fn flush(timeline: &Rc<Timeline>) -> Result<bool, String> {
    let retry = timeline.frozen.borrow().clone();
    let frozen = match retry {
        Some(frozen) => frozen,
        None => {
            let mut open = timeline.open.borrow_mut();
            if open.is_empty() {
                return Ok(false);
            }
            let last = open.last_lsn();
            let frozen = Rc::new(std::mem::replace(&mut *open, cache::InMemoryLayer::new(last)));
            timeline.open_since.set(None);
            *timeline.frozen.borrow_mut() = Some(frozen.clone());
            frozen
        }
    };
    let started = Instant::now();
    let (start, end) = (frozen.lsn_start(), frozen.last_lsn());
    let mut writer =
        LayerWriter::new(LayerKind::Delta, timeline.tenant_id, timeline.timeline_id, start, end);
    let mut payload = Vec::new();
    for (key, versions) in frozen.pages() {
        for version in versions {
            match &version.body {
                PageBody::Image(page) => writer.add_image(key, version.lsn, page),
                PageBody::Delta(delta) => {
                    payload.clear();
                    delta.encode_payload(&mut payload);
                    writer.add_delta(key, version.lsn, &payload);
                }
            }
        }
    }
    for event in timeline.rels.borrow().events_in(start, end) {
        writer.add_rel_event(event);
    }
    let (bytes, _) = writer.finish(new_sealer(timeline).await?.as_mut());
    let name = format!("{:016X}-{:016X}.delta", start.0, end.0);
    store_layer(timeline, &name, &bytes, false).await.map_err(|e| format!("flushing {e}"))?;
    *timeline.frozen.borrow_mut() = None;
    timeline.disk_consistent.set(end);
    timeline.counters.flushes.set(timeline.counters.flushes.get() + 1);
    timeline.nudge_wal();
    tracing::info!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id, layer = %name,
        bytes = bytes.len(), versions = frozen.stats().versions,
        elapsed_ms = started.elapsed().as_millis() as u64, "in-memory layer flushed");
    Ok(true)
}

/// A sealer for a new layer file of an encrypted tenant (its DEK durably in the key manifest
/// first); `None` for a plaintext tenant. Fails while the tenant's keys are unavailable.
async fn new_sealer(timeline: &Timeline) -> Result<Option<crypto::PageSealer>, String> {
    match &timeline.keys {
        None => Ok(None),
        Some(keys) => keys.new_sealer().await.map(Some).map_err(|e| format!("layer key: {e}")),
    }
}

/// Deletes a layer file and forgets its data key (dropped from the manifest's next write).
fn remove_layer_file(timeline: &Timeline, layer: &LayerFile) -> std::io::Result<()> {
    crate::runtime::remove_file(layer.path())?;
    if let (Some(keys), Some(file_id)) = (&timeline.keys, layer.file_id()) {
        keys.forget(file_id);
    }
    Ok(())
}

/// Writes layer file `name` durably under the background budget and adds it to the layer map.
async fn store_layer(
    timeline: &Timeline,
    name: &str,
    bytes: &[u8],
    image: bool,
) -> Result<(), String> {
    let keys = timeline.keys.as_ref();
    let layer = write_layer(&timeline.dir.join("layers"), name, bytes, budget(timeline), keys)
        .await
        .map_err(|e| format!("{name}: {e:?}"))?;
    crate::metrics::layer_written(image, bytes.len());
    let mut layers = timeline.layers.borrow_mut();
    layers.push(Rc::new(layer));
    sort_layers(&mut layers);
    Ok(())
}

fn newest_image_lsn(timeline: &Timeline) -> Lsn {
    Lsn(timeline.meta.borrow().image_lsns.iter().copied().max().unwrap_or(0))
}

fn images_due(timeline: &Timeline) -> bool {
    let above = newest_image_lsn(timeline);
    let deltas_above = timeline
        .layers
        .borrow()
        .iter()
        .filter(|l| l.kind() == LayerKind::Delta && l.index.header.lsn_end > above)
        .count();
    deltas_above >= timeline.config.store.image_after_delta_layers
}

/// Writes an image set at the disk-consistent LSN: every page of this timeline's layer files,
/// rebuilt through the read path, in files of at most `image_layer_max_pages` pages.
async fn create_images(timeline: &Rc<Timeline>) -> Result<Option<Lsn>, String> {
    let at = timeline.disk_consistent.get();
    if at == Lsn::INVALID || at <= newest_image_lsn(timeline) {
        return Ok(None);
    }
    let started = Instant::now();
    let keys: BTreeSet<PageKey> = timeline
        .layers
        .borrow()
        .iter()
        .flat_map(|l| {
            l.index.entries.iter().filter(|e| e.lsn <= at).map(|e| e.key).collect::<Vec<_>>()
        })
        .collect();
    let keys: Vec<PageKey> = keys.into_iter().collect();
    let max_pages = timeline.config.store.image_layer_max_pages;
    let mut pages: Vec<Box<[u8; PAGE_SIZE]>> =
        (0..REBUILD_IN_FLIGHT).map(|_| Box::new([0u8; PAGE_SIZE])).collect();
    let mut files = 0;
    // Relations but no pages: the set is one file holding the relation snapshot alone.
    let chunks: Vec<&[PageKey]> =
        if keys.is_empty() { vec![&[]] } else { keys.chunks(max_pages).collect() };
    for (chunk_index, chunk) in chunks.into_iter().enumerate() {
        let mut writer =
            LayerWriter::new(LayerKind::Image, timeline.tenant_id, timeline.timeline_id, at, at);
        // Truncated or dropped by then: no page to keep.
        let live: Vec<PageKey> = chunk
            .iter()
            .copied()
            .filter(|key| rel_size(timeline, key.rel, at).is_some_and(|n| key.block.0 < n))
            .collect();
        for group in live.chunks(REBUILD_IN_FLIGHT) {
            // Rebuild a group of pages with all their reads in flight together.
            type Rebuild<'a> = Pin<Box<dyn Future<Output = Result<ReadStats, ReadError>> + 'a>>;
            let rebuilds: Vec<Rebuild<'_>> = group
                .iter()
                .zip(pages.iter_mut())
                .map(|(key, page)| Box::pin(get_page(timeline, *key, at, page)) as Rebuild<'_>)
                .collect();
            for (key, result) in group.iter().zip(join_all(rebuilds).await) {
                result.map_err(|e| format!("rebuilding {key} at {at}: {e:?}"))?;
            }
            for (key, page) in group.iter().zip(&pages) {
                writer.add_image(*key, at, page);
            }
        }
        // Flushing goes first: appends wait on it when the in-memory layer is full.
        if flush_due(timeline) {
            flush(timeline).await?;
        }
        if chunk_index == 0 {
            for event in timeline.rels.borrow().snapshot_at(at) {
                writer.add_rel_event(event);
            }
        }
        let (bytes, _) = writer.finish(new_sealer(timeline).await?.as_mut());
        let name = format!("{:016X}-{:06}.image", at.0, chunk_index);
        store_layer(timeline, &name, &bytes, true).await.map_err(|e| format!("writing {e}"))?;
        files += 1;
    }
    timeline.meta.borrow_mut().image_lsns.push(at.0);
    timeline.persist_meta().await.map_err(|e| format!("recording image set: {e}"))?;
    timeline.counters.image_layers.set(timeline.counters.image_layers.get() + files);
    tracing::info!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id, lsn = %at,
        pages = keys.len(), files, elapsed_ms = started.elapsed().as_millis() as u64, "image set written");
    Ok(Some(at))
}

/// Merges the oldest run of delta layers that lie below the newest complete image set (reads
/// at current LSNs no longer need them; point-in-time reads within retention do) into one
/// delta layer, once there are `merge_delta_layers_after` of them: fewer files, fewer index
/// probes per read, same versions. Returns how many files were merged.
///
/// Crash safety: the merged file appears whole (temp + rename) before its inputs are deleted;
/// a delta layer whose range lies inside another's is a leftover input and is deleted when
/// the timeline opens (`Timeline::load_layers`), so no version is ever read twice.
async fn merge_deltas(timeline: &Rc<Timeline>) -> Result<usize, String> {
    let settings = &timeline.config.store;
    let base = newest_image_lsn(timeline);
    let mut below: Vec<Rc<LayerFile>> = timeline
        .layers
        .borrow()
        .iter()
        .filter(|l| l.kind() == LayerKind::Delta && l.index.header.lsn_end <= base)
        .cloned()
        .collect();
    if below.len() < settings.merge_delta_layers_after {
        return Ok(0);
    }
    below.sort_by_key(|l| l.index.header.lsn_start);
    // The oldest contiguous run that fits the size limit.
    let mut run: Vec<Rc<LayerFile>> = Vec::new();
    let mut bytes = 0u64;
    for layer in below {
        let size = layer.index.header.index_offset;
        let contiguous = run
            .last()
            .is_none_or(|l: &Rc<LayerFile>| l.index.header.lsn_end == layer.index.header.lsn_start);
        if !contiguous || (run.len() >= 2 && bytes + size > settings.merge_max_bytes as u64) {
            break;
        }
        bytes += size;
        run.push(layer);
    }
    if run.len() < 2 {
        return Ok(0);
    }
    let started = Instant::now();
    let (start, end) = (run[0].index.header.lsn_start, run[run.len() - 1].index.header.lsn_end);
    let mut data: Vec<Vec<u8>> = Vec::with_capacity(run.len());
    for layer in &run {
        let region = layer
            .read_span(cache::layer::HEADER_SIZE as u64, layer.index.header.index_offset)
            .await
            .map_err(|e| format!("reading {} to merge: {e:?}", layer.name))?;
        data.push(region);
    }
    let mut entries: Vec<(usize, cache::layer::IndexEntry)> = run
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.index.entries.iter().map(move |e| (i, *e)))
        .collect();
    entries.sort_by_key(|(_, e)| (e.key, e.lsn));
    let mut writer =
        LayerWriter::new(LayerKind::Delta, timeline.tenant_id, timeline.timeline_id, start, end);
    for (input, entry) in &entries {
        let range = run[*input]
            .payload_in(entry, cache::layer::HEADER_SIZE as u64, &mut data[*input])
            .map_err(|e| format!("merging: {e:?}"))?;
        let payload = &data[*input][range];
        if entry.is_image {
            let page: &[u8; PAGE_SIZE] =
                payload.try_into().map_err(|_| "image payload is not a page".to_string())?;
            writer.add_image(entry.key, entry.lsn, page);
        } else {
            writer.add_delta(entry.key, entry.lsn, payload);
        }
    }
    let mut events: Vec<cache::layer::RelEvent> =
        run.iter().flat_map(|l| l.index.rel_events.iter().copied()).collect();
    events.sort_by_key(|e| (e.rel, e.lsn));
    events.dedup_by_key(|e| (e.rel, e.lsn));
    for event in events {
        writer.add_rel_event(event);
    }
    let (file, _) = writer.finish(new_sealer(timeline).await?.as_mut());
    let name = format!("{:016X}-{:016X}.delta", start.0, end.0);
    store_layer(timeline, &name, &file, false).await.map_err(|e| format!("writing merged {e}"))?;
    // No await since the merged file joined the map: readers never see both it and its inputs.
    timeline.layers.borrow_mut().retain(|l| !run.iter().any(|r| Rc::ptr_eq(r, l)));
    for layer in &run {
        remove_layer_file(timeline, layer)
            .map_err(|e| format!("deleting merged input {}: {e}", layer.name))?;
    }
    sync_dir(&timeline.dir.join("layers"))
        .await
        .map_err(|e| format!("syncing layer directory: {e}"))?;
    tracing::info!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id, layer = %name,
        inputs = run.len(), bytes = file.len(), elapsed_ms = started.elapsed().as_millis() as u64,
        "delta layers merged");
    Ok(run.len())
}

fn sample_lsn(timeline: &Timeline) {
    let window = timeline.config.store.pitr_window_secs;
    if window == 0 {
        return;
    }
    let now = SystemTime::now();
    let mut samples = timeline.lsn_samples.borrow_mut();
    samples.push_back((now, timeline.applied.get()));
    // Keep one sample older than the window (it bounds the horizon), drop the rest before it.
    let limit = now - Duration::from_secs(window);
    while samples.len() > 2 && samples[1].0 <= limit {
        samples.pop_front();
    }
}

/// The retention horizon: versions below it are no longer served.
fn horizon(timeline: &Timeline) -> Lsn {
    let settings = &timeline.config.store;
    let applied = timeline.applied.get();
    let by_distance = (settings.pitr_lsn_window > 0)
        .then(|| Lsn(applied.0.saturating_sub(settings.pitr_lsn_window)));
    let by_time = (settings.pitr_window_secs > 0).then(|| {
        let limit = SystemTime::now() - Duration::from_secs(settings.pitr_window_secs);
        let samples = timeline.lsn_samples.borrow();
        // The newest LSN observed at or before the window start; nothing older is needed.
        samples.iter().rev().find(|(when, _)| *when <= limit).map_or(Lsn::INVALID, |(_, lsn)| *lsn)
    });
    match (by_distance, by_time) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => Lsn::INVALID,
    }
}

/// Raises the retention horizon and deletes layer files that no read at or above it (nor any
/// branch point) can need: every layer that ends at or below the newest complete image set at
/// or below the cutoff, except that set.
async fn gc(timeline: &Rc<Timeline>) -> Result<usize, String> {
    let new_horizon = horizon(timeline).max(timeline.gc_horizon.get());
    let cutoff = timeline.children.borrow().iter().map(|(_, at)| *at).fold(new_horizon, Lsn::min);
    let base =
        timeline.meta.borrow().image_lsns.iter().copied().filter(|l| *l <= cutoff.0).max().map(Lsn);
    let doomed: Vec<String> = match base {
        Some(base) => timeline
            .layers
            .borrow()
            .iter()
            .filter(|l| match l.kind() {
                LayerKind::Delta => l.index.header.lsn_end <= base,
                LayerKind::Image => l.index.header.lsn_end < base,
            })
            .map(|l| l.name.clone())
            .collect(),
        None => Vec::new(),
    };
    if new_horizon == timeline.gc_horizon.get() && doomed.is_empty() {
        return Ok(0);
    }
    {
        let mut meta = timeline.meta.borrow_mut();
        meta.gc_horizon = new_horizon.0;
        if let Some(base) = base {
            meta.image_lsns.retain(|l| *l >= base.0);
        }
    }
    timeline.persist_meta().await.map_err(|e| format!("recording GC horizon: {e}"))?;
    timeline.gc_horizon.set(new_horizon);
    if doomed.is_empty() {
        return Ok(0);
    }
    let removed: Vec<_> = {
        let mut layers = timeline.layers.borrow_mut();
        let (gone, kept) = layers.drain(..).partition(|l| doomed.contains(&l.name));
        *layers = kept;
        gone
    };
    for layer in &removed {
        remove_layer_file(timeline, layer)
            .map_err(|e| format!("deleting layer {}: {e}", layer.name))?;
    }
    sync_dir(&timeline.dir.join("layers"))
        .await
        .map_err(|e| format!("syncing layer directory: {e}"))?;
    timeline
        .counters
        .gc_removed_layers
        .set(timeline.counters.gc_removed_layers.get() + removed.len() as u64);
    tracing::info!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id,
        horizon = %new_horizon, removed = removed.len(), "garbage collected layers");
    Ok(removed.len())
}
