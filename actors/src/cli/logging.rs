//! Logging: console (stderr) plus a size-capped rotating file, one runtime-changeable filter,
//! and library lines rate-limited per call site. Lines are text, or one JSON object each
//! (`[logging].format = "json"`) with the event's fields at the top level beside `timestamp`,
//! `level`, `target` and `message`, for Loki / Elasticsearch / Vector.
//!
//! The bootstrap short forms `OPCGW_LOG_LEVEL` / `OPCGW_LOG_DIR` beat the configuration (and
//! its `OPCGW_LOGGING__*` overrides); they exist so logging can be steered even when the
//! configuration cannot be read.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use opcgw::config::{check_log_filter, EnvSnapshot, LogFormat, LoggingConfig};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

mod repeats;
mod rotation;

pub use repeats::{RepeatLimit, REPEAT_BURST, REPEAT_WINDOW};
pub use rotation::RotatingFile;

pub const LOG_LEVEL_ENV: &str = "OPCGW_LOG_LEVEL";
pub const LOG_DIR_ENV: &str = "OPCGW_LOG_DIR";
/// The active log file in the log directory; rotated files are `opcgw.log.1` (newest) ...
pub const LOG_FILE_NAME: &str = "opcgw.log";

/// The effective logging settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    pub level: String,
    pub dir: PathBuf,
    /// The level came from `OPCGW_LOG_LEVEL`, so configuration reloads do not change it.
    pub level_pinned: bool,
    /// Log files kept, the active one included.
    pub max_files: u32,
    /// Size at which the active file is rotated.
    pub max_file_bytes: u64,
    pub format: LogFormat,
}

impl LogSettings {
    pub fn resolve(config: &LoggingConfig, env: &EnvSnapshot) -> Self {
        let pinned = env
            .raw(LOG_LEVEL_ENV)
            .filter(|v| check_log_filter(v).is_ok());
        Self {
            level: pinned
                .map(str::to_string)
                .unwrap_or_else(|| config.level.clone()),
            dir: env
                .raw(LOG_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| config.dir.clone()),
            level_pinned: pinned.is_some(),
            max_files: config.max_files,
            max_file_bytes: u64::from(config.max_file_size_mb) * 1024 * 1024,
            format: config.format,
        }
    }
}

/// Changes the filter of the running subscriber.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    level_pinned: bool,
}

impl LogControl {
    /// Applies `filter` now (used by `ctl log-level`).
    pub fn set_filter(&self, filter: &str) -> Result<(), String> {
        check_log_filter(filter)?;
        let filter = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }

    /// Applies a reloaded `logging.level` unless `OPCGW_LOG_LEVEL` pins the level; returns
    /// whether it was applied.
    pub fn apply_config_level(&self, level: &str) -> Result<bool, String> {
        if self.level_pinned {
            return Ok(false);
        }
        self.set_filter(level).map(|()| true)
    }
}

/// Keeps the file writer flushing; drop it last.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Installs the global subscriber. A log directory that cannot be created degrades to
/// console-only logging with a warning instead of stopping the gateway.
pub fn init(settings: &LogSettings) -> (LogControl, LogGuard) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let repeat_limit = RepeatLimit::new(REPEAT_BURST, REPEAT_WINDOW);
    let console = line_layer(
        settings.format,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
    let (file_layer, guard, file_error) = match file_writer(settings) {
        Ok((writer, guard)) => (
            Some(line_layer(settings.format, writer, false)),
            Some(guard),
            None,
        ),
        Err(err) => (None, None, Some(err)),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(repeat_limit.clone())
        .with(
            vec![Some(console), file_layer]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        )
        .try_init();
    repeat_limit.spawn_reporter();
    if let Some(err) = file_error {
        tracing::warn!(
            event = "log_dir_unavailable",
            dir = %settings.dir.display(),
            error = %err,
            "logging to the console only; set OPCGW_LOG_DIR or [logging].dir to a writable directory"
        );
    }
    (
        LogControl {
            handle,
            level_pinned: settings.level_pinned,
        },
        LogGuard { _file: guard },
    )
}

/// The subscriber the formatting layers sit on: the reloadable filter, then the repeat limit.
type Filtered = tracing_subscriber::layer::Layered<
    RepeatLimit,
    tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>,
>;
type BoxedLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// One formatting layer writing to `writer`: text (coloured when `ansi`), or JSON lines.
fn line_layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => fmt::layer().with_writer(writer).with_ansi(ansi).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    }
}

fn file_writer(
    settings: &LogSettings,
) -> Result<(tracing_appender::non_blocking::NonBlocking, WorkerGuard), String> {
    let dir: &Path = &settings.dir;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let file = RotatingFile::open(
        dir,
        LOG_FILE_NAME,
        settings.max_files,
        settings.max_file_bytes,
    )
    .map_err(|e| e.to_string())?;
    Ok(
        tracing_appender::non_blocking::NonBlockingBuilder::default()
            .buffered_lines_limit(LOG_QUEUE_LINES)
            .finish(file),
    )
}

/// Lines waiting for the log file writer before new ones are dropped (the queue is allocated
/// up front: tracing-appender's default of 128,000 lines held 4 MB for the life of the
/// process). At debug level 1,000 devices log a few hundred lines a second, which the writer
/// drains as they come; the queue only has to absorb bursts.
pub const LOG_QUEUE_LINES: usize = 16_384;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_forms_beat_the_configuration() {
        let config = LoggingConfig {
            dir: "./log".into(),
            level: "warn".into(),
            ..LoggingConfig::default()
        };
        let plain = LogSettings::resolve(&config, &EnvSnapshot::default());
        assert_eq!(
            (
                plain.level.as_str(),
                plain.dir.as_path(),
                plain.level_pinned
            ),
            ("warn", Path::new("./log"), false)
        );
        let env =
            EnvSnapshot::from_pairs([(LOG_LEVEL_ENV, "debug"), (LOG_DIR_ENV, "/var/log/opcgw")]);
        let pinned = LogSettings::resolve(&config, &env);
        assert_eq!(
            (
                pinned.level.as_str(),
                pinned.dir.as_path(),
                pinned.level_pinned
            ),
            ("debug", Path::new("/var/log/opcgw"), true)
        );
        // An invalid short form does not pin anything.
        let bad =
            LogSettings::resolve(&config, &EnvSnapshot::from_pairs([(LOG_LEVEL_ENV, "loud")]));
        assert_eq!(bad.level, "warn");
    }
}
