//! A private `redis-server` per test, on a free port, that keeps nothing on disk.
//!
//! Tests never use the machine's shared Redis (port 6379): each gets its own server, so keys
//! written by one test are never seen by another and a test may flush or kill its server.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let redis = trellis_testing::redis::RedisServer::start()?;
//! let url = redis.url(); // redis://127.0.0.1:PORT (database 0; `…/1` is database 1)
//! # Ok(()) }
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::nats::free_port;

/// A running `redis-server` child process; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server --port FREE --save '' --appendonly no` on loopback and waits until
    /// it answers `PING`.
    pub fn start() -> anyhow::Result<Self> {
        let mut server = Self {
            child: None,
            port: free_port()?,
            dir: tempfile::tempdir().context("cannot create a directory for redis-server")?,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log_path = self.dir.path().join("redis-server.log");
        let binary = redis_server_binary();
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) if err.kind() == ErrorKind::NotFound => bail!(
                "`{}` is not installed: `apt-get install -y redis-server` (or set \
                 TRELLIS_REDIS_SERVER to its path)",
                binary.display()
            ),
            Err(err) => {
                return Err(err).with_context(|| format!("cannot start `{}`", binary.display()));
            }
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("redis-server exited at start-up: {status}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "redis-server did not answer PING on port {} within 20 s",
            self.port
        )
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL); its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `redis-server` to use: `TRELLIS_REDIS_SERVER`, else the first on `PATH`.
pub fn redis_server_binary() -> PathBuf {
    std::env::var_os("TRELLIS_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// Whether a Redis server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_server_answers_ping_and_goes_away_when_killed() {
        let mut server = RedisServer::start().unwrap();
        assert_ne!(server.port(), 6379);
        assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
        assert!(ping(server.port()));
        server.kill();
        assert!(!ping(server.port()));
    }
}
