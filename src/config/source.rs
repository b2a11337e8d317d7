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
    /// The table headers, found on the first lookup (see [`Self::span`]).
    headers: std::sync::OnceLock<Vec<Header>>,
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
            headers: std::sync::OnceLock::new(),
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
        let span = self.span(key)?;
        let (line, column) = line_column(self.text(), span.start);
        Some(format!(
            "in {}, line {line}, column {column}",
            self.path.display()
        ))
    }

    /// Where `key` is written. First in the text of the one table that holds it (from its
    /// header to the next): a fleet's file is megabytes, and its whole document holds ~13
    /// times that (~140 MB for 10,000 devices, all to place one warning at start, and the
    /// peak left the heap fragmented for good). The whole document only when the table's
    /// text cannot answer.
    fn span(&self, key: &KeyPath) -> Option<Range<usize>> {
        match self.span_in_table(key) {
            TableLookup::Found(span) => Some(span),
            TableLookup::Absent => None,
            TableLookup::Unsure => {
                let document = self
                    .document
                    .get_or_init(|| ImDocument::parse(self.text.clone()).ok())
                    .as_ref()?;
                span_of(document.as_table(), key)
            }
        }
    }

    /// `key` looked up in the text of the table that holds it (the deepest header its key
    /// starts with), alone.
    fn span_in_table(&self, key: &KeyPath) -> TableLookup {
        let headers = self.headers.get_or_init(|| scan_headers(&self.text));
        let segments = key.segments();
        let holds = |header: &Header| {
            header
                .prefix
                .as_ref()
                .filter(|prefix| segments.starts_with(prefix.segments()))
                .map(|prefix| prefix.segments().len())
        };
        let Some(deepest) = headers.iter().filter_map(holds).max() else {
            return TableLookup::Unsure;
        };
        let mut holders = headers
            .iter()
            .enumerate()
            .filter(|(_, header)| holds(header) == Some(deepest));
        let (Some((i, header)), None) = (holders.next(), holders.next()) else {
            // A header repeated: lines inside a multi-line value that look like headers.
            return TableLookup::Unsure;
        };
        let end = headers
            .get(i + 1)
            .map_or(self.text.len(), |next| next.start);
        let Some(Ok(document)) = self.text.get(header.start..end).map(ImDocument::parse) else {
            return TableLookup::Unsure;
        };
        // In the table's text alone, a `[[a.b]]` header opens the first entry of `a.b`, and
        // the tables it is in are plain tables.
        let mut local: Vec<Segment> = segments[..deepest]
            .iter()
            .filter(|s| matches!(s, Segment::Key(_)))
            .cloned()
            .collect();
        if header.array {
            local.push(Segment::Index(0));
        }
        local.extend_from_slice(&segments[deepest..]);
        if let Some(span) = span_of(document.as_table(), &KeyPath::from_segments(local)) {
            return TableLookup::Found(span.start + header.start..span.end + header.start);
        }
        // Not in its table: a table of its own further on (`key` opens a header), or behind
        // a header this scan cannot read, else nowhere.
        let elsewhere = headers.iter().any(|header| match &header.prefix {
            Some(prefix) => prefix.segments().starts_with(segments),
            None => true,
        });
        if elsewhere {
            TableLookup::Unsure
        } else {
            TableLookup::Absent
        }
    }
}

/// What looking a key up in its table's text alone tells.
enum TableLookup {
    Found(Range<usize>),
    Absent,
    /// The table's text cannot answer: the whole document must.
    Unsure,
}

/// A table header of the file (or the file's start, for its top-level keys).
#[derive(Debug)]
struct Header {
    /// Byte offset of the header's line.
    start: usize,
    /// The key of the table it opens, list indices included (`application[2].device[0]`);
    /// `None` for a header this scan does not read (a quoted name): it only ends a table.
    prefix: Option<KeyPath>,
    /// `[[...]]`: an entry of a list of tables.
    array: bool,
}

/// The headers of `text` in order, each with the key of the table it opens. Lines inside a
/// multi-line string are skipped; an array whose lines start with `[` may still pass for a
/// header, which the table lookup notices (its text is then no TOML, or the name repeats).
fn scan_headers(text: &str) -> Vec<Header> {
    let mut headers = vec![Header {
        start: 0,
        prefix: Some(KeyPath::default()),
        array: false,
    }];
    // Entries seen of each list of tables, by dotted name (reset when its parent moves on).
    let mut entries: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut in_string: Option<&str> = None;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let line_start = start;
        start += line.len();
        for quotes in ["\"\"\"", "'''"] {
            if in_string.is_none_or(|q| q == quotes) && line.matches(quotes).count() % 2 == 1 {
                in_string = if in_string.is_some() {
                    None
                } else {
                    Some(quotes)
                };
            }
        }
        let trimmed = line.trim();
        if in_string.is_some() || !trimmed.starts_with('[') {
            continue;
        }
        let array = trimmed.starts_with("[[");
        let Some(name) = header_name(trimmed) else {
            headers.push(Header {
                start: line_start,
                prefix: None,
                array,
            });
            continue;
        };
        if array {
            *entries.entry(name.clone()).or_default() += 1;
            let nested = format!("{name}.");
            entries.retain(|list, _| !list.starts_with(&nested));
        }
        let mut segments = Vec::new();
        let mut dotted = String::new();
        for part in name.split('.') {
            if !dotted.is_empty() {
                dotted.push('.');
            }
            dotted.push_str(part);
            segments.push(Segment::Key(part.to_string()));
            if let Some(count) = entries.get(&dotted) {
                segments.push(Segment::Index(count - 1));
            }
        }
        headers.push(Header {
            start: line_start,
            prefix: Some(KeyPath::from_segments(segments)),
            array,
        });
    }
    headers
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
fn span_of(root: &Table, key: &KeyPath) -> Option<Range<usize>> {
    enum Node<'a> {
        Item(&'a Item),
        Table(&'a Table),
        Value(&'a Value),
    }
    let mut node = Node::Table(root);
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

    /// The lookup within one table finds what the whole document finds, in a fleet-shaped
    /// file, without parsing the whole document; where the text could mislead it (header-like
    /// lines in a multi-line string, a repeated table) the whole document answers.
    #[test]
    fn a_key_is_found_in_its_table_alone_as_in_the_whole_document() {
        let mut text = String::from("include = [\"a.toml\"]\n[opcua]\nhost_port = 4855\n");
        for a in 0..3 {
            text.push_str(&format!(
                "\n[[application]]\napplication_id = \"app-{a}\"\n"
            ));
            for d in 0..40 {
                text.push_str(&format!(
                    "[[application.device]]\ndevice_id = \"{a}-{d}\"\nread_metric = [{{ \
                     metric_name = \"t\" }}, {{ metric_name = \"u\", metric_unit = \"C\" }}]\n"
                ));
                if d == 7 {
                    text.push_str("[application.device.extra]\nnote = 1\n");
                }
            }
        }
        let file = SourceFile::new(Path::new("config.toml"), text.clone());
        let whole = ImDocument::parse(text.clone()).unwrap();
        let device =
            |a: usize, d: usize| KeyPath::root("application").index(a).key("device").index(d);
        let keys = [
            KeyPath::root("include"),
            KeyPath::root("opcua").key("host_port"),
            KeyPath::root("application").index(2).key("application_id"),
            device(1, 39).key("device_id"),
            device(2, 0).join_dotted(["read_metric", "1", "metric_unit"]),
            device(0, 7).join_dotted(["extra", "note"]),
            device(2, 12),
        ];
        for key in &keys {
            let TableLookup::Found(span) = file.span_in_table(key) else {
                panic!("{key} not found in its table");
            };
            assert_eq!(Some(span), span_of(whole.as_table(), key), "{key}");
        }
        assert!(file.locate(&device(0, 3).key("nope")).is_none());
        assert!(
            file.document.get().is_none(),
            "found without the whole document"
        );
        assert!(file.locate(&device(3, 0)).is_none(), "no such entry");
        assert_eq!(
            file.span(&device(0, 7).key("extra")),
            span_of(whole.as_table(), &device(0, 7).key("extra")),
            "a table of its own further on"
        );

        let tricky =
            "[opcua]\nnote = \"\"\"\n[chirpstack]\ntenant_id = \"fake\"\n\"\"\"\nhost_port = 1\n\
                      \n[chirpstack]\ntenant_id = \"real\"\nretries = [\n[1, 2],\n]\nafter = 2\n";
        let file = SourceFile::new(Path::new("config.toml"), tricky.to_string());
        let whole = ImDocument::parse(tricky).unwrap();
        for key in [
            KeyPath::root("opcua").key("host_port"),
            KeyPath::root("chirpstack").key("tenant_id"),
            KeyPath::root("chirpstack").key("after"),
        ] {
            let span = span_of(whole.as_table(), &key);
            assert!(span.is_some());
            assert_eq!(file.span(&key), span, "{key}");
        }
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
