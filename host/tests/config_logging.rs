//! `wasi:config` (live values) and `wasi:logging` (into the host's tracing) served in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{TestHost, get_text};
use trellis_host::ComponentLimits;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_read_live_and_logs_land_in_tracing() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let host = TestHost::start().await;
    let component = host.load_guest(
        "config_logging",
        &["wasi:config/store", "wasi:logging/logging"],
        ComponentLimits::default(),
    );
    host.route(None, "/", component.clone());
    assert_eq!(get_text(&host.url("/first")).await, "greeting=none\n");

    component.set_config(BTreeMap::from([(
        "greeting".to_string(),
        "hello".to_string(),
    )]));
    assert_eq!(get_text(&host.url("/second")).await, "greeting=hello\n");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("handled request for /second"))
        .unwrap_or_else(|| panic!("guest log line missing from:\n{logs}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("component=\"config_logging\"") || line.contains("component=config_logging"),
        "{line}"
    );
}
