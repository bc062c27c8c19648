//! Customer-managed keys on one core: key providers, each tenant's key manifest, and the
//! in-memory keys that seal new files and open existing ones (issue 6).
//!
//! ```text
//! CMK   held by the tenant's provider (`file`: a keyring file; `command`: an external program,
//!  │    e.g. a KMS client). pagecore never stores it.
//!  └─ KEK   per tenant, random; on disk only wrapped by the CMK (`keys.json`: `kek`)
//!      └─ DEK   per file (layer file, WAL segment), random, made by `crypto::PageSealer`;
//!               on disk only wrapped by the KEK, in `keys.json` under the file's id
//! ```
//!
//! `<data>/tenants/<tenant>/keys.json` is the tenant's **key manifest**: provider name, CMK
//! name, the wrapped KEK and every live file's wrapped DEK. It is rewritten whole (temp file,
//! fsync, rename, directory fsync) whenever it changes, so a rotation replaces every wrapped
//! key at once and the old wrapped keys are gone from the file system's namespace. A tenant
//! without a manifest is a plaintext tenant (created while encryption was off).
//!
//! Invariants:
//! - A file's DEK is in the durable manifest before the file can become visible (the sealer
//!   is handed out only after the manifest write), so a crash never leaves a file no key opens.
//! - Key material is only in `crypto` key types (zeroized on drop, not `Clone`, redacted
//!   `Debug`) or in `Zeroizing` buffers while it passes to or from a command provider. Errors
//!   and logs name providers, CMK names, key generations and file ids, never key bytes.
//! - Revocation drops [`Active`] — the KEK, every opener and every wrapped-key copy in memory —
//!   synchronously, on the owner core; a read after it finds no opener and fails
//!   `KeyUnavailable`. Sealers already handed out (the WAL writer's, one in-flight layer write)
//!   are dropped when their task ends, which revocation triggers by unloading the tenant.
//! - Only the owner core touches a tenant's keys (`Rc`/`RefCell`).

pub(crate) use crate::admin::KeyInfo as KeyStatus;
use crate::config::{Config, KeyProviderConfig};
use crate::hex::{hex, unhex};
use crate::runtime::{blocking, write_file_durably};
use crypto::{Cmk, FileId, Kek, KeyId, PageOpener, PageSealer, WrappedKey};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};
use wal::TenantId;
use zeroize::Zeroizing;

/// Name of a tenant's key manifest in its directory.
pub(crate) const MANIFEST: &str = "keys.json";

/// Why keys are not available. Messages never hold key material.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("keys of tenant {0} are revoked")]
    Revoked(TenantId),
    #[error("key provider {provider}: {why}")]
    Provider { provider: String, why: String },
    #[error("key manifest {path}: {why}")]
    Manifest { path: String, why: String },
    #[error("no data key for file {0:032x} in the tenant's key manifest")]
    UnknownFile(u128),
}

/// `keys.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Manifest {
    /// Name of the provider (in `[encryption.providers]`) that holds the CMK.
    provider: String,
    /// Which CMK of the provider (a keyring entry name, or an argument for the command).
    cmk: String,
    /// Revoked through the admin API: stays revoked across restarts until restored.
    #[serde(default)]
    revoked: bool,
    kek: StoredKek,
    /// File id (32 hex digits) → wrapped DEK (hex of the 64-byte `crypto::WrappedKey`).
    deks: BTreeMap<String, String>,
}

/// The KEK as stored: its generation and the provider's wrapping of it (hex).
#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredKek {
    id: u32,
    wrapped: String,
}

/// A key provider: holds customer master keys and wraps/unwraps KEKs with them. Calls block
/// (file reads, a child process): run them through [`blocking`].
#[derive(Clone, Debug)]
pub(crate) enum Provider {
    /// A keyring file of CMKs by name and version (see `deploy/README.md`).
    File { name: String, path: PathBuf },
    /// `command... wrap <cmk>` / `command... unwrap <cmk>`: hex in on stdin, hex out on stdout.
    Command { name: String, argv: Vec<String>, timeout: Duration },
}

/// One keyring file entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringEntry {
    name: String,
    version: u32,
    key: String,
}

impl Drop for KeyringEntry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keyring {
    #[serde(default)]
    keys: Vec<KeyringEntry>,
}

impl Provider {
    pub(crate) fn from_config(name: &str, config: &Config) -> Result<Provider, KeyError> {
        let unknown = || KeyError::Provider {
            provider: name.to_string(),
            why: "not configured in [encryption.providers]".into(),
        };
        match config.encryption.providers.get(name).ok_or_else(unknown)? {
            KeyProviderConfig::File { path } => Ok(Provider::File {
                name: name.to_string(),
                path: if path.as_os_str().is_empty() {
                    config.data_dir.join("dev-keyring.toml")
                } else {
                    path.clone()
                },
            }),
            KeyProviderConfig::Command { command, timeout_ms } => Ok(Provider::Command {
                name: name.to_string(),
                argv: command.clone(),
                timeout: Duration::from_millis(*timeout_ms),
            }),
        }
    }

    fn name(&self) -> &str {
        match self {
            Provider::File { name, .. } | Provider::Command { name, .. } => name,
        }
    }

    fn fail(&self, why: impl Into<String>) -> KeyError {
        KeyError::Provider { provider: self.name().to_string(), why: why.into() }
    }

    /// Wraps `kek` with the newest version of CMK `cmk`; returns the stored form (hex).
    fn wrap_kek(&self, cmk: &str, kek: &Kek) -> Result<String, KeyError> {
        match self {
            Provider::File { path, .. } => {
                let newest = self.keyring_cmk(path, cmk, None)?;
                Ok(hex(&newest.wrap_kek(kek).to_bytes()))
            }
            Provider::Command { .. } => {
                let input = Zeroizing::new(hex(kek.expose_secret_for_wrapping()));
                let out = self.run("wrap", cmk, &input)?;
                let blob = unhex(&out.trim().to_ascii_lowercase())
                    .ok_or_else(|| self.fail("wrap printed no hex"))?;
                if blob.is_empty() {
                    return Err(self.fail("wrap printed nothing"));
                }
                Ok(hex(&blob))
            }
        }
    }

    /// Unwraps a stored KEK of generation `id`.
    fn unwrap_kek(&self, cmk: &str, stored: &str, id: KeyId) -> Result<Kek, KeyError> {
        let blob = unhex(stored).ok_or_else(|| self.fail("stored KEK is not hex"))?;
        match self {
            Provider::File { path, .. } => {
                let wrapped = WrappedKey::decode(&blob).map_err(|e| self.fail(e.to_string()))?;
                let cmk_key = self.keyring_cmk(path, cmk, Some(wrapped.wrapping_key_id().0))?;
                let kek = cmk_key.unwrap_kek(&wrapped).map_err(|e| self.fail(e.to_string()))?;
                if kek.id() != id {
                    return Err(
                        self.fail(format!("KEK generation {} where {id} was recorded", kek.id()))
                    );
                }
                Ok(kek)
            }
            Provider::Command { .. } => {
                let out = self.run("unwrap", cmk, &hex(&blob))?;
                let bytes = Zeroizing::new(
                    unhex(&Zeroizing::new(out.trim().to_ascii_lowercase()))
                        .ok_or_else(|| self.fail("unwrap printed no hex"))?,
                );
                Kek::from_bytes(id, &bytes).map_err(|e| self.fail(e.to_string()))
            }
        }
    }

    /// CMK `cmk` from the keyring file: version `version`, or the newest.
    fn keyring_cmk(&self, path: &Path, cmk: &str, version: Option<u32>) -> Result<Cmk, KeyError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| self.fail(format!("reading keyring {}: {e}", path.display())))?,
        );
        let keyring: Keyring = toml::from_str(&text)
            .map_err(|e| self.fail(format!("keyring {}: {}", path.display(), e.message())))?;
        let entry = keyring
            .keys
            .iter()
            .filter(|k| k.name == cmk && version.is_none_or(|v| v == k.version))
            .max_by_key(|k| k.version)
            .ok_or_else(|| match version {
                Some(v) => self.fail(format!("CMK {cmk} version {v} is not in the keyring")),
                None => self.fail(format!("CMK {cmk} is not in the keyring")),
            })?;
        let bytes =
            Zeroizing::new(unhex(&Zeroizing::new(entry.key.to_ascii_lowercase())).ok_or_else(
                || self.fail(format!("CMK {cmk} version {}: key is not hex", entry.version)),
            )?);
        Cmk::from_bytes(KeyId(entry.version), &bytes).map_err(|e| self.fail(e.to_string()))
    }

    /// Runs the command provider with `op` and `cmk`, feeding `input` (hex); returns stdout.
    fn run(&self, op: &str, cmk: &str, input: &str) -> Result<Zeroizing<String>, KeyError> {
        let Provider::Command { argv, timeout, .. } = self else {
            unreachable!("run is for command providers");
        };
        let (program, args) = argv.split_first().ok_or_else(|| self.fail("command is empty"))?;
        let mut child = Command::new(program)
            .args(args)
            .arg(op)
            .arg(cmk)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail(format!("starting {program}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that exits without reading gets EPIPE here; its exit status tells why.
            let _ = stdin.write_all(input.as_bytes()).and_then(|()| stdin.write_all(b"\n"));
        }
        let deadline = Instant::now() + *timeout;
        let status = loop {
            match child.try_wait().map_err(|e| self.fail(format!("waiting for {program}: {e}")))? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.fail(format!("{op} timed out after {timeout:?}")));
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let mut out = Zeroizing::new(String::new());
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if !status.success() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            let first: String = err.lines().next().unwrap_or("").chars().take(200).collect();
            return Err(self.fail(format!("{op} {cmk} failed ({status}): {first}")));
        }
        Ok(out)
    }
}

/// Keys of an active tenant. Dropping it zeroizes all of them.
struct Active {
    kek: Kek,
    manifest: Manifest,
    openers: HashMap<u128, PageOpener>,
    /// Files seen or created since activation (the rest are pruned from the manifest).
    used: HashSet<u128>,
}

/// The keys of one encrypted tenant on its owner core.
pub(crate) struct TenantKeys {
    pub(crate) tenant_id: TenantId,
    path: PathBuf,
    provider: Provider,
    active: RefCell<Option<Active>>,
    /// Why the keys are unavailable (revoked, provider refused), when they are.
    unavailable: RefCell<Option<KeyError>>,
    /// Manifest writes are serialised and coalesced (a group commit): `version` counts
    /// in-memory changes, `persisted` is the newest version durably written, and one write of
    /// the newest state answers every change made before it.
    writing: Cell<bool>,
    version: Cell<u64>,
    persisted: Cell<u64>,
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKeys").field("tenant_id", &self.tenant_id).finish_non_exhaustive()
    }
}

impl TenantKeys {
    /// The manifest path of a tenant directory.
    pub(crate) fn manifest_path(tenant_dir: &Path) -> PathBuf {
        tenant_dir.join(MANIFEST)
    }

    /// Creates the manifest of a new tenant: a fresh KEK wrapped by the provider's CMK.
    pub(crate) async fn create(
        config: &Config,
        tenant_id: TenantId,
        tenant_dir: &Path,
        provider_name: &str,
        cmk: &str,
    ) -> Result<Rc<TenantKeys>, KeyError> {
        let provider = Provider::from_config(provider_name, config)?;
        let kek = Kek::generate(KeyId(1)).map_err(|e| provider.fail(e.to_string()))?;
        let (kek, wrapped) = {
            let provider = provider.clone();
            let cmk = cmk.to_string();
            blocking(move || provider.wrap_kek(&cmk, &kek).map(|w| (kek, w))).await?
        };
        let manifest = Manifest {
            provider: provider_name.to_string(),
            cmk: cmk.to_string(),
            revoked: false,
            kek: StoredKek { id: kek.id().0, wrapped },
            deks: BTreeMap::new(),
        };
        let path = TenantKeys::manifest_path(tenant_dir);
        write_manifest(&path, &manifest).await?;
        let keys = Rc::new(TenantKeys::new(tenant_id, path, provider));
        *keys.active.borrow_mut() =
            Some(Active { kek, manifest, openers: HashMap::new(), used: HashSet::new() });
        Ok(keys)
    }

    fn new(tenant_id: TenantId, path: PathBuf, provider: Provider) -> TenantKeys {
        TenantKeys {
            tenant_id,
            path,
            provider,
            active: RefCell::new(None),
            unavailable: RefCell::new(None),
            writing: Cell::new(false),
            version: Cell::new(0),
            persisted: Cell::new(0),
        }
    }

    /// Loads a tenant's keys if it has a manifest (`None`: a plaintext tenant). The keys come
    /// back unavailable, not as an error, when revoked or the provider refuses: the tenant is
    /// then held without being opened.
    pub(crate) async fn load(
        config: &Config,
        tenant_id: TenantId,
        tenant_dir: &Path,
    ) -> Result<Option<Rc<TenantKeys>>, KeyError> {
        let path = TenantKeys::manifest_path(tenant_dir);
        let manifest = match read_manifest(&path).await? {
            Some(manifest) => manifest,
            None => return Ok(None),
        };
        let provider = Provider::from_config(&manifest.provider, config)?;
        let keys = Rc::new(TenantKeys::new(tenant_id, path, provider));
        if let Err(error) = keys.activate().await {
            tracing::warn!(tenant = %tenant_id, %error, "tenant keys unavailable");
        }
        Ok(Some(keys))
    }

    /// Unwraps the KEK (asking the provider) and every DEK. On failure the keys stay
    /// unavailable with the reason.
    pub(crate) async fn activate(&self) -> Result<(), KeyError> {
        let result = self.try_activate().await;
        if let Err(error) = &result {
            *self.unavailable.borrow_mut() = Some(error.clone());
        }
        let active = result?;
        *self.active.borrow_mut() = Some(active);
        *self.unavailable.borrow_mut() = None;
        Ok(())
    }

    async fn try_activate(&self) -> Result<Active, KeyError> {
        let manifest = read_manifest(&self.path).await?.ok_or_else(|| KeyError::Manifest {
            path: self.path.display().to_string(),
            why: "missing".into(),
        })?;
        if manifest.revoked {
            return Err(KeyError::Revoked(self.tenant_id));
        }
        let kek = self.unwrap_stored_kek(&manifest).await?;
        let mut openers = HashMap::with_capacity(manifest.deks.len());
        for (file, wrapped) in &manifest.deks {
            let file_id = parse_file_id(file).ok_or_else(|| self.manifest_error("bad file id"))?;
            let wrapped = unhex(wrapped)
                .and_then(|b| WrappedKey::decode(&b).ok())
                .ok_or_else(|| self.manifest_error("bad wrapped data key"))?;
            let dek = kek.unwrap_dek(&wrapped).map_err(|e| self.manifest_error(&e.to_string()))?;
            openers.insert(file_id, PageOpener::new(&dek, FileId(file_id)));
        }
        Ok(Active { kek, manifest, openers, used: HashSet::new() })
    }

    async fn unwrap_stored_kek(&self, manifest: &Manifest) -> Result<Kek, KeyError> {
        let provider = self.provider.clone();
        let (cmk, stored, id) =
            (manifest.cmk.clone(), manifest.kek.wrapped.clone(), manifest.kek.id);
        blocking(move || provider.unwrap_kek(&cmk, &stored, KeyId(id))).await
    }

    fn manifest_error(&self, why: &str) -> KeyError {
        KeyError::Manifest { path: self.path.display().to_string(), why: why.to_string() }
    }

    pub(crate) fn available(&self) -> bool {
        self.active.borrow().is_some()
    }

    /// Why the keys are unavailable.
    pub(crate) fn unavailable_reason(&self) -> Option<String> {
        if self.available() {
            return None;
        }
        Some(self.unavailable.borrow().as_ref().map_or_else(
            || format!("keys of tenant {} are not loaded", self.tenant_id),
            |e| e.to_string(),
        ))
    }

    fn error(&self) -> KeyError {
        self.unavailable.borrow().clone().unwrap_or(KeyError::Revoked(self.tenant_id))
    }

    /// A sealer for a new file, its DEK durably in the manifest first.
    pub(crate) async fn new_sealer(&self) -> Result<PageSealer, KeyError> {
        let file_id = FileId(u128::from_le_bytes(random_bytes()?));
        let sealer =
            PageSealer::generate(file_id).map_err(|e| self.manifest_error(&e.to_string()))?;
        {
            let mut active = self.active.borrow_mut();
            let active = active.as_mut().ok_or_else(|| self.error())?;
            let wrapped = sealer.wrap_dek(&active.kek);
            active.manifest.deks.insert(format!("{:032x}", file_id.0), hex(&wrapped.to_bytes()));
            active.openers.insert(file_id.0, sealer.opener());
            active.used.insert(file_id.0);
        }
        self.changed();
        self.persist().await?;
        Ok(sealer)
    }

    /// Runs `f` with the opener of `file_id`.
    pub(crate) fn with_opener<R>(
        &self,
        file_id: u128,
        f: impl FnOnce(&PageOpener) -> R,
    ) -> Result<R, KeyError> {
        let active = self.active.borrow();
        let active = active.as_ref().ok_or_else(|| self.error())?;
        let opener = active.openers.get(&file_id).ok_or(KeyError::UnknownFile(file_id))?;
        Ok(f(opener))
    }

    /// Records that a file on disk uses `file_id` (while the tenant opens; see
    /// [`TenantKeys::prune_unused`]).
    pub(crate) fn mark_used(&self, file_id: u128) {
        if let Some(active) = self.active.borrow_mut().as_mut() {
            active.used.insert(file_id);
        }
    }

    /// Drops the wrapped DEK of a deleted file from the manifest (persisted with the next
    /// manifest write). The opener stays until [`TenantKeys::drop_opener`]: a read that began
    /// before the deletion still holds the open file and must still decrypt it.
    pub(crate) fn forget(&self, file_id: u128) {
        if let Some(active) = self.active.borrow_mut().as_mut() {
            active.manifest.deks.remove(&format!("{file_id:032x}"));
            active.used.remove(&file_id);
            self.changed();
        }
    }

    /// Drops the in-memory opener of a file nothing reads any more (its last handle closed).
    pub(crate) fn drop_opener(&self, file_id: u128) {
        if let Some(active) = self.active.borrow_mut().as_mut() {
            if !active.manifest.deks.contains_key(&format!("{file_id:032x}")) {
                active.openers.remove(&file_id);
            }
        }
    }

    /// After all of the tenant's files were opened: drops DEKs no file uses (files deleted
    /// before a crash let their keys behind) and persists.
    pub(crate) async fn prune_unused(&self) -> Result<usize, KeyError> {
        let pruned = {
            let mut active = self.active.borrow_mut();
            let Some(active) = active.as_mut() else { return Ok(0) };
            let unused: Vec<u128> =
                active.openers.keys().copied().filter(|id| !active.used.contains(id)).collect();
            for id in &unused {
                active.openers.remove(id);
                active.manifest.deks.remove(&format!("{id:032x}"));
            }
            unused.len()
        };
        if pruned > 0 {
            self.changed();
            self.persist().await?;
        }
        Ok(pruned)
    }

    /// Records an in-memory change of the manifest (persisted by the next [`persist`]).
    ///
    /// [`persist`]: TenantKeys::persist
    fn changed(&self) {
        self.version.set(self.version.get() + 1);
    }

    /// Returns once the manifest on disk holds every change made before the call. Callers
    /// arriving while a write is in flight wait for it, and the first of them writes the then
    /// newest state for all (one write per burst, however many files were created).
    async fn persist(&self) -> Result<(), KeyError> {
        let target = self.version.get();
        loop {
            if self.persisted.get() >= target {
                return Ok(());
            }
            if !self.writing.get() {
                return self.write_newest().await;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn write_newest(&self) -> Result<(), KeyError> {
        let version = self.version.get();
        let manifest = match self.active.borrow().as_ref() {
            Some(active) => active.manifest.clone(),
            None => return Err(self.error()),
        };
        // Reset on drop too: a caller's future dropped mid-write must not block later writes.
        struct Writing<'a>(&'a Cell<bool>);
        impl Drop for Writing<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        self.writing.set(true);
        let _writing = Writing(&self.writing);
        write_manifest(&self.path, &manifest).await?;
        self.persisted.set(self.persisted.get().max(version));
        Ok(())
    }

    /// Rotates the tenant's KEK: a new generation wraps every DEK, the CMK wraps it, and one
    /// manifest write replaces all wrapped keys. No data file is touched.
    pub(crate) async fn rotate_kek(&self) -> Result<KeyStatus, KeyError> {
        let (next_id, cmk) = {
            let active = self.active.borrow();
            let active = active.as_ref().ok_or_else(|| self.error())?;
            (active.kek.id().0 + 1, active.manifest.cmk.clone())
        };
        let new_kek =
            Kek::generate(KeyId(next_id)).map_err(|e| self.manifest_error(&e.to_string()))?;
        let (new_kek, wrapped_kek) = {
            let provider = self.provider.clone();
            blocking(move || provider.wrap_kek(&cmk, &new_kek).map(|w| (new_kek, w))).await?
        };
        {
            let mut active = self.active.borrow_mut();
            let active = active.as_mut().ok_or_else(|| self.error())?;
            let mut deks = BTreeMap::new();
            for (file, wrapped) in &active.manifest.deks {
                let wrapped = unhex(wrapped)
                    .and_then(|b| WrappedKey::decode(&b).ok())
                    .ok_or_else(|| self.manifest_error("bad wrapped data key"))?;
                let dek = active
                    .kek
                    .unwrap_dek(&wrapped)
                    .map_err(|e| self.manifest_error(&e.to_string()))?;
                deks.insert(file.clone(), hex(&new_kek.wrap_dek(&dek).to_bytes()));
            }
            active.manifest.deks = deks;
            active.manifest.kek = StoredKek { id: next_id, wrapped: wrapped_kek };
            active.kek = new_kek;
        }
        self.changed();
        self.persist().await?;
        tracing::info!(tenant = %self.tenant_id, kek_generation = next_id, "tenant KEK rotated");
        Ok(self.status())
    }

    /// Re-wraps the KEK with the provider's newest CMK version.
    pub(crate) async fn rotate_cmk(&self) -> Result<KeyStatus, KeyError> {
        let cmk = {
            let active = self.active.borrow();
            active.as_ref().ok_or_else(|| self.error())?.manifest.cmk.clone()
        };
        // The KEK cannot leave the core's state for the blocking thread (not `Send` by
        // design); re-derive it there from the stored copy, then wrap anew.
        let stored = {
            let active = self.active.borrow();
            active.as_ref().ok_or_else(|| self.error())?.manifest.kek.clone()
        };
        let provider = self.provider.clone();
        let wrapped = blocking(move || {
            let kek = provider.unwrap_kek(&cmk, &stored.wrapped, KeyId(stored.id))?;
            provider.wrap_kek(&cmk, &kek)
        })
        .await?;
        {
            let mut active = self.active.borrow_mut();
            let active = active.as_mut().ok_or_else(|| self.error())?;
            active.manifest.kek.wrapped = wrapped;
        }
        self.changed();
        self.persist().await?;
        tracing::info!(tenant = %self.tenant_id, "tenant KEK re-wrapped with the newest CMK");
        Ok(self.status())
    }

    /// Zeroizes every key in memory now; `persist_revoked` also records the revocation in the
    /// manifest (admin revocation survives restarts; a provider refusal is re-checked instead).
    pub(crate) async fn revoke(
        &self,
        why: KeyError,
        persist_revoked: bool,
    ) -> Result<(), KeyError> {
        let manifest = self.active.borrow_mut().take().map(|active| active.manifest);
        *self.unavailable.borrow_mut() = Some(why);
        if persist_revoked {
            let mut manifest = match manifest {
                Some(manifest) => manifest,
                None => read_manifest(&self.path)
                    .await?
                    .ok_or_else(|| self.manifest_error("missing"))?,
            };
            manifest.revoked = true;
            write_manifest(&self.path, &manifest).await?;
        }
        Ok(())
    }

    /// Clears an admin revocation and activates the keys again (asks the provider).
    pub(crate) async fn restore(&self) -> Result<(), KeyError> {
        if let Some(mut manifest) = read_manifest(&self.path).await? {
            if manifest.revoked {
                manifest.revoked = false;
                write_manifest(&self.path, &manifest).await?;
            }
        }
        self.activate().await
    }

    /// Asks the provider whether it still unwraps the tenant's KEK (the periodic check that
    /// notices a CMK revoked at the provider). `Ok` when it does or the tenant is not active.
    pub(crate) async fn check_provider(&self) -> Result<(), KeyError> {
        let manifest = match self.active.borrow().as_ref() {
            Some(active) => active.manifest.clone(),
            None => return Ok(()),
        };
        self.unwrap_stored_kek(&manifest).await.map(drop)
    }

    /// Which provider check covers this tenant: tenants whose KEKs are wrapped by the same CMK
    /// (provider, CMK name, and for a keyring its version) stand or fall together, so one
    /// unwrap per group and interval tells for all of them. `None` when not active.
    pub(crate) fn check_group(&self) -> Option<String> {
        let active = self.active.borrow();
        let manifest = &active.as_ref()?.manifest;
        let version = match &self.provider {
            Provider::File { .. } => unhex(&manifest.kek.wrapped)
                .and_then(|b| WrappedKey::decode(&b).ok())
                .map_or(0, |w| w.wrapping_key_id().0),
            Provider::Command { .. } => 0,
        };
        Some(format!("{}/{}/{version}", self.provider.name(), manifest.cmk))
    }

    /// Whether an unavailable tenant's keys were revoked by the admin (then only a restore
    /// brings it back; otherwise the provider check may).
    pub(crate) fn revoked_by_admin(&self) -> bool {
        matches!(*self.unavailable.borrow(), Some(KeyError::Revoked(_)))
    }

    pub(crate) fn status(&self) -> KeyStatus {
        let active = self.active.borrow();
        KeyStatus {
            encrypted: true,
            provider: Some(self.provider.name().to_string()),
            cmk: active.as_ref().map(|a| a.manifest.cmk.clone()),
            kek_generation: active.as_ref().map(|a| a.kek.id().0),
            data_keys: active.as_ref().map_or(0, |a| a.openers.len()),
            available: active.is_some(),
            unavailable_reason: self.unavailable.borrow().as_ref().map(|e| e.to_string()),
        }
    }
}

/// Key status of a plaintext tenant.
pub(crate) fn plaintext_status() -> KeyStatus {
    KeyStatus {
        encrypted: false,
        provider: None,
        cmk: None,
        kek_generation: None,
        data_keys: 0,
        available: true,
        unavailable_reason: None,
    }
}

async fn read_manifest(path: &Path) -> Result<Option<Manifest>, KeyError> {
    let owned = path.to_path_buf();
    let bytes = match blocking(move || std::fs::read(&owned)).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(KeyError::Manifest { path: path.display().to_string(), why: e.to_string() })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| KeyError::Manifest { path: path.display().to_string(), why: e.to_string() })
}

async fn write_manifest(path: &Path, manifest: &Manifest) -> Result<(), KeyError> {
    let bytes = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    let owned = path.to_path_buf();
    blocking(move || write_file_durably(&owned, &bytes))
        .await
        .map_err(|e| KeyError::Manifest { path: path.display().to_string(), why: e.to_string() })
}

/// Creates the development keyring (`dev-keyring.toml` in the data directory) with one random
/// CMK named `default`, if the embedded `file` provider is selected and it does not exist.
pub(crate) fn ensure_dev_keyring(config: &Config) -> std::io::Result<()> {
    for (name, provider) in &config.encryption.providers {
        let KeyProviderConfig::File { path } = provider else { continue };
        if !path.as_os_str().is_empty() || config.encryption.provider != *name {
            continue;
        }
        let path = config.data_dir.join("dev-keyring.toml");
        if path.exists() {
            continue;
        }
        let key = Zeroizing::new(hex(&random_bytes::<32>().map_err(std::io::Error::other)?));
        let text = Zeroizing::new(format!(
            "# Development keyring made by pagecore: CMKs by name and version. Keep real CMKs\n\
             # outside the data directory (a `file` provider with a path, or a `command` provider).\n\
             [[keys]]\nname = \"default\"\nversion = 1\nkey = \"{}\"\n",
            key.as_str()
        ));
        std::fs::create_dir_all(&config.data_dir)?;
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        crate::runtime::sync_dir_blocking(&config.data_dir)?;
        tracing::warn!(keyring = %path.display(),
            "created a development keyring inside the data directory: use a keyring outside it or a command provider in production");
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(
        |e| KeyError::Provider { provider: "os".into(), why: format!("random source: {e}") },
    )?;
    Ok(bytes)
}

fn parse_file_id(text: &str) -> Option<u128> {
    (text.len() == 32).then(|| u128::from_str_radix(text, 16).ok()).flatten()
}
