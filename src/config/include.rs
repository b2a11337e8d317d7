//! `include = ["conf.d/*.toml"]`: a fleet's configuration split into files a person can read.
//!
//! The main file names its included files at the top level, relative to its own directory; a
//! `*` or `?` in the file name part matches within that one directory (no `**`), and each
//! pattern's files are taken in sorted order, patterns in the order written. An included file
//! holds `[[application]]` and `[[device_template]]` entries only (and no `include` of its
//! own): they are appended to the main file's lists, in order, so the environment's indexes
//! (`OPCGW_APPLICATION__<n>__...`) count across files. Each file is read with the size cap of
//! one configuration file, and the files are parsed in parallel.

use std::path::{Path, PathBuf};

use figment::value::Value;

use super::load::{ConfigError, ConfigProblem};
use super::source::SourceFile;

/// The top-level key naming the included files.
pub(super) const INCLUDE_KEY: &str = "include";
/// What an included file may hold.
pub(super) const INCLUDABLE: [&str; 2] = ["application", "device_template"];
/// Most files one configuration may include.
pub const MAX_INCLUDED_FILES: usize = 1_000;

/// The files `patterns` (the value of `include` in the main file at `main`) name, in order,
/// each once; a problem for every pattern that is not a string, names no file when it has no
/// wildcard, or reaches outside one directory level.
fn resolve(main: &Path, patterns: &Value) -> Result<Vec<PathBuf>, Vec<ConfigProblem>> {
    let base = main.parent().unwrap_or_else(|| Path::new("."));
    let Value::Array(_, patterns) = patterns else {
        return Err(vec![ConfigProblem::new(
            INCLUDE_KEY,
            "expected a list of file names or patterns (include = [\"conf.d/*.toml\"])",
        )]);
    };
    let mut found: Vec<PathBuf> = Vec::new();
    let mut problems = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let key = format!("{INCLUDE_KEY}[{i}]");
        let Value::String(_, pattern) = pattern else {
            problems.push(ConfigProblem::new(key, "expected a string"));
            continue;
        };
        let relative = Path::new(pattern);
        let (dir, name) = match (relative.parent(), relative.file_name()) {
            (Some(dir), Some(name)) => (base.join(dir), name.to_string_lossy().into_owned()),
            _ => {
                problems.push(ConfigProblem::new(
                    key,
                    format!("{pattern:?} names no file"),
                ));
                continue;
            }
        };
        if dir.to_string_lossy().contains(['*', '?']) {
            problems.push(ConfigProblem::new(
                key,
                format!("{pattern:?}: wildcards match file names in one directory only"),
            ));
            continue;
        }
        if !name.contains(['*', '?']) {
            let path = dir.join(&name);
            if !path.is_file() {
                problems.push(ConfigProblem::new(
                    key,
                    format!("{} is not a file", path.display()),
                ));
                continue;
            }
            push_once(&mut found, path);
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(ConfigProblem::new(
                    key,
                    format!("cannot list {}: {e}", dir.display()),
                ));
                continue;
            }
        };
        let mut matched: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| wildcard_match(&name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            // Files, through symbolic links too (conf.d/ linking to conf.available/).
            .filter(|p| p.is_file())
            .collect();
        matched.sort();
        for path in matched {
            push_once(&mut found, path);
        }
    }
    if found.len() > MAX_INCLUDED_FILES {
        problems.push(ConfigProblem::new(
            INCLUDE_KEY,
            format!(
                "{} files match; at most {MAX_INCLUDED_FILES} may be included",
                found.len()
            ),
        ));
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

fn push_once(found: &mut Vec<PathBuf>, path: PathBuf) {
    if !found.contains(&path) {
        found.push(path);
    }
}

/// `*` (any run of characters) and `?` (one character) against a whole file name.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// One included file, read and parsed.
struct IncludedFile {
    file: SourceFile,
    value: Value,
}

/// Reads and parses `paths` on up to as many threads as there are cores, in order. A file
/// that cannot be read or parsed fails the load with its own error (naming that file).
fn read_all(paths: &[PathBuf]) -> Result<Vec<IncludedFile>, ConfigError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = paths.len().div_ceil(threads).max(1);
    let parsed: Vec<Result<Vec<IncludedFile>, ConfigError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|chunk| scope.spawn(move || chunk.iter().map(|p| read_one(p)).collect()))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(ConfigError::Io {
                        path: PathBuf::from(INCLUDE_KEY),
                        reason: "reading an included file failed".into(),
                    })
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(paths.len());
    for part in parsed {
        out.extend(part?);
    }
    Ok(out)
}

fn read_one(path: &Path) -> Result<IncludedFile, ConfigError> {
    let file = SourceFile::read(path)?;
    let value = file.tree()?;
    let mut problems = Vec::new();
    if let Some(dict) = value.as_dict() {
        for key in dict.keys() {
            let why = if key == INCLUDE_KEY {
                "an included file cannot include others (one level only)"
            } else if !INCLUDABLE.contains(&key.as_str()) {
                "an included file holds [[application]] and [[device_template]] entries only; \
                 set the other sections in the main file"
            } else {
                continue;
            };
            problems.push(ConfigProblem::new(
                key.clone(),
                format!("{why} (in {})", path.display()),
            ));
        }
    }
    if problems.is_empty() {
        Ok(IncludedFile { file, value })
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Which file (0: the main one, n: the n-th included) holds each entry of the lists that
/// included files extend.
#[derive(Default)]
pub(super) struct Placement {
    /// (list, file, first merged index, entries).
    runs: Vec<(&'static str, usize, usize, usize)>,
}

impl Placement {
    /// The file and the position in it of entry `index` of `list`.
    pub(super) fn find(&self, list: &str, index: usize) -> Option<(usize, usize)> {
        self.runs
            .iter()
            .find(|(name, _, start, len)| *name == list && (*start..start + len).contains(&index))
            .map(|(_, file, start, _)| (*file, index - start))
    }
}

fn list_len(value: &Value, list: &str) -> usize {
    match value.as_dict().and_then(|d| d.get(list)) {
        Some(Value::Array(_, items)) => items.len(),
        _ => 0,
    }
}

/// Takes `include` out of the main file's tree `base`, reads the files it names and appends
/// their lists to `base`'s (see `config::include`).
pub(super) fn include_files(
    path: &Path,
    base: &mut Value,
) -> Result<(Vec<SourceFile>, Placement), ConfigError> {
    let mut placement = Placement::default();
    for list in INCLUDABLE {
        placement.runs.push((list, 0, 0, list_len(base, list)));
    }
    let Value::Dict(_, root) = base else {
        return Ok((Vec::new(), placement));
    };
    let Some(patterns) = root.remove(INCLUDE_KEY) else {
        return Ok((Vec::new(), placement));
    };
    let paths = resolve(path, &patterns).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })?;
    let mut files = Vec::with_capacity(paths.len());
    for (n, included) in read_all(&paths)?.into_iter().enumerate() {
        if let Value::Dict(_, mut entries) = included.value {
            for list in INCLUDABLE {
                let Some(Value::Array(_, items)) = entries.remove(list) else {
                    continue;
                };
                let target = root
                    .entry(list.to_string())
                    .or_insert_with(|| Value::Array(figment::value::Tag::Default, Vec::new()));
                // A main file whose list is not a list is reported by the probe.
                if let Value::Array(_, existing) = target {
                    placement
                        .runs
                        .push((list, n + 1, existing.len(), items.len()));
                    existing.extend(items);
                }
            }
        }
        files.push(included.file);
    }
    Ok((files, placement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_names() {
        assert!(wildcard_match("*.toml", "site-a.toml"));
        assert!(wildcard_match("site-?.toml", "site-a.toml"));
        assert!(!wildcard_match("*.toml", "site-a.toml.bak"));
        assert!(!wildcard_match("site-?.toml", "site-ab.toml"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
    }
}
