//! Configuration: schema, loading (defaults -> TOML -> environment), validation, secrets, and
//! the diff/classification that decides what a reload may change live.

mod diff;
pub mod discovered;
pub mod edit;
mod env;
mod include;
mod key_path;
mod load;
mod probe;
mod schema;
mod secret;
mod source;
mod split;
mod template;
mod validate;
mod weak;

pub use diff::{classify_knob, ConfigDiff, KnobChange, KnobClass, TopologyDiff};
pub use env::{env_var_for, EnvSnapshot, SECRET_ENV_VARS};
pub use load::{
    load, load_control, load_text, ConfigError, ConfigProblem, LoadedConfig, MAX_CONFIG_FILE_BYTES,
};
pub use schema::*;
pub use secret::{Secret, PLACEHOLDER_PREFIX, REDACTED};
pub use source::read_config_text;
pub use validate::{check_log_filter, validate, ValidationReport};
pub use weak::{weakness, Weakness, MIN_SECRET_CHARS, MIN_TOKEN_BYTES};

/// The config file used when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/config.toml";

impl AppConfig {
    /// The configuration as TOML with every secret replaced by `***REDACTED***`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
