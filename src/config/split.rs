//! The common case of a large file, read in one pass: a fleet written out device by device.
//!
//! The loader reads every section from figment's tree of values, which reports each problem
//! with its key and place. For `[[application]]` that tree is the cost of a fleet's file: a
//! 10,000-device file of 10.6 MB becomes ~125 MB of small maps, and building, probing and
//! deserializing them took ~2 s of the gateway's start. When the applications deserialize
//! whole into the schema, with no key it does not know, the probe would find nothing in them:
//! they are then read typed, straight from the text, and only the other (small) sections make
//! the tree. Anything else takes the full path, which reports what is wrong as before:
//! a syntax error, a mistyped or unknown key, a device naming a `template` (the loader
//! expands those from the tree), an `include` (its entries extend the lists), or an
//! environment variable that sets a key under `application` (its indexes need the tree).

use figment::value::{Dict, Value};
use serde::Deserialize;

use super::env::EnvSnapshot;
use super::include::INCLUDE_KEY;
use super::schema::ApplicationConfig;

#[derive(Deserialize)]
struct Split {
    #[serde(default, rename = "application")]
    applications: Vec<ApplicationConfig>,
    #[serde(flatten)]
    rest: Dict,
}

/// The file's applications, typed, and its other sections as a tree; `None` when the file
/// must take the full path (see the module comment).
pub(super) fn split(text: &str, env: &EnvSnapshot) -> Option<(Vec<ApplicationConfig>, Value)> {
    if env.overlay_var("application").is_some() {
        return None;
    }
    let deserializer = toml09::Deserializer::parse(text).ok()?;
    let mut unknown = false;
    let split: Split = serde_ignored::deserialize(deserializer, |_| unknown = true).ok()?;
    if unknown || split.rest.contains_key(INCLUDE_KEY) {
        return None;
    }
    Some((split.applications, Value::from(split.rest)))
}

#[cfg(test)]
mod tests {
    use super::super::load::{load_text_with, OnePass};
    use super::*;
    use std::path::Path;

    const HEADER: &str = "[chirpstack]\napi_token = \"t\"\n[opcua]\nhost_port = 4840\n";
    const DEVICE: &str = "[[application]]\napplication_name = \"a\"\napplication_id = \"1\"\n\
         [[application.device]]\ndevice_name = \"d\"\ndevice_id = \"0011\"\n\
         read_metric = [{metric_name = \"t\", chirpstack_metric_name = \"t\", metric_type = \"Float\"}]\n";

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_file_the_schema_reads_whole_is_split_into_typed_applications_and_the_rest() {
        let text = format!("{HEADER}{DEVICE}");
        let (applications, rest) = split(&text, &env(&[])).expect("the one-pass read");
        assert_eq!(applications.len(), 1);
        assert_eq!(applications[0].devices[0].metrics[0].metric_name, "t");
        let rest = rest.as_dict().expect("a table");
        let sections: Vec<&str> = rest.keys().map(String::as_str).collect();
        assert_eq!(sections, ["chirpstack", "opcua"]);
        // Secrets read raw from the environment and other sections' variables do not stop it.
        let other = env(&[
            ("OPCGW_OPCUA__HOST_PORT", "4841"),
            ("OPCGW_CHIRPSTACK__API_TOKEN", "x"),
        ]);
        assert!(split(&text, &other).is_some());
    }

    #[test]
    fn what_needs_the_tree_takes_the_full_path() {
        let full = |text: String, env: EnvSnapshot| assert!(split(&text, &env).is_none());
        // An unknown key, a mistyped value, a template, an include, a syntax error.
        full(format!("{HEADER}{DEVICE}colour = \"red\"\n"), env(&[]));
        full(
            format!("{HEADER}{DEVICE}").replace("\"0011\"", "11"),
            env(&[]),
        );
        full(format!("{HEADER}{DEVICE}template = \"sensor\"\n"), env(&[]));
        full(
            format!("include = [\"conf.d/*.toml\"]\n{HEADER}{DEVICE}"),
            env(&[]),
        );
        full(format!("{HEADER}{DEVICE}device_name = \n"), env(&[]));
        // The environment setting a key of an application.
        let named = env(&[("OPCGW_APPLICATION__0__APPLICATION_NAME", "b")]);
        full(format!("{HEADER}{DEVICE}"), named);
    }

    /// A fleet with every optional field of an application, a device, a metric and a command.
    fn fleet() -> String {
        let mut text = String::from(HEADER);
        text += "[[device_template]]\nname = \"unused\"\n";
        for a in 0..3 {
            text += &format!(
                "[[application]]\napplication_name = \"app {a}\"\napplication_id = \"{a}\"\n\
                 discover = {}\ntemplates = {{ \"profile-{a}\" = \"unused\" }}\n",
                a == 1
            );
            for d in 0..4 {
                text += &format!(
                    "[[application.device]]\ndevice_name = \"dev {a}.{d}\"\n\
                     device_id = \"{a:08x}{d:08x}\"\nstale_threshold_seconds = {}\n\
                     read_metric = [\n  {{ metric_name = \"t\", chirpstack_metric_name = \"object.t\", \
                     metric_type = \"Float\", metric_unit = \"°C\" }},\n  {{ metric_name = \"n\", \
                     chirpstack_metric_name = \"n\", metric_type = \"Int\" }},\n]\n\
                     [[application.device.command]]\ncommand_name = \"set\"\ncommand_id = {d}\n\
                     command_port = 10\ncommand_type = \"Float\"\ncommand_min = 0\ncommand_max = 99.5\n",
                    600 + d
                );
            }
        }
        text
    }

    #[test]
    fn the_one_pass_read_gives_what_the_tree_gives() {
        let env = env(&[("OPCGW_OPCUA__HOST_PORT", "4841")]);
        let mut texts = vec![fleet(), format!("{HEADER}{DEVICE}")];
        for file in ["config.example.toml", "config.toml", "demo.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(file);
            texts.push(std::fs::read_to_string(path).expect("a configuration of the repository"));
        }
        for text in texts {
            let read = |one_pass| {
                let loaded = load_text_with(Path::new("c.toml"), text.clone(), &env, one_pass);
                format!("{:?}", loaded.map(|l| (l.config, l.warnings)))
            };
            assert_eq!(read(OnePass::Allowed), read(OnePass::Never), "{text}");
        }
        assert!(
            split(&fleet(), &env).is_some(),
            "the fleet takes the one pass"
        );
    }
}
