//! A TCP proxy the drill controls, between the engine and MariaDB: `cut` closes every
//! connection through it and refuses new ones (what the engine sees when the database host goes
//! away or restarts), `restore` lets connections through again. Plain threads and blocking
//! sockets, so the proxy keeps forwarding whatever the test's own runtime is doing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct TcpProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    up: AtomicBool,
    closing: AtomicBool,
    /// Both ends of every open connection, to close them on `cut`.
    open: Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target` (`host:port`).
    pub fn start(target: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            up: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let target = target.to_string();
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for incoming in listener.incoming() {
                if accepting.closing.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = incoming else { continue };
                if !accepting.up.load(Ordering::Acquire) {
                    drop(client); // refused: closed before the handshake
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                accepting.track(&client, &server);
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        TcpProxy { port, shared }
    }

    /// Closes every connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::Release);
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::Release);
    }
}

impl Shared {
    fn track(&self, client: &TcpStream, server: &TcpStream) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|s| s.peer_addr().is_ok());
        for stream in [client, server] {
            if let Ok(clone) = stream.try_clone() {
                open.push(clone);
            }
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.cut();
        // Wake the accept loop so that it sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
