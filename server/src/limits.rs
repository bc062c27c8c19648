//! Per-tenant rate limits: token buckets for GetPage pages per second and WAL bytes per
//! second, one pair per tenant on its owner core. A request over its tenant's rate is answered
//! `SlowDown` at once instead of queueing, so one flooding tenant cannot grow queues or take a
//! core's time from the others.
//!
//! Limits come from `[limits]` (defaults for every tenant; 0 = unlimited) and
//! `[limits.tenants."<tenant id>"]` (overrides). A bucket holds `burst_secs` seconds of rate.
//! Single-core state (`Cell`), no locks; the clock is read once per request that is limited.

use crate::config::{Config, TenantLimits};
use std::cell::Cell;
use std::time::Instant;
use wal::TenantId;

/// A token bucket refilled at `rate` tokens per second up to `burst` tokens.
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: Cell<f64>,
    refilled: Cell<Instant>,
}

impl TokenBucket {
    /// `rate = 0` never limits.
    pub(crate) fn new(rate: u64, burst_secs: f64) -> Self {
        let burst = (rate as f64 * burst_secs).max(1.0);
        TokenBucket {
            rate: rate as f64,
            burst,
            tokens: Cell::new(burst),
            refilled: Cell::new(Instant::now()),
        }
    }

    pub(crate) fn limited(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes `count` tokens if there are that many (a request larger than the whole burst is
    /// let through when the bucket is full, so it is slowed, never starved).
    pub(crate) fn take(&self, count: u64) -> bool {
        self.take_at(count, Instant::now())
    }

    pub(crate) fn take_at(&self, count: u64, now: Instant) -> bool {
        if !self.limited() {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.refilled.get()).as_secs_f64();
        self.refilled.set(now);
        let tokens = (self.tokens.get() + elapsed * self.rate).min(self.burst);
        let need = (count as f64).min(self.burst);
        if tokens >= need {
            self.tokens.set(tokens - need);
            true
        } else {
            self.tokens.set(tokens);
            false
        }
    }

    pub(crate) fn rate(&self) -> u64 {
        self.rate as u64
    }
}

/// The limits of one tenant.
pub(crate) struct TenantLimiter {
    pub(crate) get_pages: TokenBucket,
    pub(crate) wal_bytes: TokenBucket,
}

impl TenantLimiter {
    /// Takes `pages` GetPage tokens, or says why not (the answer is `SlowDown`).
    pub(crate) fn admit_pages(&self, pages: u64) -> Result<(), String> {
        let bucket = &self.get_pages;
        if bucket.take(pages) {
            return Ok(());
        }
        Err(format!("tenant over its GetPage limit of {} pages/s; retry later", bucket.rate()))
    }

    /// Takes `bytes` WAL tokens, or says why not (the answer is `SlowDown`).
    pub(crate) fn admit_wal_bytes(&self, bytes: u64) -> Result<(), String> {
        let bucket = &self.wal_bytes;
        if bucket.take(bytes) {
            return Ok(());
        }
        Err(format!("tenant over its WAL limit of {} bytes/s; retry later", bucket.rate()))
    }

    pub(crate) fn for_tenant(config: &Config, tenant: TenantId) -> Self {
        let limits = &config.limits;
        let own: TenantLimits = limits.of(&tenant.to_string());
        TenantLimiter {
            get_pages: TokenBucket::new(own.get_page_per_sec, limits.burst_secs),
            wal_bytes: TokenBucket::new(own.wal_bytes_per_sec, limits.burst_secs),
        }
    }
}

#[cfg(test)]
mod tests;
