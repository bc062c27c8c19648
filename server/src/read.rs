//! The read path: `GetPage@LSN` over a timeline's layers and its ancestors.
//!
//! A lookup first walks the in-memory indexes, newest first — open layer, frozen layer, layer
//! files (their indexes are in memory), then the ancestor timeline at the branch point — and
//! stops at the first image. Because every index is in memory, the plan is complete before any
//! I/O: all payload reads of one lookup are then submitted to io_uring together, verified, and
//! the page is rebuilt from the base image (or zeros) by applying the deltas oldest first.
//!
//! Relation existence and size decide `NotFound` before any page is read; versions at or below
//! the last truncation or drop of the block are dead.

use crate::layer_io::{join_all, LayerFile, LayerReadError};
use crate::timeline::Timeline;
use cache::layer::{aligned_span, IndexEntry, LayerKind};
use cache::{CacheKey, FrameRef, PageBody};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};
use wal::{Delta, Lsn, PageKey, RelTag, PAGE_SIZE};

/// Why a read was not answered with a page.
#[derive(Debug)]
pub(crate) enum ReadError {
    NotFound(String),
    TooOld(String),
    Corrupt(String),
    /// The tenant's keys are revoked or its provider refuses.
    KeyUnavailable(String),
    Internal(String),
}

impl From<LayerReadError> for ReadError {
    fn from(error: LayerReadError) -> Self {
        match error {
            LayerReadError::Corrupt(why) => ReadError::Corrupt(why),
            LayerReadError::Io(why) => ReadError::Internal(why),
            LayerReadError::KeyUnavailable(why) => ReadError::KeyUnavailable(why),
        }
    }
}

/// Size of `rel` at `lsn`, looking through ancestors below the branch point.
pub(crate) fn rel_size(timeline: &Timeline, rel: RelTag, lsn: Lsn) -> Option<u32> {
    match timeline.rels.borrow().lookup(rel, lsn) {
        Some(size) => size,
        None => {
            let (parent, at) = timeline.ancestor.as_ref()?;
            rel_size(parent, rel, lsn.min(*at))
        }
    }
}

/// Refuses reads below the retention horizon.
pub(crate) fn check_horizon(timeline: &Timeline, lsn: Lsn) -> Result<(), ReadError> {
    let horizon = timeline.gc_horizon.get();
    if lsn < horizon {
        return Err(ReadError::TooOld(format!(
            "LSN {lsn} is below the retention horizon {horizon}"
        )));
    }
    Ok(())
}

enum Step {
    Memory(Delta),
    Disk(Rc<LayerFile>, IndexEntry),
}

enum Base {
    Zero,
    /// Already copied into the output page.
    Memory,
    /// The step at this index holds the image.
    Disk(usize),
}

/// What one page read cost: for metrics and the slow-request log.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReadStats {
    /// Layers (in memory and files) that contributed versions: the read amplification.
    pub(crate) layers: u32,
    /// Layer payload reads, all submitted together.
    pub(crate) disk_reads: u32,
    /// Wall time from submitting those reads to the last completing.
    pub(crate) disk_wait: Duration,
    /// Served from the core's buffer cache.
    pub(crate) cache_hit: bool,
}

/// Writes page `key` as of `lsn` into `out`. Returns what it cost.
pub(crate) async fn get_page(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    out: &mut [u8; PAGE_SIZE],
) -> Result<ReadStats, ReadError> {
    check_page(timeline, key, lsn)?;
    if let Some(stats) = cached_page(timeline, key, lsn, |page| out.copy_from_slice(page)) {
        return Ok(stats);
    }
    rebuild_page(timeline, key, lsn, out).await
}

/// Refuses a read of `key` at `lsn` that cannot be answered with a page: below the retention
/// horizon, of a relation that does not exist, or beyond its end. The first step of every
/// page read; [`cached_page`] and [`rebuild_page`] assume it passed.
pub(crate) fn check_page(timeline: &Timeline, key: PageKey, lsn: Lsn) -> Result<(), ReadError> {
    check_horizon(timeline, lsn)?;
    match rel_size(timeline, key.rel, lsn) {
        None => Err(ReadError::NotFound(format!("relation {} does not exist at {lsn}", key.rel))),
        Some(nblocks) if key.block.0 >= nblocks => Err(ReadError::NotFound(format!(
            "block {} is beyond the end of relation {} ({nblocks} blocks) at {lsn}",
            key.block, key.rel
        ))),
        Some(_) => Ok(()),
    }
}

/// The cache-hit path: if the core's buffer cache holds `key` as of `lsn`, hands the frame to
/// `use_page` (while the cache is borrowed: `use_page` must not touch the cache) and returns
/// the stats of a hit; `None` on a miss (counted by the cache), after which the caller
/// rebuilds the page with [`rebuild_page`]. No allocation, no await: a connection copies the
/// frame straight into its output buffer, once.
pub(crate) fn cached_page(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    use_page: impl FnOnce(&[u8; PAGE_SIZE]),
) -> Option<ReadStats> {
    let cache = timeline.cache.as_ref()?;
    let cache_key = cache_key(timeline, key);
    let mut cache = cache.borrow_mut();
    let page = cache.get(&cache_key, lsn)?;
    use_page(page);
    Some(ReadStats { cache_hit: true, ..ReadStats::default() })
}

/// [`cached_page`] without the copy: where the cached page is, for a connection that sends it
/// straight from its frame. The [`FrameRef`] resolves only until the cache next changes.
pub(crate) fn cached_frame(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
) -> Option<(FrameRef, ReadStats)> {
    let cache = timeline.cache.as_ref()?;
    let frame = cache.borrow_mut().get_ref(&cache_key(timeline, key), lsn)?;
    Some((frame, ReadStats { cache_hit: true, ..ReadStats::default() }))
}

fn cache_key(timeline: &Timeline, key: PageKey) -> CacheKey {
    CacheKey { tenant: timeline.tenant_id, timeline: timeline.timeline_id, page: key }
}

/// The cache-miss path: rebuilds page `key` as of `lsn` into `out` from the layers (reading
/// layer files concurrently), and offers the result to the cache. [`check_page`] must have
/// passed.
pub(crate) async fn rebuild_page(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    out: &mut [u8; PAGE_SIZE],
) -> Result<ReadStats, ReadError> {
    let cache_key = cache_key(timeline, key);
    let mut steps = Vec::new();
    let (base, memory_layers, newest) = plan(timeline, key, lsn, &mut steps, out);
    let spans = coalesce(&steps);
    let mut files: Vec<&str> = spans.iter().map(|s| s.layer.name.as_str()).collect();
    files.dedup();
    let reads: Vec<Pin<Box<dyn Future<Output = _> + '_>>> = spans
        .iter()
        .map(|span| {
            Box::pin(crate::metrics::timed_disk_read(span.layer.read_span(span.start, span.end)))
                as Pin<Box<dyn Future<Output = _>>>
        })
        .collect();
    let disk_started = (!spans.is_empty()).then(Instant::now);
    let span_bytes = join_all(reads).await;
    for result in &span_bytes {
        if let Err(LayerReadError::Io(_)) = result {
            crate::metrics::disk_read_error();
        }
    }
    let disk_wait = disk_started.map_or(Duration::ZERO, |started| started.elapsed());
    let mut span_bytes: Vec<Vec<u8>> = span_bytes.into_iter().collect::<Result<_, _>>()?;
    // Each payload is verified (and, in an encrypted layer, decrypted) in place in the buffer
    // its read landed in; a step's entry is unique within one lookup, so none is opened twice.
    let mut located = Vec::with_capacity(steps.len());
    for step in &steps {
        if let Step::Disk(layer, entry) = step {
            let index = spans
                .iter()
                .position(|s| {
                    Rc::ptr_eq(&s.layer, layer) && s.start <= entry.offset && entry.offset < s.end
                })
                .expect("every disk step lies in a span");
            let range = layer.payload_in(entry, spans[index].start, &mut span_bytes[index])?;
            located.push((index, range));
        }
    }
    let disk_payloads: Vec<&[u8]> =
        located.into_iter().map(|(index, range)| &span_bytes[index][range]).collect();
    rebuild(&steps, base, &disk_payloads, out)?;
    if let (Some(cache), Some(valid_from)) = (&timeline.cache, newest) {
        // Decided after the last await: a record of this key ingested while the reads were in
        // flight is in memory now and ends the range here (the cache's close_validity came
        // before this version was inserted, so it could not).
        let valid_to = next_change(timeline, key, lsn, Lsn::MAX);
        cache.borrow_mut().insert(&cache_key, valid_from, valid_to, out);
    }
    Ok(ReadStats {
        layers: memory_layers + files.len() as u32,
        disk_reads: spans.len() as u32,
        disk_wait,
        cache_hit: false,
    })
}

/// Collects the versions needed, newest first. Returns the base, the number of in-memory
/// layers that contributed, and the LSN of the newest version used (`None`: no version, the
/// page reads as zeros).
fn plan(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    steps: &mut Vec<Step>,
    out: &mut [u8; PAGE_SIZE],
) -> (Base, u32, Option<Lsn>) {
    let mut current = timeline;
    let mut newest: Option<Lsn> = None;
    let mut limit = lsn;
    let mut floor = Lsn::INVALID;
    let mut memory_layers = 0;
    loop {
        floor = floor.max(current.rels.borrow().floor_for(key, limit));
        let frozen = current.frozen.borrow().clone();
        let open = current.open.borrow();
        for layer in std::iter::once(&*open).chain(frozen.as_deref()) {
            let versions = layer.versions(key, floor, limit);
            if !versions.is_empty() {
                memory_layers += 1;
            }
            for version in versions.iter().rev() {
                newest = newest.or(Some(version.lsn));
                match &version.body {
                    PageBody::Image(page) => {
                        out.copy_from_slice(&page[..]);
                        return (Base::Memory, memory_layers, newest);
                    }
                    PageBody::Delta(delta) => steps.push(Step::Memory(delta.clone())),
                }
            }
        }
        drop(open);
        for layer in current.layers.borrow().iter() {
            let header = &layer.index.header;
            let in_range = match layer.kind() {
                LayerKind::Image => header.lsn_start <= limit,
                LayerKind::Delta => header.lsn_start < limit,
            };
            // An image set is several files with disjoint key ranges: skip the others cheaply.
            let holds_key =
                layer.index.key_range().is_some_and(|(first, last)| first <= key && key <= last);
            if !in_range || !holds_key {
                continue;
            }
            for entry in layer.index.versions_of(key).iter().rev() {
                if entry.lsn > limit || entry.lsn <= floor {
                    continue;
                }
                newest = newest.or(Some(entry.lsn));
                steps.push(Step::Disk(layer.clone(), *entry));
                if entry.is_image {
                    return (Base::Disk(steps.len() - 1), memory_layers, newest);
                }
            }
        }
        match &current.ancestor {
            Some((parent, at)) if floor < *at => {
                limit = limit.min(*at);
                current = parent;
            }
            _ => return (Base::Zero, memory_layers, newest),
        }
    }
}

/// The first LSN after `after` (and at or before `upto`) at which `key` changes in `timeline`'s
/// view: its next version, or a truncation or drop that removes it; through ancestors below
/// the branch point. `Lsn::MAX` if none is known yet.
fn next_change(timeline: &Timeline, key: PageKey, after: Lsn, upto: Lsn) -> Lsn {
    let cut = timeline.rels.borrow().next_cut(key, after).filter(|at| *at <= upto);
    let mut next = cut.unwrap_or(Lsn::MAX);
    let frozen = timeline.frozen.borrow().clone();
    let open = timeline.open.borrow();
    for layer in std::iter::once(&*open).chain(frozen.as_deref()) {
        if let Some(version) = layer.versions(key, after, upto).first() {
            next = next.min(version.lsn);
        }
    }
    drop(open);
    for layer in timeline.layers.borrow().iter() {
        if layer.index.header.lsn_end <= after {
            continue;
        }
        let versions = layer.index.versions_of(key);
        let first_after = versions.partition_point(|e| e.lsn <= after);
        if let Some(entry) = versions.get(first_after) {
            if entry.lsn <= upto {
                next = next.min(entry.lsn);
            }
        }
    }
    if let Some((parent, at)) = &timeline.ancestor {
        if after < *at {
            next = next.min(next_change(parent, key, after, *at));
        }
    }
    next
}

/// One O_DIRECT read covering the payloads of one or more disk steps in one layer file.
struct Span {
    layer: Rc<LayerFile>,
    start: u64,
    end: u64,
}

/// Largest gap between two payloads of one file that one read still covers: reading a few
/// unneeded KiB is cheaper than another I/O. A delta layer keeps a key's deltas next to each
/// other, so a chain of deltas in one file is usually one read.
const COALESCE_GAP: u64 = 16 * 1024;

/// Groups the disk steps' aligned ranges per file and merges those that touch or nearly touch.
fn coalesce(steps: &[Step]) -> Vec<Span> {
    let mut ranges: Vec<(&Rc<LayerFile>, u64, u64)> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Disk(layer, entry) => {
                let (start, end) = aligned_span(entry);
                Some((layer, start, end))
            }
            Step::Memory(_) => None,
        })
        .collect();
    ranges.sort_by_key(|(layer, start, _)| (Rc::as_ptr(layer), *start));
    let mut spans: Vec<Span> = Vec::with_capacity(ranges.len());
    for (layer, start, end) in ranges {
        match spans.last_mut() {
            Some(last) if Rc::ptr_eq(&last.layer, layer) && start <= last.end + COALESCE_GAP => {
                last.end = last.end.max(end);
            }
            _ => spans.push(Span { layer: layer.clone(), start, end }),
        }
    }
    spans
}

/// Applies the plan oldest first.
fn rebuild(
    steps: &[Step],
    base: Base,
    disk_payloads: &[&[u8]],
    out: &mut [u8; PAGE_SIZE],
) -> Result<(), ReadError> {
    // Disk payloads are in step order among disk steps; map each step to its payload.
    let mut payload_of = Vec::with_capacity(steps.len());
    let mut next = 0;
    for step in steps {
        payload_of.push(match step {
            Step::Disk(..) => {
                next += 1;
                Some(next - 1)
            }
            Step::Memory(_) => None,
        });
    }
    let newer_than_base = match base {
        Base::Zero => {
            out.fill(0);
            steps.len()
        }
        Base::Memory => steps.len(),
        Base::Disk(index) => {
            let payload = &disk_payloads[payload_of[index].expect("image step is a disk step")];
            out.copy_from_slice(payload);
            index
        }
    };
    for (step, payload) in steps[..newer_than_base].iter().zip(&payload_of).rev() {
        match step {
            Step::Memory(delta) => delta.apply(out),
            Step::Disk(layer, entry) => {
                let bytes = &disk_payloads[payload.expect("disk step has a payload")];
                let delta = Delta::decode_payload(bytes).map_err(|e| {
                    ReadError::Corrupt(format!(
                        "layer {}: delta for {} at {}: {e}",
                        layer.name, entry.key, entry.lsn
                    ))
                })?;
                delta.apply(out);
            }
        }
    }
    Ok(())
}
