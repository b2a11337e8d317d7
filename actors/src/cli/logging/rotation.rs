//! The log file, bounded: `opcgw.log` is rotated to `opcgw.log.1` once it reaches its size
//! cap (`.1` to `.2`, and so on), and the oldest file beyond the count cap is removed. Disk
//! use stays below `max_files x max_file_size` whatever is logged (a connection flood once
//! wrote 50 MB in seconds into a file that only rolled daily).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A size-capped, rotating log file (written by one thread: the non-blocking log worker).
pub struct RotatingFile {
    dir: PathBuf,
    name: String,
    /// Files kept, the active one included.
    max_files: u32,
    max_bytes: u64,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens (appends to) `dir/name`, rotating first if it is already full, and removes
    /// numbered files beyond `max_files` (left over from a larger setting).
    pub fn open(dir: &Path, name: &str, max_files: u32, max_bytes: u64) -> io::Result<Self> {
        let path = dir.join(name);
        let file = open_append(&path)?;
        let written = file.metadata()?.len();
        let mut rotating = Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            max_files: max_files.max(1),
            max_bytes: max_bytes.max(1),
            file,
            written,
        };
        rotating.remove_beyond_cap()?;
        if rotating.written >= rotating.max_bytes {
            rotating.rotate()?;
        }
        Ok(rotating)
    }

    fn numbered(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{}.{n}", self.name))
    }

    fn remove_beyond_cap(&self) -> io::Result<()> {
        let prefix = format!("{}.", self.name);
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if n >= self.max_files {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let active = self.dir.join(&self.name);
        if self.max_files == 1 {
            remove_if_present(&active)?;
        } else {
            remove_if_present(&self.numbered(self.max_files - 1))?;
            for n in (1..self.max_files - 1).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    std::fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            std::fs::rename(&active, self.numbered(1))?;
        }
        self.file = open_append(&active)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            // On failure nothing is written: the cap holds even when rotation cannot happen.
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn disk_use_stays_below_files_times_size_and_the_newest_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::open(dir.path(), "opcgw.log", 3, 100).unwrap();
        for i in 0..1000 {
            writeln!(log, "line {i:04} of a flood").unwrap();
        }
        log.flush().unwrap();
        let found = files(dir.path());
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["opcgw.log", "opcgw.log.1", "opcgw.log.2"]);
        assert!(found.iter().all(|(_, len)| *len <= 100), "{found:?}");
        let newest = std::fs::read_to_string(dir.path().join("opcgw.log")).unwrap();
        assert!(newest.ends_with("line 0999 of a flood\n"), "{newest}");
        let older = std::fs::read_to_string(dir.path().join("opcgw.log.1")).unwrap();
        assert!(older.lines().last().unwrap() < newest.lines().next().unwrap());
    }

    #[test]
    fn reopening_appends_and_drops_files_beyond_a_lowered_cap() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = RotatingFile::open(dir.path(), "opcgw.log", 5, 50).unwrap();
            for i in 0..40 {
                writeln!(log, "before restart {i:02}").unwrap();
            }
        }
        assert_eq!(files(dir.path()).len(), 5);
        let mut log = RotatingFile::open(dir.path(), "opcgw.log", 2, 50).unwrap();
        writeln!(log, "after").unwrap();
        let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["opcgw.log", "opcgw.log.1"]);
        // A file other than ours is left alone.
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        drop(log);
        RotatingFile::open(dir.path(), "opcgw.log", 1, 50).unwrap();
        assert!(dir.path().join("other.txt").exists());
        assert!(!dir.path().join("opcgw.log.1").exists());
    }
}
