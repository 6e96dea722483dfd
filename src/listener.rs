//! Binding the public listener, with `SO_REUSEPORT` when `server.reuse_port` is set, so that a new isr-proxy
//! process can bind the same port while the old one still serves (a zero-downtime binary upgrade): the kernel
//! spreads new connections over every process listening there, and the old one drains and exits.
//!
//! The socket is bound first (so a taken port fails at once, naming `listen`) and listens later
//! ([`BoundSocket::listen`]), once the new process has warmed up: until it listens, the kernel sends it nothing.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// The kernel's accept queue length, as tokio and std use.
const BACKLOG: i32 = 1024;

/// A TCP socket bound to the public address, not listening yet.
#[derive(Debug)]
pub struct BoundSocket(Socket);

/// Binds `address`; with `reuse_port`, other processes that set it too may bind the same address.
pub fn bind(address: SocketAddr, reuse_port: bool) -> io::Result<BoundSocket> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    // As std's and tokio's listeners do: restart at once even with connections in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(BoundSocket(socket))
}

#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin")))))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "server.reuse_port is not supported on this platform",
    ))
}

impl BoundSocket {
    /// The bound address (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
    }

    /// Starts listening; from here on the kernel queues connections for this process. Needs a Tokio runtime.
    pub fn listen(self) -> io::Result<TcpListener> {
        self.0.listen(BACKLOG)?;
        TcpListener::from_std(self.0.into())
    }
}
