//! A configuration key with list indices, as messages print it
//! (`application[0].device[1].device_id`), built while walking a value tree.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub(super) fn root(key: &str) -> Self {
        Self(vec![Segment::Key(key.to_string())])
    }

    pub(super) fn from_segments(segments: Vec<Segment>) -> Self {
        Self(segments)
    }

    pub(super) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    pub(super) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// `self` extended by a path as serde reporters give it (`endpoints.1`, `unit`): a segment
    /// of digits is a list index.
    pub(super) fn join_dotted<S: AsRef<str>>(&self, segments: impl IntoIterator<Item = S>) -> Self {
        let mut path = self.clone();
        for segment in segments {
            let segment = segment.as_ref();
            path.0.push(match segment.parse::<usize>() {
                Ok(index) => Segment::Index(index),
                Err(_) => Segment::Key(segment.to_string()),
            });
        }
        path
    }

    /// The key of a message (`application[3].device[0].device_id`), as [`fmt::Display`] writes
    /// it; `None` for text that is no key.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut path = Vec::new();
        for part in text.split('.') {
            let mut pieces = part.split('[');
            let name = pieces.next().filter(|n| !n.is_empty())?;
            path.push(Segment::Key(name.to_string()));
            for piece in pieces {
                let index = piece.strip_suffix(']')?.parse().ok()?;
                path.push(Segment::Index(index));
            }
        }
        Some(Self(path))
    }

    /// The key without its last segment (`None` for a top-level key).
    pub(super) fn parent(&self) -> Option<Self> {
        (self.0.len() > 1).then(|| Self(self.0[..self.0.len() - 1].to_vec()))
    }

    pub(super) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The key as the environment overlay spells it, indices as segments
    /// (`application.0.device_name`).
    pub(super) fn dotted(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| match s {
                Segment::Key(key) => key.clone(),
                Segment::Index(index) => index.to_string(),
            })
            .collect();
        parts.join(".")
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_with_dots_and_brackets() {
        let path = KeyPath::root("application")
            .index(0)
            .key("device")
            .index(1)
            .join_dotted(["read_metric", "2", "unit"]);
        assert_eq!(
            path.to_string(),
            "application[0].device[1].read_metric[2].unit"
        );
        assert_eq!(path.dotted(), "application.0.device.1.read_metric.2.unit");
        assert_eq!(
            KeyPath::root("opcua").key("host_port").dotted(),
            "opcua.host_port"
        );
        // A message's key reads back as the path that printed it.
        assert_eq!(KeyPath::parse(&path.to_string()), Some(path.clone()));
        assert_eq!(
            KeyPath::parse("opcua.host_port"),
            Some(KeyPath::root("opcua").key("host_port"))
        );
        for not_a_key in ["", "a..b", "a[x]", "a[1", "[1]"] {
            assert_eq!(KeyPath::parse(not_a_key), None, "{not_a_key:?}");
        }
        assert_eq!(
            path.parent().and_then(|p| p.parent()),
            Some(
                KeyPath::root("application")
                    .index(0)
                    .key("device")
                    .index(1)
                    .key("read_metric")
            )
        );
    }
}
