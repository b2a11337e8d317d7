//! Every type error and unknown key of a section, not only the first.
//!
//! serde stops a struct at its first error. Each field is therefore deserialised on its own,
//! as a one-key table of its section's type: a wrong type surfaces for that key (serde reads
//! every entry present before it complains about missing required fields, so the "missing
//! field" errors the other keys' absence causes are ignored here and left to the real
//! extraction), and serde_ignored names the keys the type does not know. Lists of tables
//! (applications, devices, metrics, commands) are probed element by element.
//!
//! Messages never carry the offending value: a type error says what kind of value was found
//! and what was expected, because the value may be a secret (`api_token = 12345678901234`,
//! a secret pasted under the wrong key).

use figment::error::{Actual, Kind};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::key_path::KeyPath;
use super::schema::*;

/// One field that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldProblem {
    pub path: KeyPath,
    pub kind: FieldProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FieldProblemKind {
    /// The schema has no such key.
    Unknown,
    /// The value does not deserialise; the text holds no value.
    Invalid(String),
}

type Probe = fn(&Value, &KeyPath, &mut Vec<FieldProblem>);

/// The problems of top-level section `name` (whose value is `value`).
pub(super) fn probe_section(name: &str, value: &Value) -> Vec<FieldProblem> {
    let at = KeyPath::root(name);
    let mut out = Vec::new();
    match name {
        "logging" => probe_table::<LoggingConfig>(value, &at, &[], nothing, &mut out),
        "chirpstack" => probe_table::<ChirpstackConfig>(value, &at, &[], nothing, &mut out),
        "opcua" => probe_table::<OpcUaConfig>(value, &at, &[], nothing, &mut out),
        "web" => probe_table::<WebConfig>(value, &at, &[], nothing, &mut out),
        "storage" => probe_table::<StorageConfig>(value, &at, &[], nothing, &mut out),
        "control" => probe_table::<ControlConfig>(value, &at, &[], nothing, &mut out),
        "supervisor" => probe_table::<SupervisorConfig>(value, &at, &[], nothing, &mut out),
        "metrics" => probe_table::<MetricsConfig>(value, &at, &[], nothing, &mut out),
        "application" => probe_list::<ApplicationConfig>(value, &at, probe_application, &mut out),
        "device_template" => probe_list::<DeviceTemplate>(value, &at, probe_template, &mut out),
        _ => {}
    }
    out
}

fn probe_application(value: &Value, at: &KeyPath, out: &mut Vec<FieldProblem>) {
    probe_table::<ApplicationConfig>(
        value,
        at,
        &[("device", probe_device)],
        is_device_template_key,
        out,
    );
}

/// `device.<n>.template`: a device's template, relative to its application. The loader reads
/// it (`config::template`); the schema types do not have it.
fn is_device_template_key(key: &str) -> bool {
    let mut parts = key.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("device"), Some(index), Some(TEMPLATE_KEY), None)
            if index.bytes().all(|b| b.is_ascii_digit())
    )
}

/// Tolerates no key beyond the schema.
fn nothing(_: &str) -> bool {
    false
}

fn probe_device(value: &Value, at: &KeyPath, out: &mut Vec<FieldProblem>) {
    probe_table::<DeviceConfig>(
        value,
        at,
        &[("read_metric", probe_metric), ("command", probe_command)],
        |key| key == TEMPLATE_KEY,
        out,
    );
}

/// The key of a device naming its template.
pub(super) const TEMPLATE_KEY: &str = "template";

fn probe_template(value: &Value, at: &KeyPath, out: &mut Vec<FieldProblem>) {
    probe_table::<DeviceTemplate>(
        value,
        at,
        &[("read_metric", probe_metric), ("command", probe_command)],
        nothing,
        out,
    );
}

fn probe_metric(value: &Value, at: &KeyPath, out: &mut Vec<FieldProblem>) {
    probe_table::<MetricConfig>(value, at, &[], nothing, out);
}

fn probe_command(value: &Value, at: &KeyPath, out: &mut Vec<FieldProblem>) {
    probe_table::<CommandConfig>(value, at, &[], nothing, out);
}

/// A list of `T` tables: each element probed with `element`; anything else reported whole.
fn probe_list<T: DeserializeOwned>(
    value: &Value,
    at: &KeyPath,
    element: Probe,
    out: &mut Vec<FieldProblem>,
) {
    match value {
        Value::Array(_, items) => {
            for (i, item) in items.iter().enumerate() {
                element(item, &at.index(i), out);
            }
        }
        _ => {
            if let Err(err) = Vec::<T>::deserialize(value) {
                record(err, at, out);
            }
        }
    }
}

/// Probes each field of a `T` table; `lists` are the fields holding lists of tables, each
/// probed element by element with its own probe; keys `tolerated` says the loader reads
/// itself are not reported (nor checked here).
///
/// A table that deserializes whole, with no key but tolerated ones left over, has no problem:
/// that one pass is taken first, so a valid file of 10,000 devices is not probed field by field
/// (each field alone fails on the missing others, and those errors cost).
fn probe_table<T: DeserializeOwned>(
    value: &Value,
    at: &KeyPath,
    lists: &[(&str, Probe)],
    tolerated: fn(&str) -> bool,
    out: &mut Vec<FieldProblem>,
) {
    let Value::Dict(_, fields) = value else {
        if let Err(err) = T::deserialize(value) {
            record(err, at, out);
        }
        return;
    };
    let mut untolerated = false;
    let whole: Result<T, _> = serde_ignored::deserialize(value, |ignored| {
        untolerated |= !tolerated(&ignored.to_string());
    });
    if whole.is_ok() && !untolerated {
        return;
    }
    for (key, field) in fields {
        if tolerated(key) {
            continue;
        }
        let path = at.key(key);
        if let (Some((_, element)), Value::Array(_, items)) =
            (lists.iter().find(|(name, _)| name == key), field)
        {
            for (i, item) in items.iter().enumerate() {
                element(item, &path.index(i), out);
            }
            continue;
        }
        let single = Value::from(Dict::from([(key.clone(), field.clone())]));
        let mut unknown = Vec::new();
        let result: Result<T, _> = serde_ignored::deserialize(&single, |ignored| {
            unknown.push(ignored.to_string());
        });
        for ignored in unknown {
            out.push(FieldProblem {
                path: at.join_dotted(ignored.split('.')),
                kind: FieldProblemKind::Unknown,
            });
        }
        if let Err(err) = result {
            record(err, at, out);
        }
    }
}

/// Records every error of `err` but the missing fields (see the module comment).
fn record(err: figment::Error, at: &KeyPath, out: &mut Vec<FieldProblem>) {
    for err in err {
        if matches!(err.kind, Kind::MissingField(_)) {
            continue;
        }
        out.push(FieldProblem {
            path: at.join_dotted(&err.path),
            kind: FieldProblemKind::Invalid(describe(&err.kind)),
        });
    }
}

/// What went wrong, without the value that went wrong.
pub(super) fn describe(kind: &Kind) -> String {
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: found {}, expected {expected}", what(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {}, expected {expected}", what(actual))
        }
        Kind::InvalidLength(len, expected) => {
            format!("invalid length {len}, expected {expected}")
        }
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant, expected one of {}", expected.join(", "))
        }
        Kind::UnknownField(field, _) => format!("unknown field `{field}`"),
        Kind::MissingField(field) => format!("missing field `{field}`"),
        Kind::DuplicateField(field) => format!("duplicate field `{field}`"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "integer out of range".to_string(),
        Kind::Unsupported(actual) => format!("unsupported {}", what(actual)),
        Kind::UnsupportedKey(actual, expected) => {
            format!("unsupported key type {}, expected {expected}", what(actual))
        }
        // Custom messages (from a Deserialize impl) may quote anything: keep them out.
        Kind::Message(_) => "invalid value".to_string(),
    }
}

/// The kind of a found value, never the value.
fn what(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit => "an empty value",
        Actual::Option => "an optional value",
        Actual::NewtypeStruct => "a newtype struct",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        Actual::Enum
        | Actual::UnitVariant
        | Actual::NewtypeVariant
        | Actual::TupleVariant
        | Actual::StructVariant => "an enum variant",
        Actual::Other(_) => "another kind of value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(toml: &str) -> Value {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(toml))
            .find_value("")
            .expect("valid TOML")
    }

    fn problems(toml: &str) -> Vec<(String, FieldProblemKind)> {
        let root = value(toml);
        let mut found = Vec::new();
        for (name, section) in root.as_dict().expect("a table") {
            for problem in probe_section(name, section) {
                found.push((problem.path.to_string(), problem.kind));
            }
        }
        found
    }

    #[test]
    fn every_wrong_type_of_a_section_is_found_not_only_the_first() {
        let found = problems(
            "[opcua]\nhost_port = \"x\"\nallow_anonymous = 3\nmax_connections = true\nhello_timeout = 5\n",
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "opcua.allow_anonymous",
                "opcua.host_port",
                "opcua.max_connections"
            ]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_inside_lists_are_found_per_element() {
        let found = problems(
            "[[application]]\napplication_name = \"A\"\napplication_id = 7\nextra = 1\n\
             [[application.device]]\ndevice_name = 1\ndevice_id = \"d\"\n\
             [[application.device.read_metric]]\nmetric_name = \"m\"\nchirpstack_metric_name = \"m\"\nmetric_type = \"Nope\"\nunit = \"cm\"\n\
             [[application.device.command]]\ncommand_name = \"c\"\ncommand_id = -1\ncommand_port = 1\ncommand_min = \"low\"\n",
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "application[0].application_id",
            "application[0].extra",
            "application[0].device[0].device_name",
            "application[0].device[0].read_metric[0].metric_type",
            "application[0].device[0].read_metric[0].unit",
            "application[0].device[0].command[0].command_id",
            "application[0].device[0].command[0].command_min",
        ] {
            assert!(keys.contains(&key), "{key} missing from {found:#?}");
        }
        assert_eq!(found.len(), 7, "{found:#?}");
    }

    #[test]
    fn a_wrong_type_never_shows_the_value() {
        let found = problems(
            "[chirpstack]\napi_token = 12345678901234\n[opcua]\nuser_password = [\"hunter2-secret\"]\nhost_port = \"hunter3-secret\"\n\
             [[application]]\napplication_name = \"A\"\napplication_id = \"a\"\n[[application.device]]\ndevice_name = \"d\"\ndevice_id = \"d\"\n\
             [[application.device.read_metric]]\nmetric_name = \"m\"\nchirpstack_metric_name = \"m\"\nmetric_type = \"hunter4-secret\"\n",
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        for (key, kind) in &found {
            let FieldProblemKind::Invalid(message) = kind else {
                panic!("{key}: {kind:?}")
            };
            for leak in ["12345678901234", "hunter"] {
                assert!(!message.contains(leak), "{key}: {message}");
            }
        }
        assert!(found.iter().any(|(k, kind)| k == "chirpstack.api_token"
            && *kind
                == FieldProblemKind::Invalid(
                    "invalid type: found an integer, expected a string".into()
                )));
    }

    #[test]
    fn a_section_of_the_wrong_shape_is_one_problem() {
        let found = problems("opcua = 5\napplication = \"x\"\n");
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["application", "opcua"], "{found:#?}");
    }
}
