//! Where the server keeps what must survive it: metadata sets and locks (with the fencing
//! counter), in memory or in a crash-safe redb database in a data directory.
//!
//! A data directory that held a store is never silently re-initialised. When a store is
//! created, a manifest (`rtm2-store.manifest`: format version, store id, checksum) is written
//! and fsynced next to it, and the store id is written into the database. Opening a directory
//! with a manifest needs the database file to be there, not empty, and to carry the same id;
//! otherwise the server refuses to start with a message saying what is wrong. A new store in
//! its place is created only when asked (`ServerConfig::create_new_store`,
//! `rtm2 serve --create-new-store`), and the old file is moved aside, never deleted. A
//! directory without a manifest but with a database from an earlier version is adopted (its
//! manifest written); an empty directory is initialised.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::MetadataStore;

/// The database file in a data directory.
pub(crate) const DB_FILE: &str = "metadata.redb";
/// The manifest of a data directory.
pub(crate) const MANIFEST_FILE: &str = "rtm2-store.manifest";
const MANIFEST_HEADER: &str = "rtm2 data directory manifest";
const FORMAT_VERSION: u32 = 1;

/// A persisted lock (the record of `Store::save_lock`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StoredLock {
    #[prost(string, tag = "1")]
    pub app: String,
    #[prost(uint32, tag = "2")]
    pub channel_type: u32,
    #[prost(string, tag = "3")]
    pub channel: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(uint32, tag = "5")]
    pub ttl_s: u32,
    /// "" = free.
    #[prost(string, tag = "6")]
    pub owner: String,
    /// The fencing token of the owner's grant.
    #[prost(uint64, tag = "7")]
    pub fencing_token: u64,
}

impl StoredLock {
    /// The record's key (unique per app, channel and lock).
    pub(crate) fn key(&self) -> String {
        lock_key(&self.app, self.channel_type, &self.channel, &self.name)
    }
}

pub(crate) fn lock_key(app: &str, channel_type: u32, channel: &str, name: &str) -> String {
    // The app id has a fixed length and no '/'; a lock name has no NUL.
    format!("{app}/{channel_type}/{name}\0{channel}")
}

/// Where metadata sets (as encoded `pb::Metadata` by key) and locks are kept.
pub(crate) trait Store: Send + Sync {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Durable when it returns.
    fn save(&self, key: &str, value: &[u8]) -> io::Result<()>;
    /// Saves each `(key, value)` in order (a later one of the same key wins), all in one
    /// transaction where the store has them. Durable when it returns.
    fn save_many(&self, items: &[(String, Vec<u8>)]) -> io::Result<()> {
        items.iter().try_for_each(|(k, v)| self.save(k, v))
    }
    /// Every persisted lock.
    fn load_locks(&self) -> io::Result<Vec<StoredLock>>;
    /// Writes (or with `remove`, deletes) a lock record and raises the fencing mark to at
    /// least `fencing_mark`, in one transaction. Durable when it returns.
    fn save_lock(&self, lock: &StoredLock, remove: bool, fencing_mark: u64) -> io::Result<()>;
    /// The highest fencing token ever issued by this store (0: none).
    fn fencing_mark(&self) -> io::Result<u64>;
    /// Stored messages (`history.rs`): for each append in order, adds its record at its
    /// timestamp to its channel's history and removes that channel's records before its
    /// `min_ts` and its `drop` oldest — all in one transaction; returns how many records each
    /// append removed. Durable when it returns.
    fn history_append(&self, appends: &[HistoryAppend]) -> io::Result<Vec<usize>>;
    /// Whether writes reach a disk (then worth committing together: `group_commit.rs`).
    fn durable(&self) -> bool;
    /// At most `limit` records of `channel` with `end <= ts < start`, newest first.
    fn history_read(&self, channel: &str, start: u64, end: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>>;
    /// How many records `channel` has, and its newest timestamp (0: none).
    fn history_stat(&self, channel: &str) -> io::Result<(usize, u64)>;
}

/// One stored message to write (see `Store::history_append`).
#[derive(Debug, Clone)]
pub(crate) struct HistoryAppend {
    /// The channel's history key.
    pub channel: String,
    pub ts: u64,
    /// The encoded `pb::HistoryMessage`.
    pub record: Vec<u8>,
    /// Records of the channel older than this are removed (retention by age).
    pub min_ts: u64,
    /// The channel's oldest records removed beyond that (retention by count).
    pub drop: usize,
}

/// The key of a stored message: its channel's key, NUL, the timestamp as 20 digits (keys sort
/// by time within a channel).
fn history_key(channel: &str, ts: u64) -> String {
    format!("{channel}\0{ts:020}")
}

fn history_ts(key: &str) -> u64 {
    key.rsplit('\0').next().and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// Bounds of a channel's keys with `lo <= ts < hi`.
fn history_range(channel: &str, lo: u64, hi: u64) -> (String, String) {
    (history_key(channel, lo), history_key(channel, hi))
}

/// In memory: lost when the server stops. Locks are not kept (they live in the engine).
#[derive(Default)]
struct MemStore(Mutex<HashMap<String, Vec<u8>>>, Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

impl Store for MemStore {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    fn save(&self, key: &str, value: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap().insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn load_locks(&self) -> io::Result<Vec<StoredLock>> {
        Ok(Vec::new())
    }
    fn save_lock(&self, _: &StoredLock, _: bool, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn fencing_mark(&self) -> io::Result<u64> {
        Ok(0)
    }
    fn history_append(&self, appends: &[HistoryAppend]) -> io::Result<Vec<usize>> {
        let mut h = self.1.lock().unwrap();
        let mut removed = Vec::with_capacity(appends.len());
        for a in appends {
            h.insert(history_key(&a.channel, a.ts), a.record.clone());
            let (lo, hi) = history_range(&a.channel, 0, u64::MAX);
            let old: Vec<String> = h
                .range(lo..hi)
                .enumerate()
                .take_while(|(i, (k, _))| *i < a.drop || history_ts(k) < a.min_ts)
                .map(|(_, (k, _))| k.clone())
                .collect();
            for k in &old {
                h.remove(k);
            }
            removed.push(old.len());
        }
        Ok(removed)
    }
    fn durable(&self) -> bool {
        false
    }
    fn history_read(&self, channel: &str, start: u64, end: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let h = self.1.lock().unwrap();
        let (lo, hi) = history_range(channel, end, start);
        Ok(h.range(lo..hi).rev().take(limit).map(|(k, v)| (history_ts(k), v.clone())).collect())
    }
    fn history_stat(&self, channel: &str) -> io::Result<(usize, u64)> {
        let h = self.1.lock().unwrap();
        let (lo, hi) = history_range(channel, 0, u64::MAX);
        let mut range = h.range(lo..hi);
        let last = range.next_back().map_or(0, |(k, _)| history_ts(k));
        Ok((range.count() + usize::from(last != 0), last))
    }
}

const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("metadata");
const LOCKS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("locks");
const HISTORY: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("history");
/// `store_id` (the manifest's) and `fencing_mark` (u64, little endian).
const INFO: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("store_info");

struct FileStore(redb::Database);

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn read_info(db: &redb::Database, key: &str) -> io::Result<Option<Vec<u8>>> {
    use redb::ReadableDatabase;
    let tx = db.begin_read().map_err(io_err)?;
    let table = match tx.open_table(INFO) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    Ok(table.get(key).map_err(io_err)?.map(|v| v.value().to_vec()))
}

fn write_info(db: &redb::Database, key: &str, value: &[u8]) -> io::Result<()> {
    let tx = db.begin_write().map_err(io_err)?;
    {
        let mut table = tx.open_table(INFO).map_err(io_err)?;
        table.insert(key, value).map_err(io_err)?;
    }
    tx.commit().map_err(io_err)
}

impl Store for FileStore {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        use redb::ReadableDatabase;
        let tx = self.0.begin_read().map_err(io_err)?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        Ok(table.get(key).map_err(io_err)?.map(|v| v.value().to_vec()))
    }
    fn save(&self, key: &str, value: &[u8]) -> io::Result<()> {
        // The default durability: the commit is fsynced before it returns.
        let tx = self.0.begin_write().map_err(io_err)?;
        {
            let mut table = tx.open_table(TABLE).map_err(io_err)?;
            table.insert(key, value).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)
    }
    fn save_many(&self, items: &[(String, Vec<u8>)]) -> io::Result<()> {
        let tx = self.0.begin_write().map_err(io_err)?;
        {
            let mut table = tx.open_table(TABLE).map_err(io_err)?;
            for (key, value) in items {
                table.insert(key.as_str(), value.as_slice()).map_err(io_err)?;
            }
        }
        tx.commit().map_err(io_err)
    }
    fn load_locks(&self) -> io::Result<Vec<StoredLock>> {
        use prost::Message;
        use redb::{ReadableDatabase, ReadableTable};
        let tx = self.0.begin_read().map_err(io_err)?;
        let table = match tx.open_table(LOCKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(io_err)? {
            let (_, v) = row.map_err(io_err)?;
            out.push(StoredLock::decode(v.value()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?);
        }
        Ok(out)
    }
    fn save_lock(&self, lock: &StoredLock, remove: bool, fencing_mark: u64) -> io::Result<()> {
        use prost::Message;
        use redb::ReadableTable;
        let tx = self.0.begin_write().map_err(io_err)?;
        {
            let mut table = tx.open_table(LOCKS).map_err(io_err)?;
            let key = lock.key();
            if remove {
                table.remove(key.as_str()).map_err(io_err)?;
            } else {
                table.insert(key.as_str(), lock.encode_to_vec().as_slice()).map_err(io_err)?;
            }
            let mut info = tx.open_table(INFO).map_err(io_err)?;
            let mark = info.get("fencing_mark").map_err(io_err)?.map_or(0, |v| decode_u64(v.value()));
            if fencing_mark > mark {
                info.insert("fencing_mark", fencing_mark.to_le_bytes().as_slice()).map_err(io_err)?;
            }
        }
        tx.commit().map_err(io_err)
    }
    fn fencing_mark(&self) -> io::Result<u64> {
        Ok(read_info(&self.0, "fencing_mark")?.map_or(0, |v| decode_u64(&v)))
    }
    fn history_append(&self, appends: &[HistoryAppend]) -> io::Result<Vec<usize>> {
        use redb::ReadableTable;
        let tx = self.0.begin_write().map_err(io_err)?;
        let mut removed = Vec::with_capacity(appends.len());
        {
            let mut table = tx.open_table(HISTORY).map_err(io_err)?;
            for a in appends {
                table.insert(history_key(&a.channel, a.ts).as_str(), a.record.as_slice()).map_err(io_err)?;
                let (lo, hi) = history_range(&a.channel, 0, u64::MAX);
                let mut old = Vec::new();
                for (i, row) in table.range(lo.as_str()..hi.as_str()).map_err(io_err)?.enumerate() {
                    let (k, _) = row.map_err(io_err)?;
                    let k = k.value().to_string();
                    if i >= a.drop && history_ts(&k) >= a.min_ts {
                        break;
                    }
                    old.push(k);
                }
                removed.push(old.len());
                for k in old {
                    table.remove(k.as_str()).map_err(io_err)?;
                }
            }
        }
        tx.commit().map_err(io_err)?;
        Ok(removed)
    }
    fn durable(&self) -> bool {
        true
    }
    fn history_read(&self, channel: &str, start: u64, end: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        use redb::ReadableDatabase;
        let tx = self.0.begin_read().map_err(io_err)?;
        let table = match tx.open_table(HISTORY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let (lo, hi) = history_range(channel, end, start);
        let mut out = Vec::new();
        for row in table.range(lo.as_str()..hi.as_str()).map_err(io_err)?.rev().take(limit) {
            let (k, v) = row.map_err(io_err)?;
            out.push((history_ts(k.value()), v.value().to_vec()));
        }
        Ok(out)
    }
    fn history_stat(&self, channel: &str) -> io::Result<(usize, u64)> {
        use redb::ReadableDatabase;
        let tx = self.0.begin_read().map_err(io_err)?;
        let table = match tx.open_table(HISTORY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(io_err(e)),
        };
        let (lo, hi) = history_range(channel, 0, u64::MAX);
        let (mut n, mut last) = (0, 0);
        for row in table.range(lo.as_str()..hi.as_str()).map_err(io_err)? {
            let (k, _) = row.map_err(io_err)?;
            n += 1;
            last = history_ts(k.value());
        }
        Ok((n, last))
    }
}

fn decode_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
}

/// Opens the configured store. `create_new`: make a new empty store even if the directory
/// held one (the old database file is moved aside).
pub(crate) fn open(config: &MetadataStore, create_new: bool) -> io::Result<Box<dyn Store>> {
    match config {
        MetadataStore::Memory => Ok(Box::<MemStore>::default()),
        MetadataStore::Directory(dir) => Ok(Box::new(FileStore(open_dir(dir, create_new)?))),
    }
}

/// The parsed manifest: the store id.
fn read_manifest(path: &Path) -> io::Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is damaged ({why}); the server does not guess which store this directory holds: \
                 repair or restore the manifest, or start with --create-new-store to begin a new empty store",
                path.display()
            ),
        )
    };
    let mut lines = text.lines();
    let (Some(header), Some(format), Some(id), Some(sum)) = (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err(bad("too short"));
    };
    let body = format!("{header}\n{format}\n{id}\n");
    if sum.strip_prefix("checksum ") != Some(&format!("{:016x}", fnv1a(body.as_bytes()))) {
        return Err(bad("checksum mismatch"));
    }
    if header != MANIFEST_HEADER {
        return Err(bad("not an rtm2 manifest"));
    }
    match format.strip_prefix("format ").and_then(|f| f.parse::<u32>().ok()) {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has format {v}; this server reads format {FORMAT_VERSION}", path.display()),
            ));
        }
        None => return Err(bad("no format line")),
    }
    let id = id.strip_prefix("store_id ").filter(|i| !i.is_empty()).ok_or_else(|| bad("no store id"))?;
    Ok(Some(id.to_string()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn new_store_id() -> String {
    // Two randomly seeded hashes (std's RandomState draws its keys from the OS).
    let a = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{a:016x}{:016x}", h.finish())
}

/// Writes the manifest durably: a temporary file, fsynced, renamed, and the directory fsynced.
fn write_manifest(dir: &Path, id: &str) -> io::Result<()> {
    let body = format!("{MANIFEST_HEADER}\nformat {FORMAT_VERSION}\nstore_id {id}\n");
    let text = format!("{body}checksum {:016x}\n", fnv1a(body.as_bytes()));
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(MANIFEST_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

fn refuse(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} {what}; this data directory held a store ({MANIFEST_FILE}), so the server will not start \
             with an empty one: restore the file from a backup, or start with --create-new-store to begin \
             a new empty store (the old file, if any, is kept beside it)",
            path.display()
        ),
    )
}

fn open_db(path: &Path, create: bool) -> io::Result<redb::Database> {
    let r = if create { redb::Database::create(path) } else { redb::Database::open(path) };
    r.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            io::Error::new(io::ErrorKind::ResourceBusy, format!("{} is already open in another server", path.display()))
        }
        e => io::Error::other(format!("{}: {e}", path.display())),
    })
}

fn open_dir(dir: &Path, create_new: bool) -> io::Result<redb::Database> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(DB_FILE);
    let manifest = read_manifest(&dir.join(MANIFEST_FILE));
    let len = match std::fs::metadata(&path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    if create_new {
        if len.is_some() {
            let aside: PathBuf = dir.join(format!("{DB_FILE}.replaced-{}", rtm2_proto::now_ms()));
            std::fs::rename(&path, &aside)?;
            tracing::warn!(old = %aside.display(), "--create-new-store: the old store file was moved aside");
        }
        return create(dir, &path);
    }
    let manifest = manifest?;
    match (manifest, len) {
        // First run in this directory.
        (None, None) => create(dir, &path),
        (None, Some(0)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is empty (0 bytes); it may have held acknowledged data, so the server will not start \
                 with an empty store: restore it from a backup, or start with --create-new-store",
                path.display()
            ),
        )),
        // A store of an earlier version (no manifest yet): adopted.
        (None, Some(_)) => {
            let db = open_db(&path, false)?;
            let id = match read_info(&db, "store_id")? {
                Some(id) => String::from_utf8_lossy(&id).into_owned(),
                None => {
                    let id = new_store_id();
                    write_info(&db, "store_id", id.as_bytes())?;
                    id
                }
            };
            write_manifest(dir, &id)?;
            tracing::info!(path = %path.display(), store_id = %id, "metadata store opened; manifest written");
            Ok(db)
        }
        (Some(_), None) => Err(refuse(&path, "is missing")),
        (Some(_), Some(0)) => Err(refuse(&path, "is empty (0 bytes)")),
        (Some(want), Some(_)) => {
            let db = open_db(&path, false)?;
            match read_info(&db, "store_id")? {
                Some(id) if id == want.as_bytes() => {}
                Some(id) => {
                    return Err(refuse(
                        &path,
                        &format!(
                            "belongs to another store (id {}, the manifest says {want})",
                            String::from_utf8_lossy(&id)
                        ),
                    ));
                }
                None => return Err(refuse(&path, &format!("has no store id (the manifest says {want})"))),
            }
            tracing::info!(path = %path.display(), store_id = %want, "metadata store opened");
            Ok(db)
        }
    }
}

/// A new store: the database with its id first, then the manifest.
fn create(dir: &Path, path: &Path) -> io::Result<redb::Database> {
    let db = open_db(path, true)?;
    let id = new_store_id();
    write_info(&db, "store_id", id.as_bytes())?;
    write_manifest(dir, &id)?;
    tracing::info!(path = %path.display(), store_id = %id, "new metadata store created");
    Ok(db)
}

/// Stores for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A store whose writes of stored messages and of metadata fail ("disk full") while
    /// `failing` is set; everything else goes to `inner`.
    pub(crate) struct Flaky {
        pub inner: Arc<dyn Store>,
        pub failing: AtomicBool,
    }

    impl Flaky {
        fn fail(&self) -> io::Result<()> {
            match self.failing.load(Ordering::Relaxed) {
                true => Err(io::Error::other("disk full")),
                false => Ok(()),
            }
        }
    }

    impl Store for Flaky {
        fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
            self.inner.load(key)
        }
        fn save(&self, key: &str, value: &[u8]) -> io::Result<()> {
            self.inner.save(key, value)
        }
        fn save_many(&self, items: &[(String, Vec<u8>)]) -> io::Result<()> {
            self.fail()?;
            self.inner.save_many(items)
        }
        fn load_locks(&self) -> io::Result<Vec<StoredLock>> {
            self.inner.load_locks()
        }
        fn save_lock(&self, lock: &StoredLock, remove: bool, fencing_mark: u64) -> io::Result<()> {
            self.inner.save_lock(lock, remove, fencing_mark)
        }
        fn fencing_mark(&self) -> io::Result<u64> {
            self.inner.fencing_mark()
        }
        fn history_append(&self, appends: &[HistoryAppend]) -> io::Result<Vec<usize>> {
            self.fail()?;
            self.inner.history_append(appends)
        }
        fn durable(&self) -> bool {
            true
        }
        fn history_read(&self, channel: &str, start: u64, end: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
            self.inner.history_read(channel, start, end, limit)
        }
        fn history_stat(&self, channel: &str) -> io::Result<(usize, u64)> {
            self.inner.history_stat(channel)
        }
    }
}
