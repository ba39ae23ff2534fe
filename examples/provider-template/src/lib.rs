//! A template Trellis capability provider: `wasi:keyvalue` (store, atomics, batch) kept as one
//! JSON file per bucket in a directory that each link names.
//!
//! Copy this crate to start a provider of your own. It is small but real: the data survives
//! restarts, a crash never leaves a half-written file, increments are exact under any
//! concurrency, and every bad input comes back as an error value with a fix in its message.
//!
//! # The shape of every provider
//!
//! 1. **A type** ([`FileKvProvider`]) that holds per-link state in a [`LinkTable`].
//! 2. **[`Provider`]**: the lifecycle the host (or the SDK's process runner) drives: `init`,
//!    link put/delete, `health`, `shutdown`, and `capabilities` — which traits it serves.
//! 3. **A capability trait** ([`KeyValue`] here): the calls components make. Every call gets
//!    a [`CallContext`] (which component, through which link) and returns the capability's
//!    own error type ([`KvError`]) — never a panic: a panic in a provider is a bug the
//!    component cannot handle, while an `Err` reaches it as the WIT `error` value.
//! 4. **A `main`** (`src/main.rs`) that is one call to `trellis_provider_sdk::process::run`,
//!    so the very same type also runs as its own process on the lattice.
//!
//! # Link target config
//!
//! A component's link to this provider carries the settings (`trellis config put NAME k=v`,
//! then `trellis link put … --target-config NAME`):
//!
//! | key         | default  | meaning                                                       |
//! |-------------|----------|---------------------------------------------------------------|
//! | `dir`       | required | absolute path of the directory holding the bucket files       |
//! | `page_size` | `1000`   | how many keys one `list-keys` call returns at most            |
//!
//! A link without `dir`, with a relative one, or with one this provider cannot write to is
//! refused when it is put — the message names the key to set — rather than failing on the
//! component's first call.
//!
//! # On disk
//!
//! Bucket `orders` is `DIR/orders.json`, a JSON object of key → value. A value that is UTF-8
//! text is stored as a JSON string (`"visits": "42"`), any other bytes as
//! `{"base64": "…"}`, so the files stay readable with `cat`. Bucket identifiers come from
//! components, so they are never used as paths directly: bytes other than `a-z 0-9 - _` are
//! written as `%XX` (`../etc` → `%2E%2E%2Fetc.json`), which keeps every bucket inside `DIR`
//! and distinct even on case-insensitive file systems. `""` is the bucket `default`.
//!
//! Every change rewrites the bucket's file, so this suits small buckets (configuration,
//! counters, a few thousand keys), not a database's workload.
//!
//! # Crash safety
//!
//! A write goes to a fresh temporary file in the same directory, is flushed to disk
//! (`fsync`), then renamed over the bucket file, and the directory is flushed too. A rename
//! within one directory is atomic, so after a crash (of the process or the machine) the bucket
//! file is either the old version or the new one, never a mix. A crash can leave a stray
//! `.NAME.json.PID.N.tmp` file; it is ignored and may be deleted.
//!
//! # Concurrency
//!
//! Reads take no lock: thanks to the rename they always see a whole file. Every change is a
//! read-modify-write of one bucket, done under that bucket's lock:
//!
//! - an async mutex per bucket file, shared by every provider instance and link in the process
//!   (two links, or two providers with different ids, may name the same directory);
//! - an advisory file lock (`NAME.json.lock`, `flock`) so that several *processes* using one
//!   directory — e.g. two hosts on one machine each running this provider — also take turns.
//!
//! So `increment` never loses an update, and neither does a `set` racing an `increment`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use trellis_provider_sdk::keyvalue::{
    self, KeyPage, KeyValue, KvError, add_to_counter, parse_counter,
};
use trellis_provider_sdk::link::setting;
use trellis_provider_sdk::{
    CallContext, Capabilities, HealthStatus, InitContext, LinkConfig, LinkTable, Provider,
    ProviderError, ProviderIdCell, async_trait,
};

/// The link target config key naming the directory of bucket files.
pub const DIR: &str = "dir";
/// The link target config key for the `list-keys` page size, and its default: the SDK's, as
/// every key-value provider reads `page_size` the same way ([`keyvalue::page_size`]).
pub use trellis_provider_sdk::keyvalue::{DEFAULT_PAGE_SIZE, PAGE_SIZE};
/// The longest encoded bucket name (file systems allow 255 bytes per name; leave room for the
/// `.json.lock` and temporary-file decorations).
const MAX_FILE_STEM: usize = 200;

// ---------------------------------------------------------------------------------------------
// Per-link state
// ---------------------------------------------------------------------------------------------

/// What one link configured: parsed and checked once, at link put, so that calls only look it
/// up. The [`LinkTable`] stores it under the link's key (calling component + link name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkState {
    /// Canonical (absolute, symlinks resolved) so two spellings of one directory share locks.
    dir: PathBuf,
    page_size: usize,
}

impl LinkState {
    /// Reads and checks a link's target config. Blocking (it touches the file system): call
    /// it through [`blocking`].
    fn from_config(config: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        Ok(Self {
            dir: usable_dir(config)?,
            page_size: keyvalue::page_size(config)?,
        })
    }
}

/// The `dir` of a link: present, absolute, created if missing, and writable.
fn usable_dir(config: &BTreeMap<String, String>) -> Result<PathBuf, ProviderError> {
    let fix = format!(
        "set link target config `{DIR}` to the absolute path of a directory this provider may \
         write, e.g. `trellis config put kv-files {DIR}=/var/lib/trellis/kv` and \
         `trellis link put COMPONENT PROVIDER wasi:keyvalue --interface store --interface \
         atomics --target-config kv-files`"
    );
    let Some(raw) = setting(config, &[DIR]) else {
        return Err(ProviderError::new(format!(
            "the link has no `{DIR}` setting: {fix}"
        )));
    };
    let dir = Path::new(raw);
    if !dir.is_absolute() {
        // A relative path would depend on the working directory of whichever process runs
        // the provider (the host's, or the provider's own): refuse rather than guess.
        return Err(ProviderError::new(format!(
            "link setting `{DIR}` must be an absolute path, not `{raw}`: {fix}"
        )));
    }
    let not_writable = |what: &str, e: std::io::Error| {
        ProviderError::new(format!(
            "link setting `{DIR}` = `{raw}` is not usable: {what}: {e}; {fix}"
        ))
    };
    fs::create_dir_all(dir).map_err(|e| not_writable("cannot create the directory", e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| not_writable("cannot resolve the directory", e))?;
    // Prove now that writes will work, with the same temp-file-and-rename route they take.
    let probe = dir.join(".trellis-provider-template.probe");
    write_atomically(&dir, &probe, b"probe")
        .map_err(|e| not_writable("cannot write a file in it", e))?;
    // Leaving the probe behind would be harmless; removing it keeps the directory tidy.
    let _ = fs::remove_file(&probe);
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// Bucket files
// ---------------------------------------------------------------------------------------------

/// Key → value of one bucket, in key order (which is also `list-keys` order).
type Entries = BTreeMap<String, Vec<u8>>;

/// One value in a bucket file.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredValue {
    /// UTF-8 text, stored as is: `"visits": "42"`.
    Text(String),
    /// Any other bytes: `"avatar": {"base64": "iVBORw0…"}`.
    Bytes { base64: String },
}

/// The files of one bucket in a link's directory.
struct BucketFiles {
    dir: PathBuf,
    /// `DIR/NAME.json`: the data.
    data: PathBuf,
    /// `DIR/NAME.json.lock`: empty; its advisory lock serializes writers across processes. A
    /// separate file because the data file is replaced on every write (a lock on it would be
    /// on the old, unlinked version).
    lock: PathBuf,
}

impl BucketFiles {
    fn new(dir: &Path, bucket: &str) -> Result<Self, KvError> {
        let stem = file_stem(bucket)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            data: dir.join(format!("{stem}.json")),
            lock: dir.join(format!("{stem}.json.lock")),
        })
    }

    /// The bucket's entries; a bucket never written is empty.
    fn read(&self) -> Result<Entries, KvError> {
        let bytes = match fs::read(&self.data) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entries::new()),
            Err(e) => return Err(io_error("read", &self.data, &e)),
        };
        let stored: BTreeMap<String, StoredValue> =
            serde_json::from_slice(&bytes).map_err(|e| {
                KvError::Other(format!(
                    "bucket file {} is not a JSON object of key → value ({e}); restore it from \
                     a backup or remove it to empty the bucket",
                    self.data.display()
                ))
            })?;
        stored
            .into_iter()
            .map(|(key, value)| {
                let bytes = match value {
                    StoredValue::Text(text) => text.into_bytes(),
                    StoredValue::Bytes { base64 } => BASE64.decode(base64).map_err(|e| {
                        KvError::Other(format!(
                            "key `{key}` in bucket file {} holds invalid base64 ({e})",
                            self.data.display()
                        ))
                    })?,
                };
                Ok((key, bytes))
            })
            .collect()
    }

    /// Replaces the bucket's file with `entries`, crash-safely.
    fn write(&self, entries: &Entries) -> Result<(), KvError> {
        let stored: BTreeMap<&str, StoredValue> = entries
            .iter()
            .map(|(key, value)| {
                let value = match std::str::from_utf8(value) {
                    Ok(text) => StoredValue::Text(text.to_string()),
                    Err(_) => StoredValue::Bytes {
                        base64: BASE64.encode(value),
                    },
                };
                (key.as_str(), value)
            })
            .collect();
        let json = serde_json::to_vec_pretty(&stored)
            .map_err(|e| KvError::Other(format!("cannot encode bucket as JSON: {e}")))?;
        write_atomically(&self.dir, &self.data, &json)
            .map_err(|e| io_error("write", &self.data, &e))
    }

    /// Takes the cross-process lock of the bucket; released when the file is dropped.
    fn lock_across_processes(&self) -> Result<File, KvError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(|e| io_error("open the lock file", &self.lock, &e))?;
        match file.lock() {
            Ok(()) => {}
            // Some network file systems have no locks; the in-process mutex still holds, so
            // carry on rather than refusing every write.
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                tracing::debug!(lock = %self.lock.display(), "no file locks here: {e}");
            }
            Err(e) => return Err(io_error("lock", &self.lock, &e)),
        }
        Ok(file)
    }
}

/// The file name (without extension) of a bucket: bytes other than `a-z 0-9 - _` become `%XX`.
fn file_stem(bucket: &str) -> Result<String, KvError> {
    let bucket = if bucket.is_empty() { "default" } else { bucket };
    let mut stem = String::with_capacity(bucket.len());
    for byte in bucket.bytes() {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => stem.push(char::from(byte)),
            other => {
                let _ = write!(stem, "%{other:02X}");
            }
        }
    }
    if stem.len() > MAX_FILE_STEM {
        let start: String = bucket.chars().take(32).collect();
        return Err(KvError::Other(format!(
            "bucket identifier `{start}…` is too long for a file name ({} bytes encoded, at \
             most {MAX_FILE_STEM}); use a shorter identifier",
            stem.len()
        )));
    }
    Ok(stem)
}

/// Writes `bytes` to `target` through a temporary file in `dir`: after a crash, `target` holds
/// either its old content or `bytes`, never part of them.
fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and write, so that nothing else ever opens this file.
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = File::create_new(&temp)?;
        file.write_all(bytes)?;
        // The data must be on disk before the rename makes it the bucket's content.
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, target)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Flushes a directory, so that a rename in it survives a power cut.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> KvError {
    KvError::Other(format!("cannot {what} {}: {e}", path.display()))
}

/// The async mutex of one bucket file, shared by every provider instance in this process.
///
/// Process-wide (a `static`) on purpose: two links — or two provider instances, like the two
/// "hosts" of the conformance test — naming the same directory must take turns on its files.
/// The map keeps one small entry per bucket file ever written.
fn bucket_mutex(data: &Path) -> Arc<tokio::sync::Mutex<()>> {
    type Mutexes = Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;
    static MUTEXES: OnceLock<Mutexes> = OnceLock::new();
    // A panic cannot happen while the map is locked (one `entry` call), so a poisoned lock
    // still holds a consistent map.
    let mut mutexes = MUTEXES
        .get_or_init(Mutexes::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    mutexes.entry(data.to_path_buf()).or_default().clone()
}

/// Runs file-system work on tokio's blocking threads, off the async workers that serve calls.
/// `Err` only if the work panicked (a bug), with a message instead of a second panic.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("a file key-value task failed: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------------

/// `wasi:keyvalue` in JSON files, one per bucket, in the directory each link names.
///
/// Holds no data itself, only what each link configured: two instances (two hosts) given the
/// same `dir` share their buckets.
#[derive(Default)]
pub struct FileKvProvider {
    /// Per-link state: filled by link put, emptied by link delete, read by every call.
    links: LinkTable<LinkState>,
    /// This provider's id in the lattice, learnt at `init`, for error messages.
    provider_id: ProviderIdCell,
}

impl FileKvProvider {
    /// A provider with no links yet. This is also the factory a host registry uses
    /// (`factory(FileKvProvider::new)`, see the README).
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of the link a call came through.
    ///
    /// This is **the CallContext / LinkTable pattern**: the host tells the provider who is
    /// calling (`cx.source_id`) and through which link (`cx.link_name`); the provider looks
    /// that link up in the table its link callbacks filled. A call through a link it was never
    /// given (or one deleted since) is refused with the SDK's standard message, which names
    /// the component and the link and gives the `trellis link put` command to run.
    fn link(&self, cx: &CallContext) -> Result<Arc<LinkState>, KvError> {
        self.links.get(cx).ok_or_else(|| {
            let id = self.provider_id.get();
            let example = Some("dir=/ABSOLUTE/PATH");
            keyvalue::unknown_link(cx, "the file key-value provider", &id, example)
        })
    }

    fn files(&self, cx: &CallContext, bucket: &str) -> Result<BucketFiles, KvError> {
        let link = self.link(cx)?;
        BucketFiles::new(&link.dir, bucket)
    }

    /// A snapshot of a bucket (no lock needed: files are only ever replaced whole).
    async fn read(&self, cx: &CallContext, bucket: &str) -> Result<Entries, KvError> {
        let files = self.files(cx, bucket)?;
        blocking(move || files.read())
            .await
            .map_err(KvError::Other)?
    }

    /// Changes a bucket as one atomic step: lock, read, `change`, write (only if `change`
    /// says it changed something), unlock. `change` returns the call's answer and whether to
    /// write; an `Err` from it leaves the file untouched.
    async fn update<T: Send + 'static>(
        &self,
        cx: &CallContext,
        bucket: &str,
        change: impl FnOnce(&mut Entries) -> Result<(T, bool), KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let files = self.files(cx, bucket)?;
        // `lock_owned` so the guard can move into the blocking task: if the caller gives up
        // (its deadline passes) the write still finishes before the next one starts.
        let guard = bucket_mutex(&files.data).lock_owned().await;
        blocking(move || {
            let _in_process = guard;
            let _across_processes = files.lock_across_processes()?;
            let mut entries = files.read()?;
            let (answer, changed) = change(&mut entries)?;
            if changed {
                files.write(&entries)?;
            }
            Ok(answer)
        })
        .await
        .map_err(KvError::Other)?
    }
}

#[async_trait]
impl Provider for FileKvProvider {
    /// **init** — called once, before any link or call. Receives the provider id, lattice,
    /// host and the provider's own named configs (`trellis provider start … --config NAME`).
    /// Open shared resources here (a client, a thread pool); per-link resources wait for link
    /// put. This provider only remembers its id for error messages. An `Err` here stops the
    /// start, and the host reports the message.
    async fn init(&self, init: &InitContext) -> Result<(), ProviderError> {
        self.provider_id.remember(init);
        tracing::info!(provider = %init.provider_id, lattice = %init.lattice, "file key-value provider ready");
        Ok(())
    }

    /// **receive_link_config_as_target** — a component linked to this provider (`trellis
    /// link put COMPONENT PROVIDER …`), or a link's config changed. The link's
    /// `target_config` holds the settings; check them all *now* and refuse a bad link with a
    /// message naming the key to set, so the operator sees the mistake at `link put`, not on
    /// some later call. Putting a link that already exists replaces its state; if the new
    /// config is refused, the link keeps its previous state.
    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let config = link.target_config.clone();
        let state = blocking(move || LinkState::from_config(&config))
            .await
            .map_err(ProviderError::new)??;
        tracing::info!(
            component = %link.source_id,
            link = %link.link_name,
            dir = %state.dir.display(),
            "file key-value link put"
        );
        self.links.insert(link.target_key(), state);
        Ok(())
    }

    /// **delete_link_as_target** — the link is gone: forget its state, so later calls through
    /// it are refused. The files stay: data belongs to the directory, not to the link (put
    /// the link again and it is all there). Deleting an unknown link is not an error.
    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        if self.links.remove(&link.target_key()).is_some() {
            tracing::info!(component = %link.source_id, link = %link.link_name, "file key-value link deleted");
        }
        Ok(())
    }

    // `receive_link_config_as_source` / `delete_link_as_source` (a provider that *calls*
    // components, such as an HTTP server) and `update_config` keep their no-op defaults.

    /// **health** — asked periodically, and by the host before it reports an out-of-process
    /// provider started. Keep it cheap (no writes): here, every linked directory must still
    /// be a directory.
    async fn health(&self) -> HealthStatus {
        let dirs: Vec<_> = self
            .links
            .all()
            .into_iter()
            .map(|(key, state)| (key, state.dir.clone()))
            .collect();
        let missing = blocking(move || {
            dirs.into_iter()
                .filter(|(_, dir)| !dir.is_dir())
                .map(|(key, dir)| {
                    format!(
                        "link `{}` of `{}`: {} is gone",
                        key.link_name,
                        key.component,
                        dir.display()
                    )
                })
                .collect::<Vec<String>>()
        })
        .await;
        match missing {
            Ok(missing) if missing.is_empty() => HealthStatus::healthy(),
            Ok(missing) => HealthStatus::unhealthy(missing.join("; ")),
            Err(message) => HealthStatus::unhealthy(message),
        }
    }

    /// **shutdown** — called once, last. Release connections and stop background work. Every
    /// write here is already on disk when its call returns, so there is nothing to flush; just
    /// forget the links.
    async fn shutdown(&self) -> Result<(), ProviderError> {
        self.links.drain();
        Ok(())
    }

    /// **capabilities** — which capability traits this type serves, as trait objects of
    /// `self`. The host routes `wasi:keyvalue/*` imports to `keyvalue`; the process runner
    /// dispatches NATS calls to it. A provider serving SQL too would also fill `sql`.
    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities {
            keyvalue: Some(self),
            ..Default::default()
        }
    }
}

#[async_trait]
impl KeyValue for FileKvProvider {
    /// `store.open`: the link must exist and the identifier must make a file name. The file
    /// itself appears on the first write.
    async fn open(&self, cx: &CallContext, bucket: &str) -> Result<(), KvError> {
        self.files(cx, bucket).map(|_| ())
    }

    async fn get(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.read(cx, bucket).await?.remove(key))
    }

    async fn set(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        let key = key.to_string();
        self.update(cx, bucket, move |entries| {
            entries.insert(key, value);
            Ok(((), true))
        })
        .await
    }

    async fn delete(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<(), KvError> {
        let key = key.to_string();
        self.update(cx, bucket, move |entries| {
            let removed = entries.remove(&key).is_some();
            Ok(((), removed))
        })
        .await
    }

    async fn exists(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.read(cx, bucket).await?.contains_key(key))
    }

    /// Keys in byte order; the cursor is the offset of the next page in that order.
    async fn list_keys(
        &self,
        cx: &CallContext,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KvError> {
        let page_size = self.link(cx)?.page_size;
        let entries = self.read(cx, bucket).await?;
        let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys: Vec<String> = entries
            .keys()
            .skip(start)
            .take(page_size)
            .cloned()
            .collect();
        let next = start.saturating_add(keys.len());
        let cursor = (next < entries.len()).then(|| u64::try_from(next).unwrap_or(u64::MAX));
        Ok(KeyPage { keys, cursor })
    }

    /// Read, add, write under the bucket's lock: no increment is ever lost. A value that is
    /// not a decimal `u64`, or an overflow, is an error naming the key, and changes nothing.
    async fn increment(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        let key = key.to_string();
        self.update(cx, bucket, move |entries| {
            let current = parse_counter(&key, entries.get(&key).map(Vec::as_slice))?;
            let new = add_to_counter(&key, current, delta)?;
            entries.insert(key, new.to_string().into_bytes());
            Ok((new, true))
        })
        .await
    }

    // The batch calls have defaults (one call per key); overriding them turns N file
    // rewrites into one.

    async fn get_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let entries = self.read(cx, bucket).await?;
        Ok(keys
            .into_iter()
            .map(|key| entries.get(&key).cloned().map(|value| (key, value)))
            .collect())
    }

    async fn set_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        if items.is_empty() {
            // Still check the link and bucket, as a call that does something would.
            return self.files(cx, bucket).map(|_| ());
        }
        self.update(cx, bucket, move |entries| {
            entries.extend(items);
            Ok(((), true))
        })
        .await
    }

    async fn delete_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        self.update(cx, bucket, move |entries| {
            let mut changed = false;
            for key in &keys {
                changed |= entries.remove(key).is_some();
            }
            Ok(((), changed))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_stay_inside_the_directory() {
        assert_eq!(file_stem("orders").unwrap(), "orders");
        assert_eq!(file_stem("").unwrap(), "default");
        assert_eq!(file_stem("../etc").unwrap(), "%2E%2E%2Fetc");
        assert_eq!(file_stem("A/b").unwrap(), "%41%2Fb");
        assert_eq!(file_stem("é").unwrap(), "%C3%A9");
        assert!(file_stem(&"x".repeat(MAX_FILE_STEM)).is_ok());
        assert!(matches!(
            file_stem(&"x".repeat(MAX_FILE_STEM + 1)),
            Err(KvError::Other(m)) if m.contains("too long")
        ));
    }

    #[test]
    fn text_stays_readable_and_bytes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let files = BucketFiles::new(dir.path(), "b").unwrap();
        let entries = Entries::from([
            ("visits".to_string(), b"42".to_vec()),
            ("blob".to_string(), vec![0, 159, 146, 150]),
        ]);
        files.write(&entries).unwrap();
        let text = fs::read_to_string(&files.data).unwrap();
        assert!(text.contains(r#""visits": "42""#), "{text}");
        assert!(text.contains(r#""base64": "AJ+Slg==""#), "{text}");
        assert_eq!(files.read().unwrap(), entries);
    }

    #[test]
    fn a_garbled_bucket_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = BucketFiles::new(dir.path(), "b").unwrap();
        fs::write(&files.data, b"{ half").unwrap();
        match files.read() {
            Err(KvError::Other(m)) => assert!(m.contains("b.json"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
