//! Per-mailbox security state: the PIN hash, the failed-login lockout and
//! the temporary greeting's end date.
//!
//! One small JSON file per box, `<data>/security/<box>.json`, written
//! atomically (temp file, fsync, rename) with mode 0600 in a 0700 directory,
//! so it survives a restart and is not world-readable:
//!
//! ```json
//! { "pin": { "hash": "$argon2id$v=19$...", "origin": "config",
//!            "config_hash": "$argon2id$v=19$..." },
//!   "failures": 2, "last_failure_at": "...", "locked_until": null,
//!   "temp_greeting_expires": "2026-12-01T00:00:00Z" }
//! ```
//!
//! PINs are never stored in plain text. The configured PIN is hashed into
//! this file on first use; a PIN changed by phone is stored only as its hash
//! and wins over the configured one. If an administrator later changes the
//! PIN in the config (a reset for a user who forgot theirs), the new config
//! PIN takes over again: `config_hash` remembers which config PIN was last
//! seen, so a change is noticed without keeping it in clear.
//!
//! Entered PINs are checked by recomputing Argon2 with the stored salt and
//! parameters and comparing the outputs in constant time
//! ([`subtle::ConstantTimeEq`]). Hashing is deliberately slow (tens of
//! milliseconds in release builds) and runs on low-priority threads of its
//! own (`argon2_pool`): call the PIN methods from `spawn_blocking`, they
//! wait there. Checks for one box are serialized, which also slows down
//! parallel guessing.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use jiff::{SignedDuration, Timestamp};
use subtle::ConstantTimeEq;

use super::argon2_pool;
use super::fsutil::{self, io_err};
use super::{GreetingKind, MailboxId, Store, StoreError};

/// When repeated wrong PINs lock a box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive wrong PINs, across calls, that lock the box (0: never).
    pub max_failures: u32,
    /// How long the box stays locked.
    pub lockout: SignedDuration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            lockout: SignedDuration::from_mins(15),
        }
    }
}

/// The result of checking an entered PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Right PIN; the failure count is reset.
    Accepted,
    /// Wrong PIN. `failures` is the consecutive count so far (persisted);
    /// `locked_until` is set when this failure locked the box.
    Rejected {
        failures: u32,
        locked_until: Option<Timestamp>,
    },
    /// The box is locked; the PIN was not even looked at.
    Locked { until: Timestamp },
}

/// An active temporary greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempGreeting {
    /// When it stops being used and is removed; `None` until removed by hand.
    pub expires: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum PinOrigin {
    /// Hashed from the PIN in the config file.
    Config,
    /// Set by the owner by phone.
    Phone,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct PinRecord {
    /// Argon2 PHC string of the PIN in force.
    hash: String,
    origin: PinOrigin,
    /// PHC string of the config PIN last seen, to notice an admin reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_hash: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct SecurityRecord {
    #[serde(default)]
    pin: Option<PinRecord>,
    /// Consecutive wrong PINs since the last success or lockout.
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    last_failure_at: Option<Timestamp>,
    #[serde(default)]
    locked_until: Option<Timestamp>,
    #[serde(default)]
    temp_greeting_expires: Option<Timestamp>,
}

/// The security state of every mailbox. Cheap to clone; clones share the
/// per-box locks.
#[derive(Clone)]
pub struct SecurityStore {
    dir: PathBuf,
    policy: LockoutPolicy,
    params: Params,
    /// One lock per box: read-modify-write of its file, and PIN checks.
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    /// Recorded config-PIN hashes already checked against the config PIN,
    /// so a login costs one Argon2 run, not two (kept in memory only: the
    /// config holds the clear PIN anyway).
    config_pin_seen: Arc<Mutex<HashMap<String, (String, String)>>>,
}

impl std::fmt::Debug for SecurityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityStore")
            .field("dir", &self.dir)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Argon2id with the OWASP-recommended minimum (19 MiB, 2 passes).
fn default_params() -> Params {
    Params::DEFAULT
}

/// Wraps a hashing failure (which valid parameters never produce) as an
/// I/O error on the state file, the closest [`StoreError`] there is.
fn hash_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    io_err(path, io::Error::other(format!("argon2: {e}")))
}

impl SecurityStore {
    /// The security state under `data_dir` (the store's data directory),
    /// with the default lockout policy and Argon2 parameters. Creates
    /// `security/` (mode 0700) if needed.
    pub fn open(data_dir: &Path) -> Result<SecurityStore, StoreError> {
        let dir = data_dir.join("security");
        create_private_dir(&dir)?;
        Ok(SecurityStore {
            dir,
            policy: LockoutPolicy::default(),
            params: default_params(),
            locks: Arc::new(Mutex::new(HashMap::new())),
            config_pin_seen: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The security state beside `store`'s mailboxes.
    pub fn for_store(store: &Store) -> Result<SecurityStore, StoreError> {
        SecurityStore::open(store.root())
    }

    /// Replaces the lockout policy.
    pub fn with_policy(mut self, policy: LockoutPolicy) -> SecurityStore {
        self.policy = policy;
        self
    }

    /// Replaces the Argon2 parameters used for new hashes (existing hashes
    /// keep theirs). Tests use tiny ones; production keeps the default.
    pub fn with_hash_params(mut self, params: Params) -> SecurityStore {
        self.params = params;
        self
    }

    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    fn path(&self, mailbox: &MailboxId) -> PathBuf {
        self.dir.join(format!("{mailbox}.json"))
    }

    fn box_lock(&self, mailbox: &MailboxId) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks
            .entry(mailbox.as_str().to_owned())
            .or_default()
            .clone()
    }

    /// Runs `f` on the box's record under its lock and writes the record
    /// back if `f` changed it.
    fn update<T>(
        &self,
        mailbox: &MailboxId,
        f: impl FnOnce(&mut SecurityRecord) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock = self.box_lock(mailbox);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path(mailbox);
        let before = read_record(&path)?;
        let mut record = before.clone();
        let out = f(&mut record)?;
        if record != before {
            write_record(&path, &record)?;
        }
        Ok(out)
    }

    fn read(&self, mailbox: &MailboxId) -> Result<SecurityRecord, StoreError> {
        let lock = self.box_lock(mailbox);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        read_record(&self.path(mailbox))
    }

    fn hash(&self, path: &Path, pin: &str) -> Result<String, StoreError> {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| hash_err(path, e))?;
        let params = self.params.clone();
        let pin = pin.to_owned();
        argon2_pool::run(move || {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(pin.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .unwrap_or(Err(argon2::password_hash::Error::Crypto))
        .map_err(|e| hash_err(path, e))
    }

    /// Until when the box is locked, if it is locked at `now`.
    pub fn locked_until(
        &self,
        mailbox: &MailboxId,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.read(mailbox)?.locked_until.filter(|&t| t > now))
    }

    /// Checks `entered` against the box's PIN: the one set by phone if any,
    /// else `config_pin` (hashed into the state file on first use). Counts
    /// consecutive failures across calls and locks the box per the policy.
    /// Blocking (Argon2).
    pub fn check_pin(
        &self,
        mailbox: &MailboxId,
        config_pin: &str,
        entered: &str,
        now: Timestamp,
    ) -> Result<PinCheck, StoreError> {
        let path = self.path(mailbox);
        self.update(mailbox, |rec| {
            if let Some(until) = rec.locked_until {
                if until > now {
                    return Ok(PinCheck::Locked { until });
                }
                // The lockout is over: a fresh start.
                rec.locked_until = None;
                rec.failures = 0;
            }
            self.sync_config_pin(&path, rec, config_pin)?;
            let hash = &rec.pin.as_ref().expect("set by sync_config_pin").hash;
            if pin_matches(hash, entered) {
                rec.failures = 0;
                rec.last_failure_at = None;
                return Ok(PinCheck::Accepted);
            }
            rec.failures = rec.failures.saturating_add(1);
            rec.last_failure_at = Some(now);
            let failures = rec.failures;
            let mut locked_until = None;
            if self.policy.max_failures > 0 && failures >= self.policy.max_failures {
                let until = now.saturating_add(self.policy.lockout).unwrap_or(now);
                rec.locked_until = Some(until);
                rec.failures = 0;
                locked_until = Some(until);
            }
            Ok(PinCheck::Rejected {
                failures,
                locked_until,
            })
        })
    }

    /// Makes the record's PIN follow the config: hashes it on first use,
    /// and lets a changed config PIN replace whatever was in force.
    fn sync_config_pin(
        &self,
        path: &Path,
        rec: &mut SecurityRecord,
        config_pin: &str,
    ) -> Result<(), StoreError> {
        let seen = match &rec.pin {
            None => false,
            Some(p) => {
                let config_hash = match p.origin {
                    PinOrigin::Config => Some(&p.hash),
                    PinOrigin::Phone => p.config_hash.as_ref(),
                };
                // A phone PIN without a record of the config PIN (written by
                // hand?) keeps precedence.
                config_hash.is_none_or(|h| self.same_config_pin_cached(path, h, config_pin))
            }
        };
        if !seen {
            if rec.pin.is_some() {
                tracing::info!(file = %path.display(), "the configured PIN changed; it replaces the one in force");
            }
            // A box's `pin_hash` (set through the API) is already the hash.
            let hash = if crate::config::is_pin_hash(config_pin) {
                config_pin.to_owned()
            } else {
                self.hash(path, config_pin)?
            };
            rec.pin = Some(PinRecord {
                hash,
                origin: PinOrigin::Config,
                config_hash: None,
            });
        }
        Ok(())
    }

    /// [`same_config_pin`], remembering a match (per state file) so the
    /// next login skips that Argon2 run.
    fn same_config_pin_cached(&self, path: &Path, recorded: &str, config_pin: &str) -> bool {
        let key = path.to_string_lossy().into_owned();
        let mut seen = self
            .config_pin_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen
            .get(&key)
            .is_some_and(|(h, p)| h == recorded && p == config_pin)
        {
            return true;
        }
        drop(seen);
        let same = same_config_pin(recorded, config_pin);
        if same {
            seen = self
                .config_pin_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            seen.insert(key, (recorded.to_owned(), config_pin.to_owned()));
        }
        same
    }

    /// Stores a PIN chosen by the owner (by phone). Only its hash is kept;
    /// it wins over `config_pin` until the config PIN itself changes.
    /// Blocking (Argon2). The caller checks the PIN rules.
    pub fn set_pin(
        &self,
        mailbox: &MailboxId,
        config_pin: &str,
        new_pin: &str,
    ) -> Result<(), StoreError> {
        let path = self.path(mailbox);
        self.update(mailbox, |rec| {
            self.sync_config_pin(&path, rec, config_pin)?;
            let config_hash = match rec.pin.take() {
                Some(PinRecord {
                    hash,
                    origin: PinOrigin::Config,
                    ..
                }) => Some(hash),
                Some(PinRecord { config_hash, .. }) => config_hash,
                None => None,
            };
            rec.pin = Some(PinRecord {
                hash: self.hash(&path, new_pin)?,
                origin: PinOrigin::Phone,
                config_hash,
            });
            Ok(())
        })
    }

    /// Forgets a deleted box's state (PIN, lockout, greeting end), so a box
    /// created later under its number starts afresh.
    pub fn forget(&self, mailbox: &MailboxId) -> Result<(), StoreError> {
        let lock = self.box_lock(mailbox);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        fsutil::remove_if_exists(&self.path(mailbox))
    }

    /// The Argon2id PHC string of `pin`, for a box's `pin_hash` (so the
    /// API never stores a PIN in clear). Blocking (Argon2).
    pub fn hash_pin(&self, pin: &str) -> Result<String, StoreError> {
        self.hash(&self.dir, pin)
    }

    /// Burns the time of one PIN check (two Argon2 runs: the config PIN's
    /// and the entered one's) without touching any state, so a login to a
    /// box that does not exist takes as long as a real one.
    pub fn dummy_check(&self, entered: &str) {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let hash = DUMMY.get_or_init(|| self.hash(Path::new("-"), "dummy-pin").unwrap_or_default());
        let _ = pin_matches(hash, "dummy-pin");
        let _ = pin_matches(hash, entered);
    }

    /// The end of the temporary greeting, if one was set.
    pub fn temp_greeting_expiry(
        &self,
        mailbox: &MailboxId,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.read(mailbox)?.temp_greeting_expires)
    }

    /// Sets or clears the temporary greeting's end.
    pub fn set_temp_greeting_expiry(
        &self,
        mailbox: &MailboxId,
        expires: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.update(mailbox, |rec| {
            rec.temp_greeting_expires = expires;
            Ok(())
        })
    }

    /// The box's temporary greeting if one is recorded and still in force.
    /// One past its end is removed (greeting file and end date) on the way,
    /// so an expired greeting disappears by itself.
    pub fn active_temp_greeting(
        &self,
        store: &Store,
        mailbox: &MailboxId,
        now: Timestamp,
    ) -> Result<Option<TempGreeting>, StoreError> {
        let expires = self.temp_greeting_expiry(mailbox)?;
        let present = store.has_greeting(mailbox, GreetingKind::Temporary)?;
        match expires {
            Some(t) if t <= now => {
                if present {
                    store.delete_greeting(mailbox, GreetingKind::Temporary)?;
                    tracing::info!(%mailbox, expired = %t, "temporary greeting expired; removed");
                }
                self.set_temp_greeting_expiry(mailbox, None)?;
                Ok(None)
            }
            _ if !present => {
                if expires.is_some() {
                    // Removed behind our back: forget its end date too.
                    self.set_temp_greeting_expiry(mailbox, None)?;
                }
                Ok(None)
            }
            expires => Ok(Some(TempGreeting { expires })),
        }
    }
}

/// Whether `pin` hashes, with the salt and parameters of the PHC string
/// `phc`, to the same output. The outputs are compared in constant time.
/// A malformed `phc` never matches.
pub fn pin_matches(phc: &str, pin: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let (salt, pin, len) = (salt.to_vec(), pin.to_owned(), expected.len());
    let out = argon2_pool::run(move || {
        let mut out = vec![0u8; len];
        let blocks = params.block_count();
        argon2_pool::with_memory(blocks, |memory| {
            Argon2::new(algorithm, version, params).hash_password_into_with_memory(
                pin.as_bytes(),
                &salt,
                &mut out,
                memory,
            )
        })
        .map(|()| out)
    });
    match out {
        Some(Ok(out)) => constant_time_eq(&out, expected.as_bytes()),
        _ => false,
    }
}

/// Whether the config PIN recorded as `recorded` (a hash) is `config_pin`,
/// which is either a clear PIN or, for a box with `pin_hash`, the hash.
fn same_config_pin(recorded: &str, config_pin: &str) -> bool {
    if crate::config::is_pin_hash(config_pin) {
        constant_time_eq(recorded.as_bytes(), config_pin.as_bytes())
    } else {
        pin_matches(recorded, config_pin)
    }
}

/// Equal lengths and equal bytes, in time that depends only on the length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(io_err(dir, e)),
        }
    }
    #[cfg(not(unix))]
    {
        fsutil::create_dir_all(dir)
    }
}

/// A missing file is a fresh record; an unreadable one is logged and
/// treated as fresh (the configured PIN applies again) rather than locking
/// the owner out for good.
fn read_record(path: &Path) -> Result<SecurityRecord, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SecurityRecord::default()),
        Err(e) => return Err(io_err(path, e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "corrupt security state; starting afresh");
            Ok(SecurityRecord::default())
        }
    }
}

/// Atomic replace with owner-only permissions.
fn write_record(path: &Path, record: &SecurityRecord) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    let tmp = fsutil::temp_path_for(path);
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io_err(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if let Some(dir) = path.parent() {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> MailboxId {
        MailboxId::try_from(s).unwrap()
    }

    /// Cheap Argon2 so debug-build tests stay fast; the format is the same.
    fn cheap() -> Params {
        Params::new(Params::MIN_M_COST, 1, 1, None).unwrap()
    }

    #[test]
    fn argon2_runs_at_most_one_per_core_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = sec(dir.path());
        let limit = std::thread::available_parallelism().unwrap().get();
        let threads: Vec<_> = (0..limit * 4)
            .map(|i| {
                let s = store.clone();
                std::thread::spawn(move || {
                    let h = s.hash_pin(&format!("{:04}", 1000 + i)).unwrap();
                    assert!(pin_matches(&h, &format!("{:04}", 1000 + i)));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let peak = argon2_pool::PEAK.load(std::sync::atomic::Ordering::Relaxed);
        assert!(peak >= 1 && peak <= limit, "peak {peak}, limit {limit}");
    }

    fn sec(dir: &Path) -> SecurityStore {
        SecurityStore::open(dir).unwrap().with_hash_params(cheap())
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn file_text(dir: &Path, mailbox: &str) -> String {
        fs::read_to_string(dir.join("security").join(format!("{mailbox}.json"))).unwrap()
    }

    #[test]
    fn constant_time_eq_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn reused_argon2_memory_gives_the_same_answers_across_memory_costs() {
        // The Argon2 threads keep their memory between runs: a larger cost
        // after a smaller one, and back, must still match only the right PIN.
        let d = tempfile::tempdir().unwrap();
        let small = sec(d.path());
        let large = SecurityStore::open(d.path())
            .unwrap()
            .with_hash_params(Params::new(64, 1, 1, None).unwrap());
        let hs = small.hash(Path::new("x"), "1357").unwrap();
        let hl = large.hash(Path::new("x"), "1357").unwrap();
        for _ in 0..3 {
            assert!(pin_matches(&hl, "1357"));
            assert!(!pin_matches(&hl, "1358"));
            assert!(pin_matches(&hs, "1357"));
            assert!(!pin_matches(&hs, "7531"));
        }
    }

    #[test]
    fn pin_matches_only_the_hashed_pin() {
        let d = tempfile::tempdir().unwrap();
        let s = sec(d.path());
        let h = s.hash(Path::new("x"), "2468").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(pin_matches(&h, "2468"));
        assert!(!pin_matches(&h, "2469"));
        assert!(!pin_matches(&h, "24680"));
        assert!(!pin_matches(&h, ""));
        assert!(!pin_matches("not a hash", "2468"));
        // Two hashes of one PIN differ (random salt) and both verify.
        let h2 = s.hash(Path::new("x"), "2468").unwrap();
        assert_ne!(h, h2);
        assert!(pin_matches(&h2, "2468"));
    }

    #[test]
    fn config_pin_is_hashed_on_first_use_never_stored_plain() {
        let d = tempfile::tempdir().unwrap();
        let s = sec(d.path());
        let now = t("2026-01-01T10:00:00Z");
        assert_eq!(
            s.check_pin(&mb("1001"), "4321", "4321", now).unwrap(),
            PinCheck::Accepted
        );
        let text = file_text(d.path(), "1001");
        assert!(text.contains("$argon2id$"), "{text}");
        assert!(!text.contains("4321"), "plain PIN leaked: {text}");
        assert!(text.contains("\"origin\": \"config\""), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = d.path().join("security/1001.json");
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn failures_persist_and_lock_the_box_across_instances() {
        let d = tempfile::tempdir().unwrap();
        let now = t("2026-01-01T10:00:00Z");
        let bx = mb("1001");
        for i in 1..=4 {
            // A fresh instance each time: the count lives on disk.
            let s = sec(d.path());
            assert_eq!(
                s.check_pin(&bx, "1234", "0000", now).unwrap(),
                PinCheck::Rejected {
                    failures: i,
                    locked_until: None
                }
            );
        }
        let s = sec(d.path());
        let until = now.saturating_add(SignedDuration::from_mins(15)).unwrap();
        assert_eq!(
            s.check_pin(&bx, "1234", "0000", now).unwrap(),
            PinCheck::Rejected {
                failures: 5,
                locked_until: Some(until)
            }
        );
        // Locked, after a "restart": even the right PIN is refused.
        let s = sec(d.path());
        let later = t("2026-01-01T10:14:59Z");
        assert_eq!(s.locked_until(&bx, later).unwrap(), Some(until));
        assert_eq!(
            s.check_pin(&bx, "1234", "1234", later).unwrap(),
            PinCheck::Locked { until }
        );
        // Over: the right PIN works and the count starts again.
        let after = t("2026-01-01T10:15:00Z");
        assert_eq!(s.locked_until(&bx, after).unwrap(), None);
        assert_eq!(
            s.check_pin(&bx, "1234", "1", after).unwrap(),
            PinCheck::Rejected {
                failures: 1,
                locked_until: None
            }
        );
        assert_eq!(
            s.check_pin(&bx, "1234", "1234", after).unwrap(),
            PinCheck::Accepted
        );
        assert_eq!(
            s.check_pin(&bx, "1234", "1", after).unwrap(),
            PinCheck::Rejected {
                failures: 1,
                locked_until: None
            }
        );
    }

    #[test]
    fn success_resets_the_count_and_other_boxes_are_independent() {
        let d = tempfile::tempdir().unwrap();
        let s = sec(d.path()).with_policy(LockoutPolicy {
            max_failures: 2,
            lockout: SignedDuration::from_mins(1),
        });
        let now = t("2026-01-01T10:00:00Z");
        assert!(matches!(
            s.check_pin(&mb("a"), "1234", "9", now).unwrap(),
            PinCheck::Rejected { failures: 1, .. }
        ));
        assert_eq!(
            s.check_pin(&mb("a"), "1234", "1234", now).unwrap(),
            PinCheck::Accepted
        );
        assert!(matches!(
            s.check_pin(&mb("a"), "1234", "9", now).unwrap(),
            PinCheck::Rejected {
                failures: 1,
                locked_until: None
            }
        ));
        assert!(matches!(
            s.check_pin(&mb("b"), "1234", "9", now).unwrap(),
            PinCheck::Rejected { failures: 1, .. }
        ));
        assert!(matches!(
            s.check_pin(&mb("a"), "1234", "9", now).unwrap(),
            PinCheck::Rejected {
                failures: 2,
                locked_until: Some(_)
            }
        ));
        assert_eq!(s.locked_until(&mb("b"), now).unwrap(), None);
    }

    #[test]
    fn phone_pin_wins_until_the_config_pin_changes() {
        let d = tempfile::tempdir().unwrap();
        let s = sec(d.path());
        let now = t("2026-01-01T10:00:00Z");
        let bx = mb("1001");
        s.set_pin(&bx, "1234", "98765").unwrap();
        let text = file_text(d.path(), "1001");
        assert!(
            !text.contains("98765") && text.contains("\"origin\": \"phone\""),
            "{text}"
        );
        let s = sec(d.path());
        assert!(matches!(
            s.check_pin(&bx, "1234", "1234", now).unwrap(),
            PinCheck::Rejected { .. }
        ));
        assert_eq!(
            s.check_pin(&bx, "1234", "98765", now).unwrap(),
            PinCheck::Accepted
        );
        // A second phone change still remembers the config PIN.
        s.set_pin(&bx, "1234", "55555").unwrap();
        assert!(matches!(
            s.check_pin(&bx, "1234", "98765", now).unwrap(),
            PinCheck::Rejected { .. }
        ));
        assert_eq!(
            s.check_pin(&bx, "1234", "55555", now).unwrap(),
            PinCheck::Accepted
        );
        // The admin resets the PIN in the config: it takes over.
        assert_eq!(
            s.check_pin(&bx, "4444", "4444", now).unwrap(),
            PinCheck::Accepted
        );
        assert!(matches!(
            s.check_pin(&bx, "4444", "55555", now).unwrap(),
            PinCheck::Rejected { .. }
        ));
    }

    #[test]
    fn corrupt_state_starts_afresh_with_the_config_pin() {
        let d = tempfile::tempdir().unwrap();
        let s = sec(d.path());
        fs::write(d.path().join("security/1001.json"), b"{ not json").unwrap();
        let now = t("2026-01-01T10:00:00Z");
        assert_eq!(
            s.check_pin(&mb("1001"), "1234", "1234", now).unwrap(),
            PinCheck::Accepted
        );
        assert!(file_text(d.path(), "1001").contains("$argon2id$"));
    }

    #[test]
    fn temp_greeting_expiry_removes_the_greeting() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let s = sec(d.path());
        let bx = mb("1001");
        let now = t("2026-01-01T10:00:00Z");
        assert_eq!(s.active_temp_greeting(&store, &bx, now).unwrap(), None);
        store
            .save_greeting(&bx, GreetingKind::Temporary, &[1, 2, 3])
            .unwrap();
        assert_eq!(
            s.active_temp_greeting(&store, &bx, now).unwrap(),
            Some(TempGreeting { expires: None })
        );
        let end = t("2026-01-02T00:00:00Z");
        sec(d.path())
            .set_temp_greeting_expiry(&bx, Some(end))
            .unwrap();
        assert_eq!(
            s.active_temp_greeting(&store, &bx, now).unwrap(),
            Some(TempGreeting { expires: Some(end) })
        );
        assert_eq!(s.active_temp_greeting(&store, &bx, end).unwrap(), None);
        assert!(!store.has_greeting(&bx, GreetingKind::Temporary).unwrap());
        assert_eq!(s.temp_greeting_expiry(&bx).unwrap(), None);
    }
}
