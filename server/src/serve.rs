//! Process startup and shutdown: one pinned executor per core, the cross-core mesh, listeners,
//! the admin thread and signal handling.
//!
//! Connection routing: every core binds the protocol port (SO_REUSEPORT, so the kernel spreads
//! accepts). The accepting core reads the `Hello`, computes the owner core of its tenant and,
//! if that is another core, duplicates the socket's fd and sends it with the bytes already read
//! over the mesh; the owner rebuilds the stream and serves it for its whole life.
//!
//! With TLS on the page protocol (`[tls] protocol`), the accepting core also runs the TLS
//! handshake and decrypts the `Hello`; the handoff then carries the rustls session
//! (`ServerConnection`, which is `Send`) with the fd and the plaintext already read, and the
//! owner continues the same session (`tls::stream`). Invariant: a session is used by one core
//! at a time: the accepting core writes out anything pending and gives the session up before
//! it sends the handoff, and never touches the socket again.
//!
//! Shutdown (SIGTERM or SIGINT), bounded by `shutdown_timeout_ms`: `/ready` turns 503; each
//! core closes its listener, lets every connection finish the requests it has already read
//! and closes it (`core::Drain`), waits until its timelines' queued appends are durable, and
//! stops. Then the admin thread stops. Each step's time is logged, as is the restart time
//! ("ready: ... startup_ms").

use crate::admin::{self, AdminState, CoreMessage, Lifecycle};
use crate::config::Config;
use crate::conn::{self, Input};
use crate::core::LocalCore;
use crate::metrics::{exposition::TenantLabels, history::History};
use crate::runtime::probe_dma;
use crate::tls::{admin_relay, stream::TlsStream};
use crate::transport::Transport;
use anyhow::Context as _;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A connection on its way to its owner core.
struct Handoff {
    fd: RawFd,
    input: Vec<u8>,
    /// The TLS session, when the connection is TLS.
    tls: Option<Box<rustls::ServerConnection>>,
}

/// Capacity of each mesh channel (PLATFORM.md: small meshes can hang under contention).
const MESH_CAPACITY: usize = 1024;
/// How often a core looks at its admin mailbox.
const MAILBOX_POLL: Duration = Duration::from_millis(5);

/// Runs the server until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    block_termination_signals();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let _lock = lock_data_dir(&config)?;
    refuse_if_port_served(config.listen)?;
    crate::keys::ensure_dev_keyring(&config).context("creating the development keyring")?;
    let (admin_server, admin_relay) = bind_admin(&config)?;
    let config = Arc::new(config);
    let lifecycle = Arc::new(Lifecycle::new(started));
    let mesh: MeshBuilder<Handoff, Full> = MeshBuilder::full(config.cores, MESH_CAPACITY);
    let mut mailboxes = Vec::new();
    let mut executors = Vec::new();
    for core in 0..config.cores {
        let (tx, rx) = mpsc::channel();
        mailboxes.push(tx);
        let (config, mesh, lifecycle) = (config.clone(), mesh.clone(), lifecycle.clone());
        let executor = LocalExecutorBuilder::new(Placement::Fixed(config.cpu_of(core)))
            .name(&format!("core-{core}"))
            .io_memory(config.io_memory_bytes)
            .spawn(move || core_main(core, config, mesh, rx, lifecycle))
            .map_err(|e| anyhow::anyhow!("starting core {core}: {e}"))?;
        executors.push(executor);
    }
    let history = Arc::new(Mutex::new(History::new(config.metrics.dashboard_history)));
    let metrics = &config.metrics;
    let admin_state = AdminState {
        config: config.clone(),
        mailboxes: mailboxes.clone(),
        lifecycle: lifecycle.clone(),
        history: history.clone(),
        labels: RefCell::new(TenantLabels::new(metrics.max_tenant_series, &metrics.tenant_series)),
    };
    let admin_thread = {
        let server = admin_server.clone();
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || admin::run(server, admin_state))?
    };
    let sampler_thread = {
        let (config, mailboxes, lifecycle) = (config.clone(), mailboxes.clone(), lifecycle.clone());
        std::thread::Builder::new()
            .name("metrics-sampler".into())
            .spawn(move || admin::sample_forever(config, mailboxes, lifecycle, history))?
    };
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, cores = config.cores,
        cpus = ?(0..config.cores).map(|c| config.cpu_of(c)).collect::<Vec<_>>(),
        data_dir = %config.data_dir.display(), "pagecore starting");
    log_auth(&config);
    log_tls(&config);
    let signal = wait_for_termination_signal();
    let stopping = Instant::now();
    lifecycle.shutting_down.store(true, Ordering::Release);
    tracing::info!(
        signal,
        timeout_ms = config.shutdown_timeout_ms,
        "shutting down: not ready, no new connections, finishing requests already read"
    );
    for mailbox in &mailboxes {
        let _ = mailbox.send(CoreMessage::Shutdown);
    }
    let mut failed = false;
    for (core, executor) in executors.into_iter().enumerate() {
        match executor.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(core, error = %format!("{error:#}"), "core failed");
                failed = true;
            }
            Err(error) => {
                tracing::error!(core, %error, "core panicked");
                failed = true;
            }
        }
    }
    lifecycle.stopped.store(true, Ordering::Release);
    let _ = sampler_thread.join();
    if let Some(relay) = admin_relay {
        relay.stop();
    }
    admin_server.unblock();
    let _ = admin_thread.join();
    tracing::info!(shutdown_ms = stopping.elapsed().as_millis() as u64, "pagecore stopped");
    if failed {
        anyhow::bail!("a core failed; see the log");
    }
    Ok(())
}

async fn core_main(
    id: usize,
    config: Arc<Config>,
    mesh: MeshBuilder<Handoff, Full>,
    mailbox: mpsc::Receiver<CoreMessage>,
    lifecycle: Arc<Lifecycle>,
) -> anyhow::Result<()> {
    probe_dma(&config.data_dir, id).await.context("probing O_DIRECT support")?;
    let core = Rc::new(LocalCore::new(id, Rc::new((*config).clone())));
    core.load_tenants().await.context("loading tenants")?;
    let key_checks = glommio::spawn_local(core.clone().check_keys_forever());
    let unloads = glommio::spawn_local(core.clone().unload_idle_forever());
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    let (senders, receivers) =
        mesh.join().await.map_err(|e| anyhow::anyhow!("joining the core mesh: {e}"))?;
    let senders = Rc::new(senders);
    let handoffs = glommio::spawn_local(receive_handoffs(core.clone(), receivers));
    let acceptor = glommio::spawn_local(accept_loop(core.clone(), listener, senders));
    let cores_ready = lifecycle.ready_cores.fetch_add(1, Ordering::AcqRel) + 1;
    if cores_ready == config.cores {
        let startup_ms = lifecycle.started.elapsed().as_millis() as u64;
        lifecycle.startup_ms.store(startup_ms.max(1), Ordering::Release);
        tracing::info!(startup_ms, "ready: all cores recovered and listening");
    }
    serve_mailbox(&core, &mailbox).await;
    drop(acceptor);
    drop(key_checks);
    drop(unloads);
    // Keep answering admin commands (metrics, the dashboard) while the core winds down.
    let stop = stop_core(&core, handoffs);
    futures_lite::future::or(stop, async {
        serve_mailbox(&core, &mailbox).await;
        std::future::pending().await
    })
    .await;
    tracing::debug!(core = id, "core stopped");
    Ok(())
}

/// After the listener closed: drains the connections (bounded by `shutdown_timeout_ms`), then
/// makes every accepted append durable.
async fn stop_core(core: &Rc<LocalCore>, handoffs: glommio::Task<()>) {
    let started = Instant::now();
    let timeout = Duration::from_millis(core.config.shutdown_timeout_ms);
    let open = core.drain.start();
    while core.drain.open_connections() > 0 && started.elapsed() < timeout {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let left = core.drain.open_connections();
    if left > 0 {
        tracing::warn!(
            core = core.id,
            connections = left,
            timeout_ms = timeout.as_millis() as u64,
            "closing connections that did not finish within shutdown_timeout_ms"
        );
    }
    let drain_ms = started.elapsed().as_millis() as u64;
    drop(handoffs);
    for timeline in core.all_timelines() {
        timeline.shutdown().await;
    }
    tracing::info!(
        core = core.id,
        connections = open,
        drain_ms,
        wal_ms = started.elapsed().as_millis() as u64 - drain_ms,
        "core stopped: connections drained, WAL durable"
    );
}

/// Executes admin commands until `Shutdown`.
async fn serve_mailbox(core: &Rc<LocalCore>, mailbox: &mpsc::Receiver<CoreMessage>) {
    loop {
        match mailbox.try_recv() {
            Ok(CoreMessage::Admin(command, reply)) => {
                let core = core.clone();
                glommio::spawn_local(async move {
                    let _ = reply.send(core.admin(command).await);
                })
                .detach();
            }
            Ok(CoreMessage::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => glommio::timer::sleep(MAILBOX_POLL).await,
        }
    }
}

async fn accept_loop(core: Rc<LocalCore>, listener: TcpListener, senders: Rc<Senders<Handoff>>) {
    let tls = core.config.tls.protocol_config();
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let stream = match &tls {
                    None => Transport::Plain(stream),
                    Some(tls) => match TlsStream::new(stream, tls.clone()) {
                        Ok(stream) => Transport::Tls(stream),
                        Err(error) => {
                            tracing::warn!(%error, "cannot start a TLS session");
                            continue;
                        }
                    },
                };
                glommio::spawn_local(route_connection(core.clone(), senders.clone(), stream))
                    .detach();
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads the `Hello` and serves the connection here or hands it to its owner core.
async fn route_connection(
    core: Rc<LocalCore>,
    senders: Rc<Senders<Handoff>>,
    mut stream: Transport,
) {
    let mut input = Input::new();
    let hello_timeout = Duration::from_millis(core.config.hello_timeout_ms);
    let first = glommio::timer::timeout(hello_timeout, async {
        Ok(conn::read_first_frame(&mut stream, &mut input).await)
    })
    .await;
    match first {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return,
        Ok(Err(error)) => {
            tracing::info!(%error, "connection failed before Hello");
            return;
        }
        Err(_) => {
            tracing::info!("no Hello within {} ms; closing", hello_timeout.as_millis());
            return;
        }
    }
    let mut out = Vec::new();
    let Some(tenant) = conn::hello_tenant(&input, &mut out) else {
        let _ = stream.write_all(&out).await;
        return;
    };
    let owner = core.config.owner_core(tenant);
    if owner == core.id {
        conn::serve(core, stream, input).await;
        return;
    }
    let (tcp, tls) = match stream {
        Transport::Plain(tcp) => (tcp, None),
        Transport::Tls(stream) => match stream.into_parts().await {
            Ok((tcp, session)) => (tcp, Some(session)),
            Err(error) => {
                tracing::info!(%error, "connection failed before handoff");
                return;
            }
        },
    };
    // SAFETY: dup of a valid open fd; the duplicate is owned by the Handoff from here on.
    let fd = unsafe { libc::dup(tcp.as_raw_fd()) };
    if fd < 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "dup for handoff failed");
        return;
    }
    drop(tcp);
    let handoff = Handoff { fd, input: input.into_unread(), tls };
    if let Err(error) = senders.send_to(owner, handoff).await {
        if let glommio::GlommioError::Closed(glommio::ResourceType::Channel(handoff)) = &error {
            // SAFETY: the fd was not delivered, so we still own it.
            unsafe { libc::close(handoff.fd) };
        }
        tracing::warn!(owner, "handoff to owner core failed (shutting down?)");
    }
}

async fn receive_handoffs(core: Rc<LocalCore>, mut receivers: Receivers<Handoff>) {
    let mut tasks = Vec::new();
    for (_, receiver) in receivers.streams() {
        let core = core.clone();
        tasks.push(glommio::spawn_local(async move {
            while let Some(handoff) = receiver.recv().await {
                // SAFETY: the sender dup'ed this fd for us and gave up ownership.
                let tcp = unsafe { TcpStream::from_raw_fd(handoff.fd) };
                let stream = match handoff.tls {
                    None => Transport::Plain(tcp),
                    Some(session) => Transport::Tls(TlsStream::from_parts(tcp, session)),
                };
                let input = Input::from_bytes(handoff.input);
                glommio::spawn_local(conn::serve(core.clone(), stream, input)).detach();
            }
        }));
    }
    for task in tasks {
        task.await;
    }
}

/// Binds the admin API: tiny_http on `admin_listen`, or, with `[tls] admin`, tiny_http on a
/// Unix socket in the data directory (mode 0600) behind the TLS relay on `admin_listen`.
fn bind_admin(
    config: &Config,
) -> anyhow::Result<(Arc<tiny_http::Server>, Option<admin_relay::AdminRelay>)> {
    let listen = config.admin_listen;
    let Some(tls) = config.tls.admin_config() else {
        let server = tiny_http::Server::http(listen)
            .map_err(|e| anyhow::anyhow!("binding admin {listen}: {e}"))?;
        return Ok((Arc::new(server), None));
    };
    // The data directory is locked by this process, so a socket left here is our own
    // previous run's.
    let socket = config.data_dir.join("admin.sock");
    match std::fs::remove_file(&socket) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing {}", socket.display()));
        }
        _ => {}
    }
    let server = tiny_http::Server::http_unix(&socket)
        .map_err(|e| anyhow::anyhow!("binding the admin socket {}: {e}", socket.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", socket.display()))?;
    let relay = admin_relay::start(listen, socket, tls)
        .with_context(|| format!("binding admin {listen} (TLS)"))?;
    Ok((Arc::new(server), Some(relay)))
}

/// One line on which listeners use TLS.
fn log_tls(config: &Config) {
    let tls = &config.tls;
    let on = |yes: bool| if yes { "tls" } else { "plaintext" };
    let protocol = on(tls.protocol_config().is_some());
    let admin = on(tls.admin_config().is_some());
    match &tls.cert_chain_file {
        Some(cert) => tracing::info!(protocol, admin, cert = %cert.display(), "TLS configured"),
        None => tracing::info!(protocol, admin, "TLS is off: no [tls] certificate configured"),
    }
}

/// Blocks SIGTERM and SIGINT in this thread and every thread it starts, so that
/// [`wait_for_termination_signal`] receives them synchronously.
fn block_termination_signals() {
    // SAFETY: plain libc signal-mask calls on a zeroed, then initialised, sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_termination_signal() -> &'static str {
    // SAFETY: as above; sigwait writes the received signal number into `signal`.
    let signal = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let mut signal = 0;
        libc::sigwait(&set, &mut signal);
        signal
    };
    if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// The cores' listeners set SO_REUSEPORT and would silently share the port with another
/// server (and split its clients with it). Refuse to start if something keeps accepting there.
/// A trial bind without SO_REUSEPORT is no good: it also fails on our own previous run's
/// TIME_WAIT sockets. And a just-exited pagecore's listening socket can outlive the process
/// briefly (the kernel tears down its io_uring, which holds a pending accept, asynchronously),
/// so only a port that still answers after a grace period counts as taken.
fn refuse_if_port_served(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut probe = listen;
    if probe.ip().is_unspecified() {
        probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut waited = 0;
    while std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
        if Instant::now() > deadline {
            anyhow::bail!("{listen} is already served by another process");
        }
        waited += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    if waited > 0 {
        tracing::info!(listen = %listen, waited_ms = waited * 50, "waited for the port to be released");
    }
    Ok(())
}

/// Holds an exclusive `flock` on `<data_dir>/.lock` so two servers never share a data dir.
/// One line on what authentication is on (never the secrets themselves).
fn log_auth(config: &Config) {
    let auth = &config.auth;
    match (&auth.token_secret_file, &auth.admin_token_file) {
        (None, None) => tracing::info!("authentication is off: no [auth] secret files configured"),
        (tokens, admin) => tracing::info!(
            tenant_tokens = tokens.is_some(),
            admin_token = admin.is_some(),
            "authentication configured"
        ),
    }
}

fn lock_data_dir(config: &Config) -> anyhow::Result<std::fs::File> {
    let path = config.data_dir.join(".lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    // SAFETY: flock on a valid fd we own.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        anyhow::bail!("data directory {} is in use by another pagecore", config.data_dir.display());
    }
    Ok(file)
}
