//! The TOML configuration every `huduma-registry` command takes, and the development
//! configuration generated on first run.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:50051"
//! data_dir = "data"                      # relative paths are relative to this file
//! origin = "registry.huduma.go.ke/log"
//! metrics_listen = "127.0.0.1:9464"      # Prometheus /metrics (optional)
//! backup_dir = "backups"                 # where online backups go (optional; not in data_dir)
//!
//! [server.tls]                           # optional: TLS, and mTLS when client_ca is set
//! cert = "server.crt"
//! key = "server.key"
//! client_ca = "clients-ca.crt"
//!
//! [keys]
//! log_key = "log.key"                    # C2SP signed-note private key
//! master_secret = "master.secret"        # never inside data_dir
//!
//! [[principals]]
//! name = "gpo-registrar-1"
//! role = "registrar"                     # registrar | agency | auditor | admin
//! token = "dev-token-..."                # bearer token (development)
//! # cert_subject = "CN=gpo-registrar-1, O=Huduma"  # mTLS client certificate subject
//! # calls_per_second = 200               # beyond it: RESOURCE_EXHAUSTED (none: unlimited)
//!
//! [[agencies]]                           # what an agency may see when it resolves
//! code = "KRA"
//! attributes = ["given_name", "family_name", "other_names", "date_of_birth"]
//! huduma_number = true                   # the bare number (else only its token)
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::RngCore;
use registry_core::keys::LogKey;
use registry_core::secrets::{Secrets, write_private_file};
use serde::{Deserialize, Serialize};

use crate::auth::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub keys: KeysConfig,
    #[serde(default)]
    pub principals: Vec<PrincipalConfig>,
    /// What each agency may see (see `disclosure`); an agency without one sees nothing
    /// personal.
    #[serde(default)]
    pub agencies: Vec<crate::disclosure::AgencyPolicyConfig>,
}

/// The highest `calls_per_second` a principal may be given.
pub const MAX_CALLS_PER_SECOND: u32 = 100_000;

/// One caller the server knows, with its role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub name: String,
    pub role: Role,
    /// The agency code, for (and only for) role `agency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// A bearer token (development): sent as `authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The subject of the principal's mTLS client certificate, as RFC 4514 text
    /// (e.g. `CN=kra-gateway,O=Kenya Revenue Authority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
    /// At most this many calls a second (in bursts of up to as many), beyond which the
    /// principal's calls are refused RESOURCE_EXHAUSTED, saying when to retry; none:
    /// unlimited. 1-100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_second: Option<u32>,
}

/// TLS for the gRPC port; with `client_ca`, clients must present a certificate it
/// signed (mTLS) and are known by its subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub data_dir: PathBuf,
    #[serde(default = "default_origin")]
    pub origin: String,
    /// The most commands committed in one batch (group commit). Smaller bounds the
    /// worst look-up stall under writes; larger helps on slow-flushing disks.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The newest signed checkpoint is at most about this many milliseconds behind the
    /// log (a checkpoint is also signed whenever the log goes idle).
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// sled's page cache for the identity store, in MiB. Proofs, look-ups and the
    /// duplicate search are point reads, each a few microseconds while the store fits
    /// in it and about 20 beyond: size it to the data directory where memory allows.
    /// `verify` and `export`, which read the store through once, use at most 128 MiB.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// The registry's read cache in front of sled, in MiB: look-ups' point reads of
    /// numbers, persons, agency links and keyring entries, kept as stored (sealed,
    /// checksummed), served in under a microsecond instead of a few. 0 turns it off.
    #[serde(default = "default_read_cache_mb")]
    pub read_cache_mb: u64,
    /// `verify` and `rebuild` (and a rebuild at start-up) fold the log afresh in memory
    /// while it holds at most this many records (~0.7 KiB of memory each, persons
    /// linked to one agency); a larger log is folded in a scratch store under the data
    /// directory (`fold-scratch`, about half the projections' size on disk, removed after),
    /// in bounded memory.
    #[serde(default = "default_fold_in_memory_max_records")]
    pub fold_in_memory_max_records: u64,
    /// Where Prometheus scrapes `/metrics`; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// The largest request message accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The longest a call may take, whatever deadline the caller set, in seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Where `Operations.Backup` writes the backups it takes while the registry serves
    /// (each in a new directory it names); outside `data_dir`. None: no online backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub log_key: PathBuf,
    pub master_secret: PathBuf,
}

impl ServerConfig {
    /// `cache_mb` in bytes, as the store takes it.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mb << 20
    }

    /// `read_cache_mb` in bytes.
    pub fn read_cache_bytes(&self) -> u64 {
        self.read_cache_mb << 20
    }

    /// Where `verify` and `rebuild` hold their fresh fold.
    pub fn fold_space(&self) -> registry_core::replay::FoldSpace {
        registry_core::replay::FoldSpace::under(&self.data_dir, self.fold_in_memory_max_records)
    }
}

fn default_listen() -> String {
    "127.0.0.1:50051".into()
}

fn default_max_batch() -> usize {
    registry_core::registry::RegistryOptions::default().max_batch
}

fn default_cache_mb() -> u64 {
    registry_core::registry::RegistryOptions::default().cache_bytes >> 20
}

fn default_read_cache_mb() -> u64 {
    registry_core::registry::RegistryOptions::default().read_cache_bytes >> 20
}

fn default_fold_in_memory_max_records() -> u64 {
    registry_core::replay::DEFAULT_IN_MEMORY_RECORDS
}

fn default_checkpoint_interval_ms() -> u64 {
    1000
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}

/// The least `max_message_bytes` may be: room for the largest valid request (a
/// registration with every name at its longest, in four-byte characters, and the
/// longest justification: ~6.8 KiB), and for an answer with the largest valid item of
/// a paged list (~2.4 KiB), so that a page of one always goes.
pub const MIN_MESSAGE_BYTES: usize = 8192;
/// The most `max_message_bytes` may be.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

fn default_request_timeout_secs() -> u64 {
    30
}

fn default_origin() -> String {
    "registry.huduma.go.ke/log".into()
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("config {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error(transparent)]
    Secrets(#[from] registry_core::secrets::SecretsError),
    #[error("log key {path}: {cause}")]
    Key { path: String, cause: registry_core::keys::KeyError },
}

/// A configuration with its paths resolved against the file's directory.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub config: Config,
}

impl Loaded {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let io = |cause| ConfigError::Io { path: path.display().to_string(), cause };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Invalid { path: path.display().to_string(), reason: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut paths = vec![&mut config.server.data_dir, &mut config.keys.log_key, &mut config.keys.master_secret];
        paths.extend(config.server.backup_dir.as_mut());
        if let Some(tls) = &mut config.server.tls {
            paths.extend([&mut tls.cert, &mut tls.key]);
            paths.extend(tls.client_ca.as_mut());
        }
        for p in paths {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let loaded = Self { path: path.to_path_buf(), config };
        loaded.check()?;
        Ok(loaded)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid =
            |reason: &str| ConfigError::Invalid { path: self.path.display().to_string(), reason: reason.into() };
        let data = absolute(&self.config.server.data_dir);
        if absolute(&self.config.keys.master_secret).starts_with(&data) {
            return Err(invalid("keys.master_secret must not be inside server.data_dir"));
        }
        if absolute(&self.config.keys.log_key).starts_with(&data) {
            return Err(invalid("keys.log_key must not be inside server.data_dir"));
        }
        if let Some(backups) = &self.config.server.backup_dir {
            let backups = absolute(backups);
            if backups.starts_with(&data) || data.starts_with(&backups) {
                return Err(invalid("server.backup_dir must be outside server.data_dir, and not hold it"));
            }
        }
        if !(1..=65_536).contains(&self.config.server.max_batch) {
            return Err(invalid("server.max_batch must be between 1 and 65536"));
        }
        if !(16..=1 << 20).contains(&self.config.server.cache_mb) {
            return Err(invalid("server.cache_mb must be between 16 and 1048576 (1 TiB)"));
        }
        if self.config.server.read_cache_mb > 1 << 20 {
            return Err(invalid("server.read_cache_mb must be at most 1048576 (1 TiB); 0 turns the read cache off"));
        }
        if self.config.server.origin.trim().is_empty() || self.config.server.origin.contains(char::is_whitespace) {
            return Err(invalid("server.origin must be a non-empty name without spaces"));
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&self.config.server.max_message_bytes) {
            let reason =
                format!("server.max_message_bytes must be between {MIN_MESSAGE_BYTES} and {MAX_MESSAGE_BYTES}");
            return Err(invalid(&reason));
        }
        if self.config.server.checkpoint_interval_ms > 3_600_000 {
            return Err(invalid("server.checkpoint_interval_ms must be at most 3600000 (an hour)"));
        }
        if !(1..=3600).contains(&self.config.server.request_timeout_secs) {
            return Err(invalid("server.request_timeout_secs must be between 1 and 3600"));
        }
        self.check_principals().map_err(|reason| invalid(&reason))?;
        let mut codes = HashSet::new();
        for (i, policy) in self.config.agencies.iter().enumerate() {
            registry_core::command::check_agency("code", &policy.code).map_err(|e| {
                invalid(&format!("agencies[{i}].{}", e.to_string().trim_start_matches("invalid argument: ")))
            })?;
            if !codes.insert(policy.code.as_str()) {
                return Err(invalid(&format!("agencies[{i}].code: {:?} has two policies", policy.code)));
            }
        }
        Ok(())
    }

    fn check_principals(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        let mut tokens = HashSet::new();
        let mut subjects = HashSet::new();
        for (i, p) in self.config.principals.iter().enumerate() {
            let at = format!("principals[{i}]");
            registry_core::command::check_identifier("name", &p.name).map_err(|e| format!("{at}.{e}"))?;
            if !names.insert(p.name.as_str()) {
                return Err(format!("{at}.name: {:?} is named twice", p.name));
            }
            match (p.role, &p.agency) {
                (Role::Agency, Some(agency)) => registry_core::command::check_agency("agency", agency)
                    .map_err(|e| format!("{at}.{}", e.to_string().trim_start_matches("invalid argument: ")))?,
                (Role::Agency, None) => return Err(format!("{at}.agency: required for role agency")),
                (_, Some(_)) => return Err(format!("{at}.agency: only for role agency")),
                (_, None) => {}
            }
            if p.token.is_none() && p.cert_subject.is_none() {
                return Err(format!("{at}: needs a token or a cert_subject"));
            }
            if let Some(token) = &p.token {
                if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!("{at}.token: at least 16 printable ASCII characters, no spaces"));
                }
                if !tokens.insert(token.as_str()) {
                    return Err(format!("{at}.token: another principal has the same token"));
                }
            }
            if let Some(subject) = &p.cert_subject
                && !subjects.insert(subject.as_str())
            {
                return Err(format!("{at}.cert_subject: another principal has the same subject"));
            }
            if p.calls_per_second.is_some_and(|rate| !(1..=MAX_CALLS_PER_SECOND).contains(&rate)) {
                return Err(format!("{at}.calls_per_second: between 1 and {MAX_CALLS_PER_SECOND}"));
            }
        }
        Ok(())
    }

    pub fn secrets(&self) -> Result<Secrets, ConfigError> {
        Ok(Secrets::load(&self.config.keys.master_secret)?)
    }

    pub fn log_key(&self) -> Result<LogKey, ConfigError> {
        read_log_key(&self.config.keys.log_key)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub fn read_log_key(path: &Path) -> Result<LogKey, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|cause| ConfigError::Io { path: path.display().to_string(), cause })?;
    LogKey::from_note_private_key(&text)
        .map(|(_, key)| key)
        .map_err(|cause| ConfigError::Key { path: path.display().to_string(), cause })
}

/// Writes a new log key file (signed-note private key form, mode 0600).
pub fn write_log_key(path: &Path, origin: &str, key: &LogKey) -> Result<(), ConfigError> {
    write_private_file(path, format!("{}\n", key.to_note_private_key(origin)).as_bytes())
        .map_err(|cause| ConfigError::Io { path: path.display().to_string(), cause })
}

/// A fresh random bearer token: `dev-<role>-` and 32 hex digits.
pub fn dev_token(role: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("dev-{role}-{hex}")
}

/// The principals of a development configuration: one of each role, two agencies.
pub fn dev_principals() -> Vec<PrincipalConfig> {
    let principal = |name: &str, role: Role, agency: Option<&str>| PrincipalConfig {
        name: name.into(),
        role,
        agency: agency.map(Into::into),
        token: Some(dev_token(name)),
        cert_subject: None,
        calls_per_second: None,
    };
    vec![
        principal("gpo-registrar-1", Role::Registrar, None),
        principal("kra", Role::Agency, Some("KRA")),
        principal("nhif", Role::Agency, Some("NHIF")),
        principal("auditor-1", Role::Auditor, None),
        principal("admin-1", Role::Admin, None),
        principal("citizen-portal-1", Role::CitizenPortal, None),
    ]
}

/// The disclosure policies of a development configuration: the tax authority sees
/// names and date of birth and the number; the health insurer names, sex and date of
/// birth, not the number.
pub fn dev_agencies() -> Vec<crate::disclosure::AgencyPolicyConfig> {
    use crate::disclosure::{AgencyPolicyConfig, Attribute::*};
    vec![
        AgencyPolicyConfig {
            code: "KRA".into(),
            attributes: vec![GivenName, FamilyName, OtherNames, DateOfBirth],
            huduma_number: true,
        },
        AgencyPolicyConfig {
            code: "NHIF".into(),
            attributes: vec![GivenName, FamilyName, OtherNames, Sex, DateOfBirth, DateOfDeath],
            huduma_number: false,
        },
    ]
}

/// Creates a development configuration in `dir` (config.toml, log.key, master.secret,
/// data/, a principal of each role with a fresh token) unless one is there; returns
/// the config path and whether it was created.
pub fn ensure_dev_config(dir: &Path) -> Result<(PathBuf, bool), ConfigError> {
    let config_path = dir.join("config.toml");
    if config_path.exists() {
        return Ok((config_path, false));
    }
    let io = |cause| ConfigError::Io { path: dir.display().to_string(), cause };
    std::fs::create_dir_all(dir.join("data")).map_err(io)?;
    let origin = "dev.huduma.local/log";
    Secrets::generate().save(&dir.join("master.secret"))?;
    write_log_key(&dir.join("log.key"), origin, &LogKey::generate())?;
    let config = Config {
        server: ServerConfig {
            listen: default_listen(),
            data_dir: "data".into(),
            origin: origin.into(),
            max_batch: default_max_batch(),
            checkpoint_interval_ms: default_checkpoint_interval_ms(),
            cache_mb: default_cache_mb(),
            read_cache_mb: default_read_cache_mb(),
            fold_in_memory_max_records: default_fold_in_memory_max_records(),
            metrics_listen: Some("127.0.0.1:9464".into()),
            max_message_bytes: default_max_message_bytes(),
            request_timeout_secs: default_request_timeout_secs(),
            tls: None,
            backup_dir: Some("backups".into()),
        },
        keys: KeysConfig { log_key: "log.key".into(), master_secret: "master.secret".into() },
        principals: dev_principals(),
        agencies: dev_agencies(),
    };
    let text = format!(
        "# Development configuration generated by `huduma-registry`.\n# Keys are beside the data, not in it; in production keep them on separate storage,\n# and authenticate principals by mTLS client certificates ([server.tls]) instead of tokens.\n{}",
        toml::to_string(&config)
            .map_err(|e| ConfigError::Invalid { path: config_path.display().to_string(), reason: e.to_string() })?
    );
    // The tokens are credentials: readable by the owner only.
    write_private_file(&config_path, text.as_bytes()).map_err(io)?;
    Ok((config_path, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest valid registration (and correction) fits the least message limit.
    #[test]
    fn the_least_message_limit_holds_the_largest_valid_request() {
        use crate::proto as pb;
        use prost::Message;
        use registry_core::command::{MAX_ID_LEN, MAX_REASON_CHARS};
        use registry_core::demographics::{MAX_NAME_CHARS, MAX_OTHER_NAMES};
        let name = || "\u{1F600}".repeat(MAX_NAME_CHARS);
        let demographics = pb::Demographics {
            given_name: name(),
            family_name: name(),
            other_names: vec![name(); MAX_OTHER_NAMES],
            date_of_birth: "1990-04-12".into(),
            sex: pb::Sex::Intersex as i32,
            place_of_birth: name(),
        };
        let registration = pb::RegisterPersonRequest {
            request_id: "r".repeat(MAX_ID_LEN),
            demographics: Some(demographics.clone()),
            centre: "c".repeat(MAX_ID_LEN),
            duplicate_override_justification: "\u{1F600}".repeat(MAX_REASON_CHARS),
        };
        let correction = pb::CorrectDemographicsRequest {
            request_id: "r".repeat(MAX_ID_LEN),
            huduma_number: "234567890123".into(),
            demographics: Some(demographics),
            centre: "c".repeat(MAX_ID_LEN),
            duplicate_override_justification: "\u{1F600}".repeat(MAX_REASON_CHARS),
        };
        for len in [registration.encoded_len(), correction.encoded_len()] {
            assert!(len <= MIN_MESSAGE_BYTES, "{len}");
        }
    }

    #[test]
    fn dev_config_round_trips_and_keeps_secrets_out_of_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (path, created) = ensure_dev_config(dir.path()).unwrap();
        assert!(created);
        let loaded = Loaded::read(&path).unwrap();
        assert!(loaded.config.server.data_dir.ends_with("data"));
        loaded.secrets().unwrap();
        loaded.log_key().unwrap();
        assert!(!ensure_dev_config(dir.path()).unwrap().1, "an existing config is kept");
    }

    #[test]
    fn secrets_inside_the_data_dir_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        // The error reading a config with `server` and `keys` as given.
        let refusal = |server: &str, keys: &str| {
            std::fs::write(&path, format!("[server]\ndata_dir = \"data\"\n{server}[keys]\n{keys}")).unwrap();
            Loaded::read(&path).unwrap_err().to_string()
        };
        let keys = "log_key = \"a\"\nmaster_secret = \"b\"\n";
        let err = refusal("", "log_key = \"log.key\"\nmaster_secret = \"data/master.secret\"\n");
        assert!(err.contains("keys.master_secret"), "{err}");
        let err = refusal("bogus = 1\n", keys);
        assert!(err.contains("bogus"), "{err}");
        let err = refusal("max_batch = 0\n", keys);
        assert!(err.contains("server.max_batch"), "{err}");
        let err = refusal("cache_mb = 1\n", keys);
        assert!(err.contains("server.cache_mb"), "{err}");
        let err = refusal("read_cache_mb = 2000000\n", keys);
        assert!(err.contains("server.read_cache_mb"), "{err}");
        for inside in ["data/backups", "data", "."] {
            let err = refusal(&format!("backup_dir = \"{inside}\"\n"), keys);
            assert!(err.contains("server.backup_dir"), "{inside}: {err}");
        }
        std::fs::write(&path, format!("[server]\ndata_dir = \"data\"\nbackup_dir = \"backups\"\n[keys]\n{keys}"))
            .unwrap();
        let loaded = Loaded::read(&path).expect("backups beside the data");
        assert_eq!(loaded.config.server.backup_dir, Some(dir.path().join("backups")), "relative to the config");
    }
}
