//! HTTPS for the admin API: terminates TLS on `admin_listen` and relays the plaintext to the
//! admin HTTP server (`admin.rs`, tiny_http), which then listens on a Unix socket inside the
//! data directory (mode 0600) instead of on TCP.
//!
//! Why not tiny_http's own `ssl-rustls` feature: tiny_http 0.12 builds it on rustls 0.20, which
//! is no longer maintained and is affected by RUSTSEC-2024-0336 (a peer can make `complete_io`
//! spin forever); it would also put a second TLS stack, with its own `ring`, in the binary. The
//! relay reuses the page protocol's rustls configuration (`tls.rs`) instead.
//!
//! Threads: one accept thread (`admin-tls`), and one thread per relayed connection, since the
//! admin API is the control plane (scrapes, operators, the dashboard). Bounds: at most
//! `MAX_CONNECTIONS` at once (more are closed at accept); a handshake must finish within
//! `HANDSHAKE_TIMEOUT`; a connection idle for `IDLE_TIMEOUT`, or whose client stops reading
//! for `IO_TIMEOUT`, is closed; one `BUF_BYTES` buffer per connection.

use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAX_CONNECTIONS: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const BUF_BYTES: usize = 16 * 1024;
/// How often the accept thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The running relay; [`AdminRelay::stop`] ends its accept thread (connections in flight end
/// with the process).
pub(crate) struct AdminRelay {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Binds `listen` now (so a taken port fails the start) and relays each connection's
/// plaintext to the HTTP server on the Unix socket `backend`.
pub(crate) fn start(
    listen: SocketAddr,
    backend: PathBuf,
    config: Arc<ServerConfig>,
) -> io::Result<AdminRelay> {
    let listener = TcpListener::bind(listen)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("admin-tls".into())
            .spawn(move || accept_loop(&listener, &backend, &config, &stop))?
    };
    Ok(AdminRelay { stop, thread })
}

impl AdminRelay {
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

fn accept_loop(
    listener: &TcpListener,
    backend: &Path,
    config: &Arc<ServerConfig>,
    stop: &AtomicBool,
) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Acquire) {
        match wait_readable([Some(listener.as_raw_fd()), None], STOP_POLL) {
            Ok([true, _]) => {}
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "admin TLS accept: poll failed");
                std::thread::sleep(STOP_POLL);
                continue;
            }
        }
        let (tcp, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin TLS accept failed");
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(%peer, limit = MAX_CONNECTIONS, "admin TLS connection refused: too many");
            continue;
        }
        let (backend, config, active) = (backend.to_path_buf(), config.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("admin-tls-conn".into()).spawn(move || {
            if let Err(error) = relay(tcp, &backend, config) {
                tracing::info!(%peer, %error, "admin TLS connection ended");
            }
            active.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "admin TLS: cannot start a connection thread");
        }
    }
}

/// Relays one connection until either side is done.
fn relay(mut tcp: TcpStream, backend: &Path, config: Arc<ServerConfig>) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
    handshake(&mut tls, &mut tcp)?;
    let mut http = UnixStream::connect(backend)?;
    http.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; BUF_BYTES];
    let mut client_open = true;
    loop {
        if client_open {
            client_open = plaintext_to_http(&mut tls, &mut http, &mut buf)?;
        }
        let client_fd = client_open.then(|| tcp.as_raw_fd());
        let [from_client, from_http] =
            wait_readable([client_fd, Some(http.as_raw_fd())], IDLE_TIMEOUT)?;
        if !from_client && !from_http {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
        }
        if from_client {
            match tls.read_tls(&mut tcp) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            if let Err(error) = tls.process_new_packets() {
                let _ = tls.write_tls(&mut tcp); // the alert, best effort
                return Err(io::Error::new(io::ErrorKind::InvalidData, error));
            }
        }
        if from_http {
            let count = http.read(&mut buf)?;
            if count == 0 {
                tls.send_close_notify();
                return write_ciphertext(&mut tls, &mut tcp);
            }
            let mut rest = &buf[..count];
            while !rest.is_empty() {
                let written = tls.writer().write(rest)?;
                rest = &rest[written..];
                write_ciphertext(&mut tls, &mut tcp)?;
            }
        }
        write_ciphertext(&mut tls, &mut tcp)?;
    }
}

fn handshake(tls: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    while tls.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"));
        }
        tcp.set_read_timeout(Some(left))?;
        tls.complete_io(tcp)?;
    }
    tcp.set_read_timeout(None)
}

/// Passes decrypted bytes on to the HTTP server. `Ok(false)`: the client is done sending
/// (`close_notify`, or a plain close), so the HTTP server sees the end of its input too.
fn plaintext_to_http(
    tls: &mut ServerConnection,
    http: &mut UnixStream,
    buf: &mut [u8],
) -> io::Result<bool> {
    loop {
        match tls.reader().read(buf) {
            Ok(0) => break,
            Ok(count) => http.write_all(&buf[..count])?,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(error),
        }
    }
    http.shutdown(Shutdown::Write)?;
    Ok(false)
}

fn write_ciphertext(tls: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(tcp)?;
    }
    Ok(())
}

/// `poll(2)` for input on up to two descriptors (`None`: not watched); which are readable (or
/// closed, or failed: a read will tell). All false after `timeout`.
fn wait_readable(fds: [Option<i32>; 2], timeout: Duration) -> io::Result<[bool; 2]> {
    let mut polled = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 2];
    for (slot, fd) in polled.iter_mut().zip(fds) {
        *slot = libc::pollfd { fd: fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 };
    }
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `polled` is a valid array of two pollfd for the duration of the call.
    let ready = unsafe { libc::poll(polled.as_mut_ptr(), 2, timeout_ms) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok([false, false]);
        }
        return Err(error);
    }
    Ok(polled.map(|p| p.fd >= 0 && p.revents != 0))
}
