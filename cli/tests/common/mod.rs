//! Shared by the lattice tests: the `trellis` binary against a private nats-server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod two_hosts;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn trellis(nats: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trellis"));
    cmd.env("TRELLIS_NATS_URL", nats)
        .env("TRELLIS_LATTICE", "test")
        .env("NO_COLOR", "1")
        .env_remove("TRELLIS_LABELS");
    cmd
}

/// `trellis call ARGS --output json`: the answer, or what the command printed on stderr.
pub fn call(url: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = trellis(url)
        .arg("call")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A `trellis wadm` child, killed on drop.
pub struct WadmProcess(Child);

impl WadmProcess {
    pub fn start(nats: &str) -> Self {
        let child = trellis(nats)
            .arg("wadm")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// SIGKILL: no lease released, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WadmProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `trellis host` child, killed on drop.
pub struct HostProcess(Child);

impl HostProcess {
    pub fn start(nats: &str, labels: &[&str]) -> Self {
        Self::start_trusting(nats, labels, None)
    }

    pub fn start_trusting(nats: &str, labels: &[&str], issuer: Option<&str>) -> Self {
        Self::start_with(nats, labels, issuer, &[])
    }

    /// With extra arguments for `trellis host` (e.g. `--http ADDR`).
    pub fn start_with(nats: &str, labels: &[&str], issuer: Option<&str>, extra: &[&str]) -> Self {
        Self::start_logging(nats, labels, issuer, extra, Stdio::null())
    }

    /// Like [`HostProcess::start_with`], with the host's log (stderr) going to `log`.
    pub fn start_logging(
        nats: &str,
        labels: &[&str],
        issuer: Option<&str>,
        extra: &[&str],
        log: impl Into<Stdio>,
    ) -> Self {
        let mut cmd = trellis(nats);
        cmd.args(["host", "--heartbeat-interval", "500ms"]);
        cmd.args(extra);
        if let Some(issuer) = issuer {
            cmd.args(["--trusted-issuer", issuer]);
        }
        for label in labels {
            cmd.args(["--label", label]);
        }
        Self(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit; `None` if it did not.
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: the host gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().unwrap()
    }

    pub fn terminate(mut self) -> bool {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        self.0.wait().unwrap().success()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `trellis ARGS --output json` and parses what it prints; fails the test on an error.
pub fn trellis_json<T: serde::de::DeserializeOwned>(nats: &str, args: &[&str]) -> T {
    let out: Output = trellis(nats)
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn get_hosts(nats: &str) -> Vec<serde_json::Value> {
    trellis_json(nats, &["get", "hosts"])
}

/// Polls `get hosts` until `want` hosts answer (bounded, generous: start-up on a loaded box).
pub fn wait_for_hosts(nats: &str, want: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hosts = get_hosts(nats);
        if hosts.len() == want || Instant::now() > deadline {
            return hosts;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`wait_for_hosts`] from async code; returns the hosts' ids.
pub async fn wait_for_host_ids(nats: &str, want: usize) -> Vec<String> {
    let nats = nats.to_string();
    let hosts = tokio::task::spawn_blocking(move || wait_for_hosts(&nats, want))
        .await
        .unwrap();
    assert_eq!(hosts.len(), want, "{hosts:?}");
    hosts
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}
