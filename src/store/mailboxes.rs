//! The mailboxes in force: config.toml's `[[mailbox]]` entries overlaid by
//! the store's `<data>/mailboxes/<box>/mailbox.toml` files, which the HTTP
//! API writes (see [`crate::config::mailbox_file`]).
//!
//! [`MailboxDirectory`] holds the effective set as a whole [`Config`] whose
//! `mailboxes` are replaced, behind an `RwLock<Arc<..>>` like the dial
//! plan's handle: every reader takes the `Arc` of the moment and keeps
//! using `config.mailbox(number)`, and a create, update or delete swaps it,
//! so the change reaches calls, lamps, notifications and the API at once.
//! A call keeps the snapshot it started with.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::{
    Config, ConfigError, ConfigErrors, MailboxConfig, parse_mailbox_file, render_mailbox_file,
};

use super::fsutil::{self, io_err};
use super::{Folder, MailboxId, MessageMeta, Store, StoreError};

/// The settings file's name inside a mailbox's directory.
pub const MAILBOX_FILE: &str = "mailbox.toml";

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("mailbox {0} already exists")]
    Exists(String),
    #[error("no mailbox {0}")]
    NotFound(String),
    #[error("mailbox {0} is defined in config.toml; remove it there")]
    InConfig(String),
    /// The settings do not pass the `[[mailbox]]` checks.
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn mailbox_file_path(&self, mailbox: &MailboxId) -> PathBuf {
        self.mailbox_dir(mailbox).join(MAILBOX_FILE)
    }

    /// A box's settings file, if it has one: its path and text.
    pub fn read_mailbox_file(
        &self,
        mailbox: &MailboxId,
    ) -> Result<Option<(PathBuf, String)>, StoreError> {
        let path = self.mailbox_file_path(mailbox);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some((
                path,
                // Not UTF-8: the checker reports what it can of it.
                String::from_utf8_lossy(&bytes).into_owned(),
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Replaces a box's settings file atomically (creating its folders).
    pub fn write_mailbox_file(&self, mailbox: &MailboxId, text: &str) -> Result<(), StoreError> {
        self.ensure_mailbox(mailbox)?;
        fsutil::atomic_write(&self.mailbox_file_path(mailbox), text.as_bytes())
    }

    /// Removes a box's directory: messages, greetings, settings, read
    /// state. It is first renamed to a hidden name (never a valid id), so it
    /// vanishes from listings at once even if the removal is cut short;
    /// [`Store::open`]'s next listing ignores the leftover. Returns the
    /// messages that were in it.
    pub fn remove_mailbox(&self, mailbox: &MailboxId) -> Result<Vec<MessageMeta>, StoreError> {
        let mut gone = Vec::new();
        for folder in Folder::ALL {
            gone.extend(self.list_messages(mailbox, folder)?);
        }
        let dir = self.mailbox_dir(mailbox);
        if !fsutil::exists(&dir)? {
            return Ok(gone);
        }
        let r: u32 = rand::random();
        let hidden = self
            .mailboxes_dir()
            .join(format!(".deleted-{mailbox}-{r:08x}"));
        fs::rename(&dir, &hidden).map_err(|e| io_err(&dir, e))?;
        fsutil::sync_dir(&self.mailboxes_dir())?;
        fs::remove_dir_all(&hidden).map_err(|e| io_err(&hidden, e))?;
        Ok(gone)
    }

    /// Removes what a deletion cut short left behind (hidden
    /// `.deleted-<box>-*` directories).
    fn sweep_deleted_mailboxes(&self) -> Result<(), StoreError> {
        let dir = self.mailboxes_dir();
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".deleted-"))
            {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| io_err(&path, e))?;
                tracing::info!(path = %path.display(), "removed the rest of a deleted mailbox");
            }
        }
        Ok(())
    }
}

/// For `voxmail check`: every `mailboxes/*/mailbox.toml` under `data_dir`
/// checked against `config`'s boxes, without opening (or creating) the
/// store. Returns how many files were read; a missing data directory has
/// none.
pub fn check_mailbox_files(config: &Config, data_dir: &Path) -> Result<usize, ConfigErrors> {
    let dir = data_dir.join("mailboxes");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            }]));
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| MailboxId::try_from(n.as_str()).is_ok())
        .collect();
    names.sort();
    let (mut read, mut errors) = (0, Vec::new());
    for number in names {
        let path = dir.join(&number).join(MAILBOX_FILE);
        let file = path.display().to_string();
        let text = match fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(ConfigError {
                    file,
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        read += 1;
        if let Err(e) = parse_mailbox_file(&text, &file, &number, config.mailbox(&number)) {
            errors.extend(e.0);
        }
    }
    if errors.is_empty() {
        Ok(read)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The effective mailboxes, shared by the SIP side, the apps, the
/// notifier and the API. Cheap to share behind an `Arc`.
pub struct MailboxDirectory {
    store: Store,
    /// config.toml as loaded: its boxes are the base.
    base: Arc<Config>,
    current: RwLock<Arc<Config>>,
    /// Serializes changes (read, check, write, swap).
    write: Mutex<()>,
    /// Bumped on every change, so a loop can notice cheaply.
    generation: AtomicU64,
}

impl std::fmt::Debug for MailboxDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxDirectory")
            .field("mailboxes", &self.config().mailboxes.len())
            .finish_non_exhaustive()
    }
}

impl MailboxDirectory {
    /// config.toml's boxes overlaid by every settings file in `store`.
    /// Every bad file is reported (with its path and line); none is used.
    pub fn load(base: Arc<Config>, store: Store) -> Result<MailboxDirectory, MailboxError> {
        store.sweep_deleted_mailboxes()?;
        let mut errors = Vec::new();
        let mut mailboxes = base.mailboxes.clone();
        for id in store.list_mailboxes()? {
            let Some((path, text)) = store.read_mailbox_file(&id)? else {
                continue;
            };
            let file = path.display().to_string();
            let own = base.mailbox(id.as_str());
            match parse_mailbox_file(&text, &file, id.as_str(), own) {
                Ok(m) => match mailboxes.iter_mut().find(|b| b.number == m.number) {
                    Some(slot) => *slot = m,
                    None => mailboxes.push(m),
                },
                Err(e) => errors.extend(e.0),
            }
        }
        if !errors.is_empty() {
            return Err(MailboxError::Invalid(ConfigErrors(errors)));
        }
        let config = Config {
            mailboxes,
            ..(*base).clone()
        };
        Ok(MailboxDirectory {
            store,
            base,
            current: RwLock::new(Arc::new(config)),
            write: Mutex::new(()),
            generation: AtomicU64::new(0),
        })
    }

    /// Only config.toml's boxes (no store files read): for code that has
    /// no directory of its own to share.
    pub fn from_config(base: Arc<Config>, store: Store) -> MailboxDirectory {
        MailboxDirectory {
            store,
            current: RwLock::new(base.clone()),
            base,
            write: Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// The configuration with the effective boxes, as of now.
    pub fn config(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes so far; differs after every create, update or delete.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The box with this number, as of now.
    pub fn get(&self, number: &str) -> Option<MailboxConfig> {
        self.config().mailbox(number).cloned()
    }

    /// Whether config.toml defines the box (it cannot be deleted here).
    pub fn in_config(&self, number: &str) -> bool {
        self.base.mailbox(number).is_some()
    }

    /// The shared boxes `member` belongs to.
    pub fn shared_with(&self, member: &str) -> Vec<MailboxConfig> {
        self.config()
            .mailboxes
            .iter()
            .filter(|m| m.shared && m.number != member && m.admits(member))
            .cloned()
            .collect()
    }

    /// The keys the box's settings file sets now (empty without one).
    pub fn overrides(&self, mailbox: &MailboxId) -> Result<toml::Table, MailboxError> {
        match self.store.read_mailbox_file(mailbox)? {
            None => Ok(toml::Table::new()),
            Some((path, text)) => text.parse::<toml::Table>().map_err(|e| {
                MailboxError::Invalid(ConfigErrors(vec![ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: e.message().to_owned(),
                }]))
            }),
        }
    }

    fn install(&self, change: impl FnOnce(&mut Vec<MailboxConfig>)) {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut config = (**cur).clone();
        change(&mut config.mailboxes);
        *cur = Arc::new(config);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Checks `table` as the box's whole settings file over `base`.
    fn check(
        &self,
        mailbox: &MailboxId,
        table: &toml::Table,
        base: Option<&MailboxConfig>,
    ) -> Result<(String, MailboxConfig), MailboxError> {
        let text = render_mailbox_file(table);
        let file = format!("mailboxes/{mailbox}/{MAILBOX_FILE}");
        let m = parse_mailbox_file(&text, &file, mailbox.as_str(), base)
            .map_err(MailboxError::Invalid)?;
        Ok((text, m))
    }

    /// Creates a box that exists nowhere yet, with the keys of `table`
    /// (which must set `pin_hash`).
    pub fn create(
        &self,
        mailbox: &MailboxId,
        table: toml::Table,
    ) -> Result<MailboxConfig, MailboxError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if self.config().mailbox(mailbox.as_str()).is_some() {
            return Err(MailboxError::Exists(mailbox.to_string()));
        }
        let (text, m) = self.check(mailbox, &table, None)?;
        // A folder left by an earlier box of this number (one removed from
        // config.toml) is kept, messages included: nothing is lost unasked.
        self.store.write_mailbox_file(mailbox, &text)?;
        let added = m.clone();
        self.install(|boxes| boxes.push(added));
        Ok(m)
    }

    /// Sets (`Some`) or removes (`None`: back to config.toml's value or the
    /// default) keys of the box's settings file.
    pub fn update(
        &self,
        mailbox: &MailboxId,
        changes: Vec<(String, Option<toml::Value>)>,
    ) -> Result<MailboxConfig, MailboxError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if self.config().mailbox(mailbox.as_str()).is_none() {
            return Err(MailboxError::NotFound(mailbox.to_string()));
        }
        let mut table = self.overrides(mailbox)?;
        for (key, value) in changes {
            // A new hashed PIN replaces a clear one written by hand.
            if key == "pin_hash" {
                table.remove("pin");
            }
            match value {
                Some(v) => table.insert(key, v),
                None => table.remove(&key),
            };
        }
        let base = self.base.mailbox(mailbox.as_str());
        let (text, m) = self.check(mailbox, &table, base)?;
        if table.is_empty() && base.is_some() {
            // Nothing overridden any more: config.toml alone.
            let path = self.store.mailbox_file_path(mailbox);
            fsutil::remove_if_exists(&path)?;
        } else {
            self.store.write_mailbox_file(mailbox, &text)?;
        }
        let updated = m.clone();
        self.install(|boxes| {
            if let Some(slot) = boxes.iter_mut().find(|b| b.number == updated.number) {
                *slot = updated;
            }
        });
        Ok(m)
    }

    /// Deletes a box created here, with its folder, messages and greetings;
    /// returns the box and the messages it held.
    pub fn delete(
        &self,
        mailbox: &MailboxId,
    ) -> Result<(MailboxConfig, Vec<MessageMeta>), MailboxError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let Some(m) = self.get(mailbox.as_str()) else {
            return Err(MailboxError::NotFound(mailbox.to_string()));
        };
        if self.in_config(mailbox.as_str()) {
            return Err(MailboxError::InConfig(mailbox.to_string()));
        }
        // Out of the set first: no new deposit starts into a box whose
        // folder is going.
        self.install(|boxes| boxes.retain(|b| b.number != mailbox.as_str()));
        let gone = self.store.remove_mailbox(mailbox)?;
        Ok((m, gone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    fn base() -> Arc<Config> {
        Arc::new(
            Config::parse(
                "[[mailbox]]\nnumber = \"1001\"\npin = \"1234\"\nname = \"Alice\"\n",
                "t",
            )
            .unwrap(),
        )
    }

    fn table(pairs: &[(&str, toml::Value)]) -> toml::Table {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn id(s: &str) -> MailboxId {
        MailboxId::try_from(s).unwrap()
    }

    #[test]
    fn create_update_delete_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = MailboxDirectory::load(base(), store.clone()).unwrap();
        let g0 = d.generation();
        let snapshot = d.config();

        let created = d
            .create(
                &id("2000"),
                table(&[("pin_hash", HASH.into()), ("language", "fr".into())]),
            )
            .unwrap();
        assert_eq!(created.pin, HASH);
        assert_ne!(d.generation(), g0);
        assert!(d.get("2000").is_some());
        // A snapshot taken before keeps its view.
        assert!(snapshot.mailbox("2000").is_none());
        let text = fs::read_to_string(dir.path().join("mailboxes/2000/mailbox.toml")).unwrap();
        assert!(text.contains("language = \"fr\""), "{text}");
        assert!(matches!(
            d.create(&id("2000"), table(&[("pin_hash", HASH.into())])),
            Err(MailboxError::Exists(_))
        ));
        assert!(matches!(
            d.create(&id("1001"), table(&[("pin_hash", HASH.into())])),
            Err(MailboxError::Exists(_))
        ));
        assert!(matches!(
            d.create(&id("2001"), table(&[("language", "xx".into())])),
            Err(MailboxError::Invalid(_))
        ));
        assert!(d.get("2001").is_none());
        assert!(!dir.path().join("mailboxes/2001").exists());

        // An override of a config box keeps config.toml's other keys.
        let m = d
            .update(&id("1001"), vec![("max_messages".into(), Some(5.into()))])
            .unwrap();
        assert_eq!(m.max_messages, Some(5));
        assert_eq!(m.name, "Alice");
        assert_eq!(m.pin, "1234");
        let bad = d.update(
            &id("1001"),
            vec![("timezone".into(), Some("Nowhere".into()))],
        );
        assert!(matches!(bad, Err(MailboxError::Invalid(_))));
        assert_eq!(d.get("1001").unwrap().timezone, "UTC");

        // Everything survives a restart; a deletion cut short is finished.
        let leftover = dir.path().join("mailboxes/.deleted-2999-0000abcd/inbox");
        fs::create_dir_all(&leftover).unwrap();
        let d2 = MailboxDirectory::load(base(), store.clone()).unwrap();
        assert!(!leftover.parent().unwrap().exists());
        assert_eq!(d2.get("2000").unwrap().language.as_deref(), Some("fr"));
        assert_eq!(d2.get("1001").unwrap().max_messages, Some(5));

        // Removing the last override falls back to config.toml.
        d.update(&id("1001"), vec![("max_messages".into(), None)])
            .unwrap();
        assert!(!dir.path().join("mailboxes/1001/mailbox.toml").exists());
        assert_eq!(d.get("1001").unwrap().max_messages, None);

        assert!(matches!(
            d.delete(&id("1001")),
            Err(MailboxError::InConfig(_))
        ));
        let (gone, messages) = d.delete(&id("2000")).unwrap();
        assert_eq!(gone.number, "2000");
        assert!(messages.is_empty());
        assert!(d.get("2000").is_none());
        assert!(!dir.path().join("mailboxes/2000").exists());
        assert!(matches!(
            d.delete(&id("2000")),
            Err(MailboxError::NotFound(_))
        ));
        assert!(
            store
                .list_mailboxes()
                .unwrap()
                .iter()
                .all(|b| b.as_str() != "2000")
        );
    }

    #[test]
    fn shared_boxes_know_their_members() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = MailboxDirectory::load(base(), store).unwrap();
        d.create(
            &id("team"),
            table(&[
                ("pin_hash", HASH.into()),
                ("shared", true.into()),
                (
                    "members",
                    toml::Value::Array(vec!["1001".into(), "1002".into()]),
                ),
                ("per_member_read", true.into()),
            ]),
        )
        .unwrap();
        let shared: Vec<String> = d
            .shared_with("1001")
            .into_iter()
            .map(|m| m.number)
            .collect();
        assert_eq!(shared, ["team"]);
        assert!(d.shared_with("1003").is_empty());
        assert!(d.shared_with("team").is_empty());
    }

    #[test]
    fn check_reads_every_file_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(check_mailbox_files(&base(), &data).unwrap(), 0);
        assert!(!data.exists());
        let store = Store::open(&data).unwrap();
        store
            .write_mailbox_file(&id("1001"), "language = \"de\"\n")
            .unwrap();
        store
            .write_mailbox_file(&id("2000"), &format!("pin_hash = \"{HASH}\"\n"))
            .unwrap();
        assert_eq!(check_mailbox_files(&base(), &data).unwrap(), 2);
        store
            .write_mailbox_file(&id("2001"), "max_messages = 0\n")
            .unwrap();
        let e = check_mailbox_files(&base(), &data).unwrap_err().to_string();
        assert!(e.contains("2001/mailbox.toml:1:"), "{e}");
    }

    #[test]
    fn a_corrupt_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write_mailbox_file(&id("1001"), "name = \"ok\"\nlanguage = [\n")
            .unwrap();
        store
            .write_mailbox_file(&id("3000"), "language = \"en\"\n")
            .unwrap();
        let Err(MailboxError::Invalid(errors)) = MailboxDirectory::load(base(), store) else {
            panic!("corrupt files accepted");
        };
        let shown = errors.to_string();
        assert!(shown.contains("mailboxes/1001/mailbox.toml:2:"), "{shown}");
        assert!(shown.contains("mailboxes/3000/mailbox.toml"), "{shown}");
        assert!(shown.contains("missing `pin`"), "{shown}");
    }
}
