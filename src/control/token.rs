//! The control token: where it comes from, how it is written to disk, and how a candidate is
//! compared with it.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::RngCore;

use crate::config::{weakness, ControlConfig, Secret, Weakness};
use crate::security::{read_secret_file, SecretFileError, SecretVerifier};

/// Random bytes in a generated token: 256 bits, as `openssl rand -hex 32`.
pub const TOKEN_BYTES: usize = 32;

/// Configuration validation checks the same floor, so it is defined beside the other secret
/// rules (no config <-> control import cycle).
pub use crate::config::MIN_TOKEN_BYTES;

/// The environment variable that carries the token, for messages.
const TOKEN_ENV: &str = "OPCGW_CONTROL__TOKEN";

/// Compares candidate tokens with the expected one without revealing, through timing, how much
/// of a candidate matched or how long the expected token is (see [`SecretVerifier`]).
pub struct TokenVerifier(SecretVerifier);

impl TokenVerifier {
    pub fn new(token: &str) -> Self {
        Self(SecretVerifier::new(token))
    }

    pub fn verify(&self, candidate: &str) -> bool {
        self.0.verify(candidate)
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenVerifier { .. }")
    }
}

/// A fresh token: [`TOKEN_BYTES`] from the operating system's random source, lowercase hex.
///
/// Panics only if the operating system cannot provide randomness at all, where no secret could
/// be made safely anyway.
pub fn generate_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `token` (plus a newline) to `path` so that no reader ever sees a partial or
/// group-readable file: a temporary file in the same directory is created with mode 0600,
/// written and synced, renamed over `path`, and the directory is synced so the rename survives
/// a crash. A missing parent directory is created with mode 0700.
pub fn write_token_file(path: &Path, token: &str) -> io::Result<()> {
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a token must be non-empty, without whitespace or control characters",
        ));
    }
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;

    let temp = dir.join(format!(
        ".{}.tmp-{}-{:016x}",
        file_name.to_string_lossy(),
        std::process::id(),
        OsRng.next_u64()
    ));
    let written = write_new_private_file(&temp, token).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and its missing ancestors) when missing, the new directories with mode 0700;
/// an existing directory keeps the mode the operator gave it.
fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            // The umask may only have removed bits; make the mode exact.
            fs::set_permissions(dir, Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

/// `create_new` (O_EXCL) refuses an existing file or symlink at `path`, so nothing can be
/// redirected; O_NOFOLLOW says the same to any reader of the code and to the kernel.
fn write_new_private_file(path: &Path, token: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits())
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Where the daemon's token came from, for the start-up log (the token itself is never logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `OPCGW_CONTROL__TOKEN` (or `control.token` in the config file).
    Env,
    /// `control.token_file`.
    File,
    /// Generated at start and written to `control.token_file`.
    Generated,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::File => "file",
            Self::Generated => "generated",
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no control token is available. Messages name the source and the remedy, never the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "control.token is still a placeholder; inject the real token with {TOKEN_ENV} or remove \
         it to use control.token_file"
    )]
    Placeholder,
    #[error(
        "the control token from {origin} {weakness}; use a random token of at least \
         {MIN_TOKEN_BYTES} characters (generate one with `openssl rand -hex 32`)"
    )]
    Weak {
        origin: &'static str,
        weakness: Weakness,
    },
    #[error("control token file: {0}")]
    File(#[from] SecretFileError),
    #[error(
        "no control token: {path} does not exist and {TOKEN_ENV} is not set (the daemon writes \
         the file when it starts; is it running with this configuration?)"
    )]
    Missing { path: PathBuf },
    #[error("cannot write the control token to {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The daemon's token: `OPCGW_CONTROL__TOKEN` (already in `config.token`, where the config
/// loader put it) beats `config.token_file` (read with [`read_secret_file`], so a group- or
/// world-readable file is refused), and without either a token is generated and written to
/// `token_file` for `opcgw ctl` to read.
pub fn resolve_token(config: &ControlConfig) -> Result<(Secret, TokenSource), TokenError> {
    if let Some(token) = configured_token(config)? {
        return Ok((token, TokenSource::Env));
    }
    match read_token_file(&config.token_file) {
        Ok(token) => return Ok((token, TokenSource::File)),
        Err(TokenError::Missing { .. }) => {}
        Err(e) => return Err(e),
    }
    let token = generate_token();
    write_token_file(&config.token_file, &token).map_err(|source| TokenError::Write {
        path: config.token_file.clone(),
        source,
    })?;
    Ok((Secret::new(token), TokenSource::Generated))
}

/// The token `opcgw ctl` sends: the same environment variable, else the token file. Unlike
/// [`resolve_token`] it never generates one: a client with a fresh token would only fail.
pub fn read_client_token(config: &ControlConfig) -> Result<Secret, TokenError> {
    match configured_token(config)? {
        Some(token) => Ok(token),
        None => read_token_file(&config.token_file),
    }
}

fn configured_token(config: &ControlConfig) -> Result<Option<Secret>, TokenError> {
    if config.token.is_empty() {
        return Ok(None);
    }
    if config.token.is_placeholder() {
        return Err(TokenError::Placeholder);
    }
    let token = config.token.expose().trim();
    check_strength(token, TOKEN_ENV)?;
    Ok(Some(Secret::new(token)))
}

fn read_token_file(path: &Path) -> Result<Secret, TokenError> {
    match read_secret_file(path) {
        Ok(token) => {
            check_strength(&token, "control.token_file")?;
            Ok(Secret::new(token))
        }
        Err(SecretFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(TokenError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => Err(TokenError::File(e)),
    }
}

/// The same strength rule as every other secret (length, well-known values, repeats,
/// sequences; see `config::weakness`), with the control socket's longer minimum.
pub fn check_strength(token: &str, origin: &'static str) -> Result<(), TokenError> {
    match weakness(token, MIN_TOKEN_BYTES, None) {
        Some(weakness) => Err(TokenError::Weak { origin, weakness }),
        None => Ok(()),
    }
}
