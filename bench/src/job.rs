//! One job thread (`--jobs`): drives its share of the clients' connections from one `ppoll`
//! loop, like a pgbench thread.
//!
//! Each client (connection) has `--pipeline` transaction slots. A slot runs its transaction's
//! steps in order: each read is a GetPage whose answer starts the next step; a commit goes to
//! the tenant's committer (`committer.rs`), whose answer arrives on the job's eventfd. The
//! server answers in order per connection, so the in-flight queue of a connection pairs every
//! response with its slot. Responses are timestamped right after the `read` that brought them.
//!
//! Closed loop (default): a free slot starts its next transaction at once. Open loop
//! (`--rate`): the job draws a Poisson schedule at its share of the rate; a due transaction
//! starts on any free slot, its latency counts from the scheduled time (so stalls are not
//! hidden), and with `--latency-limit` one already later than the limit is skipped.

use crate::committer::{CommitQueue, CommitRequest, Completions};
use crate::conn::Conn;
use crate::run::{IntervalClock, RunPlan};
use crate::stats::Recorder;
use crate::workload::{Chooser, TxPlan};
use anyhow::{bail, Context};
use server::proto::Status;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal::Lsn;

/// What a job needs to know about a tenant.
pub struct TenantRun {
    pub latest: Arc<AtomicU64>,
    pub window_start: Lsn,
    pub committer: Option<Arc<CommitQueue>>,
}

pub struct ClientConn {
    pub conn: Conn,
    pub tenant: usize,
}

pub struct Job {
    pub index: usize,
    pub clients: Vec<ClientConn>,
    pub tenants: Arc<Vec<TenantRun>>,
    pub completions: Arc<Completions>,
    pub plan: Arc<RunPlan>,
    pub clock: IntervalClock,
    pub abort: Arc<AtomicBool>,
    /// This job's share of `--rate`, transactions per second.
    pub rate: Option<f64>,
}

struct Tx {
    plan: TxPlan,
    step: u8,
    /// Scheduled start (open loop) or actual start (closed loop): latency counts from here.
    began: Instant,
    commit_sent: Option<Instant>,
}

struct Client {
    conn: Conn,
    tenant: usize,
    slots: Vec<Option<Tx>>,
    /// `(slot, sent_at, request_id)` of each request awaiting its response, in send order.
    in_flight: VecDeque<(usize, Instant, u64)>,
    started: u64,
}

impl Client {
    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }
}

struct Loop {
    clients: Vec<Client>,
    tenants: Arc<Vec<TenantRun>>,
    plan: Arc<RunPlan>,
    chooser: Chooser,
    recorder: Recorder,
    job: usize,
    busy: usize,
}

impl Job {
    pub fn run(self) -> anyhow::Result<()> {
        let Job { index, clients, tenants, completions, plan, mut clock, abort, rate } = self;
        let seed = plan.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut state = Loop {
            clients: clients
                .into_iter()
                .map(|c| Client {
                    conn: c.conn,
                    tenant: c.tenant,
                    slots: (0..plan.pipeline).map(|_| None).collect(),
                    in_flight: VecDeque::new(),
                    started: 0,
                })
                .collect(),
            tenants,
            chooser: Chooser::new(plan.workload, plan.scale, plan.theta, seed),
            plan: plan.clone(),
            recorder: Recorder::default(),
            job: index,
            busy: 0,
        };
        let result = state.drive(&completions, &mut clock, &abort, rate);
        match result {
            Ok(()) => {
                clock.finish(state.recorder);
                Ok(())
            }
            Err(error) => {
                abort.store(true, Ordering::Release);
                clock.fail(format!("job {index}: {error:#}"));
                Err(error)
            }
        }
    }
}

impl Loop {
    fn drive(
        &mut self,
        completions: &Completions,
        clock: &mut IntervalClock,
        abort: &AtomicBool,
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut done = Vec::new();
        let mut due: VecDeque<Instant> = VecDeque::new();
        let mut next_due = clock.start();
        let end = self.plan.duration.map(|d| clock.start() + d);
        let mut budget = self.plan.transactions.map(|n| n * self.clients.len() as u64);
        loop {
            let now = Instant::now();
            clock.tick(&mut self.recorder);
            if abort.load(Ordering::Acquire) {
                bail!("aborted because another thread failed");
            }
            let accepting = end.is_none_or(|end| now < end) && budget != Some(0);
            if accepting {
                match rate {
                    None => self.start_closed_loop(now),
                    Some(rate) => {
                        while next_due <= now && budget.is_none_or(|b| b > due.len() as u64) {
                            due.push_back(next_due);
                            let gap = self.chooser.rng.exponential(1.0 / rate);
                            next_due += Duration::from_secs_f64(gap);
                        }
                        self.start_due(&mut due, now, &mut budget);
                    }
                }
            } else if self.busy == 0 {
                return Ok(());
            }
            for client in &mut self.clients {
                if client.conn.wants_write() {
                    client.conn.write_some().context("sending requests")?;
                }
            }
            let mut wake = clock.next_boundary().min(now + Duration::from_millis(100));
            if accepting {
                if let Some(end) = end {
                    wake = wake.min(end);
                }
                if rate.is_some() {
                    wake = wake.min(next_due);
                }
            }
            self.poll(&mut fds, completions, wake.saturating_duration_since(Instant::now()))?;
            let clients = self.clients.len();
            for (index, fd) in fds.iter().enumerate().take(clients) {
                if fd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                    self.read_responses(index)?;
                }
            }
            if fds.last().is_some_and(|fd| fd.revents & libc::POLLIN != 0)
                && fds.len() > self.clients.len()
            {
                completions.take(&mut done);
                let now = Instant::now();
                for (client, slot, failure) in done.drain(..) {
                    self.committed(client, slot, failure, now);
                }
            }
        }
    }

    fn poll(
        &mut self,
        fds: &mut Vec<libc::pollfd>,
        completions: &Completions,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        fds.clear();
        for client in &self.clients {
            let write = if client.conn.wants_write() { libc::POLLOUT } else { 0 };
            fds.push(libc::pollfd {
                fd: client.conn.fd(),
                events: libc::POLLIN | write,
                revents: 0,
            });
        }
        if self.plan.workload.writes() {
            fds.push(libc::pollfd { fd: completions.fd(), events: libc::POLLIN, revents: 0 });
        }
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: fds is a live, initialised array of fds.len() pollfd entries; the timespec
        // lives across the call; the signal mask pointer may be null.
        let ready = unsafe {
            libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &timeout, std::ptr::null())
        };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error).context("ppoll");
            }
            for fd in fds.iter_mut() {
                fd.revents = 0;
            }
        }
        Ok(())
    }

    fn start_closed_loop(&mut self, now: Instant) {
        for index in 0..self.clients.len() {
            while let Some(slot) = self.clients[index].free_slot() {
                if self.plan.transactions.is_some_and(|n| self.clients[index].started >= n) {
                    break;
                }
                self.start(index, slot, now);
            }
        }
    }

    fn start_due(&mut self, due: &mut VecDeque<Instant>, now: Instant, budget: &mut Option<u64>) {
        while let Some(&scheduled) = due.front() {
            let Some((index, slot)) =
                self.clients.iter().enumerate().find_map(|(i, c)| c.free_slot().map(|s| (i, s)))
            else {
                return;
            };
            due.pop_front();
            if let Some(b) = budget.as_mut() {
                *b -= 1;
            }
            if self.plan.latency_limit.is_some_and(|limit| now - scheduled > limit) {
                self.recorder.skipped += 1;
                continue;
            }
            self.recorder.record("schedule_lag", now - scheduled);
            self.start(index, slot, scheduled);
        }
    }

    fn start(&mut self, index: usize, slot: usize, began: Instant) {
        let plan = self.chooser.plan();
        let client = &mut self.clients[index];
        client.started += 1;
        client.slots[slot] = Some(Tx { plan, step: 0, began, commit_sent: None });
        self.busy += 1;
        self.next_step(index, slot);
    }

    /// Sends the slot's next read, or its commit, or completes it.
    fn next_step(&mut self, index: usize, slot: usize) {
        let client = &mut self.clients[index];
        let tx = client.slots[slot].as_mut().expect("a running transaction");
        if tx.step < tx.plan.read_count {
            let key = tx.plan.reads[usize::from(tx.step)];
            let tenant = &self.tenants[client.tenant];
            let latest = Lsn(tenant.latest.load(Ordering::Acquire));
            let lsn = self.chooser.read_lsn(self.plan.lsn_mode, latest, tenant.window_start);
            let id = client.conn.send_get_page(key, lsn, lsn);
            client.in_flight.push_back((slot, Instant::now(), id));
        } else if let (Some(full), None) = (tx.plan.commit, tx.commit_sent) {
            tx.commit_sent = Some(Instant::now());
            let queue = self.tenants[client.tenant]
                .committer
                .as_ref()
                .expect("a committer for writing workloads");
            queue.submit(CommitRequest {
                job: self.job,
                client: index,
                slot,
                rows: tx.plan.rows,
                full,
            });
        } else {
            self.complete(index, slot, Instant::now());
        }
    }

    fn read_responses(&mut self, index: usize) -> anyhow::Result<()> {
        let client = &mut self.clients[index];
        if !client.conn.read_some().context("reading responses")? {
            bail!("server closed the connection");
        }
        let now = Instant::now();
        while let Some((id, status, body_len)) =
            self.clients[index].conn.next_response(|r| (r.request_id, r.status(), r.body.len()))?
        {
            let (slot, sent, expected) = self.clients[index]
                .in_flight
                .pop_front()
                .context("a response nobody waited for")?;
            if id != expected {
                bail!("response {id} while expecting {expected}");
            }
            self.recorder.record("get_page", now - sent);
            if status != Status::Ok || body_len != wal::PAGE_SIZE {
                self.recorder.error(&format!("get_page {status}"));
                self.fail(index, slot);
                continue;
            }
            self.clients[index].slots[slot].as_mut().expect("a running transaction").step += 1;
            self.next_step(index, slot);
        }
        Ok(())
    }

    fn committed(&mut self, index: usize, slot: usize, failure: Option<Status>, now: Instant) {
        let tx = self.clients[index].slots[slot].as_ref().expect("a committing transaction");
        let sent = tx.commit_sent.expect("commit was sent");
        self.recorder.record("commit", now - sent);
        match failure {
            None => self.complete(index, slot, now),
            Some(_) => self.fail(index, slot),
        }
    }

    fn complete(&mut self, index: usize, slot: usize, now: Instant) {
        let tx = self.clients[index].slots[slot].take().expect("a running transaction");
        self.busy -= 1;
        let latency = now - tx.began;
        self.recorder.record("transaction", latency);
        if self.plan.latency_limit.is_some_and(|limit| latency > limit) {
            self.recorder.late += 1;
        }
    }

    fn fail(&mut self, index: usize, slot: usize) {
        self.clients[index].slots[slot] = None;
        self.busy -= 1;
        self.recorder.failed += 1;
    }
}
