//! The configuration file as text: read once (bounded), its TOML syntax checked, and the line
//! and column of any key looked up for the messages of later checks.
//!
//! The toml parser's own error text repeats the offending source line under a caret. That
//! line may carry a secret (`user_password = "abc…` with its closing quote missing), so it is
//! never shown: a syntax error names the key the line starts with, the line, the column and
//! the parser's message, and nothing else of the file.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Table, Value};

use super::key_path::{KeyPath, Segment};
use super::load::{figment_problems, too_large, ConfigError, ConfigProblem, MAX_CONFIG_FILE_BYTES};

/// A configuration file: its text, and its document with every key's position, parsed only
/// when a message needs a position (a fleet's file is large and usually right: the loader's
/// own parse is the only one it then pays for).
pub(super) struct SourceFile {
    path: PathBuf,
    text: String,
    document: std::sync::OnceLock<Option<ImDocument<String>>>,
}

impl SourceFile {
    /// Reads `path` (at most [`MAX_CONFIG_FILE_BYTES`]); its syntax is checked by the load.
    pub(super) fn read(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::new(path, read_config_text(path)?))
    }

    pub(super) fn new(path: &Path, text: String) -> Self {
        Self {
            path: path.to_path_buf(),
            text,
            document: std::sync::OnceLock::new(),
        }
    }

    /// The file with its TOML syntax checked; a syntax error is one problem that names the
    /// key, the line and the column and quotes nothing of the file.
    #[cfg(test)]
    pub(super) fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        let file = Self::new(path, text);
        file.check_syntax()?;
        Ok(file)
    }

    /// `Ok` when the text is TOML, else the problem [`Self::parse`] describes.
    pub(super) fn check_syntax(&self) -> Result<(), ConfigError> {
        match ImDocument::parse(self.text.clone()) {
            Ok(document) => {
                let _ = self.document.set(Some(document));
                Ok(())
            }
            Err(err) => Err(ConfigError::Invalid {
                path: self.path.clone(),
                problems: vec![syntax_problem(&self.path, &self.text, &err)],
            }),
        }
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// The file's tree of values. figment's error quotes the broken line, which may hold a
    /// secret: a file that does not parse is described by the document parser, which quotes
    /// nothing.
    pub(super) fn tree(&self) -> Result<figment::value::Value, ConfigError> {
        use figment::providers::{Format, Toml};
        match figment::Figment::new()
            .merge(Toml::string(&self.text))
            .find_value("")
        {
            Ok(tree) => Ok(tree),
            Err(err) => {
                self.check_syntax()?;
                Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    problems: figment_problems(err, None),
                })
            }
        }
    }

    /// "in <file>, line L, column C" for `key` when the file sets it.
    pub(super) fn locate(&self, key: &KeyPath) -> Option<String> {
        let document = self
            .document
            .get_or_init(|| ImDocument::parse(self.text.clone()).ok())
            .as_ref()?;
        let span = span_of(document, key)?;
        let (line, column) = line_column(self.text(), span.start);
        Some(format!(
            "in {}, line {line}, column {column}",
            self.path.display()
        ))
    }
}

/// The text of the configuration file at `path`: a regular file of at most
/// [`MAX_CONFIG_FILE_BYTES`], UTF-8. Its syntax is not checked here.
pub fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let io = |reason: String| ConfigError::Io {
        path: path.to_path_buf(),
        reason,
    };
    // Metadata first: opening a FIFO for reading would block until a writer comes.
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => io(
            "no such file (pass --config PATH or create it from config/config.example.toml)".into(),
        ),
        _ => io(e.to_string()),
    })?;
    if !meta.is_file() {
        return Err(io("not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_FILE_BYTES {
        return Err(io(too_large()));
    }
    let file = std::fs::File::open(path).map_err(|e| io(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(io(too_large()));
    }
    String::from_utf8(bytes).map_err(|_| io("not UTF-8 text (a TOML file is UTF-8)".into()))
}

/// One problem for a syntax error, without any of the file's text but the key name.
fn syntax_problem(path: &Path, text: &str, err: &toml_edit::TomlError) -> ConfigProblem {
    let offset = err.span().map(|s| s.start).unwrap_or(0);
    let (line, column) = line_column(text, offset);
    let key = key_at_line(text, line).unwrap_or_default();
    let message = err
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    ConfigProblem::new(
        key,
        format!(
            "TOML syntax error (in {}, line {line}, column {column}): {message} (the line is not \
             shown: it may hold a secret)",
            path.display()
        ),
    )
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The dotted key set or opened on 1-based `line`: the table header in effect and the key
/// before `=`, each only when it is a plain key (so no value is ever taken for a key).
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    if let Some(header) = header_name(current) {
        return Some(header);
    }
    let key = current.split_once('=').map(|(key, _)| key.trim())?;
    if !is_plain_key(key) {
        return None;
    }
    let section = lines[..line - 1]
        .iter()
        .rev()
        .find_map(|l| header_name(l.trim()));
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}

/// `opcua` for `[opcua]`, `application.device` for `[[application.device]]`.
fn header_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    let name = inner[..end].trim();
    is_plain_key(name).then(|| name.to_string())
}

/// A bare TOML key (dotted allowed) of a sensible length: a configuration key, not a value.
fn is_plain_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Where `key` is written: the key itself, or for a list element its `[[header]]` or value.
fn span_of(document: &ImDocument<String>, key: &KeyPath) -> Option<Range<usize>> {
    enum Node<'a> {
        Item(&'a Item),
        Table(&'a Table),
        Value(&'a Value),
    }
    let mut node = Node::Table(document.as_table());
    let mut span = None;
    for segment in key.segments() {
        (node, span) = match (segment, node) {
            (Segment::Key(name), Node::Table(table))
            | (Segment::Key(name), Node::Item(Item::Table(table))) => {
                let (key, item) = table.get_key_value(name)?;
                (Node::Item(item), key.span())
            }
            (Segment::Key(name), Node::Item(Item::Value(Value::InlineTable(table))))
            | (Segment::Key(name), Node::Value(Value::InlineTable(table))) => {
                let (key, item) = table.get_key_value(name)?;
                (Node::Item(item), key.span())
            }
            (Segment::Index(i), Node::Item(Item::ArrayOfTables(tables))) => {
                let table = tables.get(*i)?;
                (Node::Table(table), table.span())
            }
            (Segment::Index(i), Node::Item(Item::Value(Value::Array(items))))
            | (Segment::Index(i), Node::Value(Value::Array(items))) => {
                let value = items.get(*i)?;
                (Node::Value(value), value.span())
            }
            _ => return None,
        };
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourceFile, ConfigError> {
        SourceFile::parse(Path::new("config.toml"), text.to_string())
    }

    fn syntax_error(text: &str) -> ConfigProblem {
        match parse(text) {
            Err(ConfigError::Invalid { mut problems, .. }) if problems.len() == 1 => {
                problems.remove(0)
            }
            Err(other) => panic!("expected one syntax problem, got {other}"),
            Ok(_) => panic!("expected a syntax error"),
        }
    }

    #[test]
    fn a_syntax_error_names_key_line_and_column_but_never_the_line() {
        let secret = "hunter2-correct-horse-battery";
        let cases = [
            format!("[chirpstack]\ntenant_id = \"x\"\n\n[opcua]\nuser_password = \"{secret}\n"),
            format!("[opcua]\nuser_password = {secret}\n"),
            format!("[chirpstack]\napi_token = '{secret}\nretry = 3\n"),
            format!("[opcua]\nuser_password = \"\"\"{secret}\n"),
            format!("[opcua]\nuser_password = \"{secret}\" x\n"),
            format!("[opcua]\nuser_password = \"{secret}\"\nuser_password = \"{secret}\"\n"),
            format!("[opcua]\n{secret}\n"),
            format!("[opcua]\nuser_password = [\"{secret}\"\n"),
        ];
        for text in &cases {
            let problem = syntax_error(text);
            let rendered = problem.to_string();
            assert!(!rendered.contains(secret), "{text:?} leaked: {rendered}");
            assert!(!rendered.contains("hunter"), "{text:?} leaked: {rendered}");
            assert!(!rendered.contains('\n'), "{rendered}");
            assert!(
                rendered.contains("line ") && rendered.contains("column "),
                "{rendered}"
            );
        }
        let problem = syntax_error(&cases[0]);
        assert_eq!(problem.key, "opcua.user_password");
        assert!(problem.message.contains("line 5, column"), "{problem}");
        let problem = syntax_error(&cases[1]);
        assert_eq!(problem.key, "opcua.user_password");
        assert!(problem.message.contains("line 2, column 17"), "{problem}");
    }

    #[test]
    fn a_value_is_never_taken_for_a_key() {
        assert_eq!(key_at_line("[opcua]\nabc def = 1\n", 2), None);
        assert_eq!(key_at_line("[opcua]\n\"quoted\" = 1\n", 2), None);
        assert_eq!(key_at_line("[opcua]\nsecretvalue\n", 2), None);
        assert_eq!(key_at_line("x = 1\n", 1), Some("x".into()));
        assert_eq!(
            key_at_line("[[application.device]]\nid = \n", 2),
            Some("application.device.id".into())
        );
    }

    #[test]
    fn keys_are_located_by_line_and_column() {
        let file = parse(
            "[opcua]\nhost_port = 1\n\n[[application]]\nid = \"a\"\n  [[application.device]]\n  \
             device_id = \"d\"\n  endpoints = [1, 2]\n",
        )
        .unwrap();
        let at = |path: KeyPath| file.locate(&path).unwrap_or_default();
        assert!(at(KeyPath::root("opcua").key("host_port")).ends_with("line 2, column 1"));
        let device = KeyPath::root("application").index(0).key("device").index(0);
        assert!(at(device.key("device_id")).ends_with("line 7, column 3"));
        let element = at(device.join_dotted(["endpoints", "1"]));
        assert!(element.ends_with("line 8, column 19"), "{element}");
        assert_eq!(file.locate(&KeyPath::root("opcua").key("nope")), None);
    }
}
