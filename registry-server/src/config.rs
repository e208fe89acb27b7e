//! The TOML configuration every `huduma-registry` command takes, and the development
//! configuration generated on first run.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:50051"
//! data_dir = "data"                      # relative paths are relative to this file
//! origin = "registry.huduma.go.ke/log"
//!
//! [keys]
//! log_key = "log.key"                    # C2SP signed-note private key
//! master_secret = "master.secret"        # never inside data_dir
//! ```

use std::path::{Path, PathBuf};

use registry_core::keys::LogKey;
use registry_core::secrets::{Secrets, write_private_file};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub keys: KeysConfig,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub log_key: PathBuf,
    pub master_secret: PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:50051".into()
}

fn default_max_batch() -> usize {
    registry_core::registry::RegistryOptions::default().max_batch
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
        for p in [&mut config.server.data_dir, &mut config.keys.log_key, &mut config.keys.master_secret] {
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
        if !(1..=65_536).contains(&self.config.server.max_batch) {
            return Err(invalid("server.max_batch must be between 1 and 65536"));
        }
        if self.config.server.origin.trim().is_empty() || self.config.server.origin.contains(char::is_whitespace) {
            return Err(invalid("server.origin must be a non-empty name without spaces"));
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

/// Creates a development configuration in `dir` (config.toml, log.key, master.secret,
/// data/) unless one is there; returns the config path and whether it was created.
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
        },
        keys: KeysConfig { log_key: "log.key".into(), master_secret: "master.secret".into() },
    };
    let text = format!(
        "# Development configuration generated by `huduma-registry init`.\n# Keys are beside the data, not in it; in production keep them on separate storage.\n{}",
        toml::to_string(&config)
            .map_err(|e| ConfigError::Invalid { path: config_path.display().to_string(), reason: e.to_string() })?
    );
    std::fs::write(&config_path, text).map_err(io)?;
    Ok((config_path, true))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(
            &path,
            "[server]\ndata_dir = \"data\"\n[keys]\nlog_key = \"log.key\"\nmaster_secret = \"data/master.secret\"\n",
        )
        .unwrap();
        let err = Loaded::read(&path).unwrap_err().to_string();
        assert!(err.contains("keys.master_secret"), "{err}");
        std::fs::write(
            &path,
            "[server]\ndata_dir = \"data\"\nbogus = 1\n[keys]\nlog_key = \"a\"\nmaster_secret = \"b\"\n",
        )
        .unwrap();
        let err = Loaded::read(&path).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        std::fs::write(
            &path,
            "[server]\ndata_dir = \"data\"\nmax_batch = 0\n[keys]\nlog_key = \"a\"\nmaster_secret = \"b\"\n",
        )
        .unwrap();
        let err = Loaded::read(&path).unwrap_err().to_string();
        assert!(err.contains("server.max_batch"), "{err}");
    }
}
