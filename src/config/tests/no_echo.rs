//! No configuration error quotes a secret; every type error reported; weak and non-finite values refused.

use super::*;

#[test]
fn no_config_error_quotes_a_secret_value() {
    const SECRET: &str = "Zx9-leaky-secret-value-41";
    let token_line = "api_token = \"test-token-4c8e1f9a\"";
    let password_line = "user_password = \"test-password\"";
    // (broken config, key named, text on the line named)
    let cases: Vec<(String, &str, &str)> = vec![
        // A missing closing quote: the parser's own error quotes the line.
        (
            BASE.replace(token_line, &format!("api_token = \"{SECRET}")),
            "chirpstack.api_token",
            "api_token",
        ),
        (
            BASE.replace(password_line, &format!("user_password = '{SECRET}")),
            "opcua.user_password",
            "user_password",
        ),
        // No quotes at all.
        (
            BASE.replace(password_line, &format!("user_password = {SECRET}")),
            "opcua.user_password",
            "user_password",
        ),
        // A number (or an array) where the string belongs: serde prints the value.
        (
            BASE.replace(token_line, "api_token = 12345678901234"),
            "chirpstack.api_token",
            "api_token",
        ),
        (
            BASE.replace(password_line, &format!("user_password = [\"{SECRET}\"]")),
            "opcua.user_password",
            "user_password",
        ),
        (
            format!("{BASE}\n[control]\ntoken = 98765432109876543\n"),
            "control.token",
            "token = 98765432109876543",
        ),
        // A misspelled secret key is unknown: named, never with its value.
        (
            BASE.replace(password_line, &format!("user_pasword = \"{SECRET}\"")),
            "opcua.user_pasword",
            "user_pasword",
        ),
        // The secret pasted under a non-secret key of another type.
        (
            BASE.replace("[opcua]", &format!("[opcua]\nhost_port = \"{SECRET}\"")),
            "opcua.host_port",
            "host_port",
        ),
    ];
    for (toml, key, needle) in &cases {
        let text = error_text(toml, &[]);
        for leak in [SECRET, "12345678901234", "98765432109876543", "leaky"] {
            assert!(!text.contains(leak), "leaked {leak}:\n{text}");
        }
        let line = line_of(toml, needle);
        assert!(
            text.contains(&format!("- {key}: ")) && text.contains(&line),
            "{key} at {line} not named:\n{text}"
        );
    }
    // From the environment: the variable is named, its value is not.
    let text = error_text(BASE, &[("OPCGW_OPCUA__HOST_PORT", SECRET)]);
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("opcua.host_port") && text.contains("OPCGW_OPCUA__HOST_PORT"),
        "{text}"
    );
}

#[test]
fn every_type_error_of_the_file_is_reported_in_one_run_with_its_line() {
    let toml = BASE
        .replace(
            "[opcua]",
            "[opcua]\nhost_port = \"x\"\nallow_anonymous = \"no\"\nmax_connections = [1]",
        )
        .replace("[chirpstack]", "[chirpstack]\nretry = false")
        .replace("command_id = 1\n", "command_id = \"one\"\n");
    let found = problems(load_with(&toml, &[]));
    let expected = [
        ("chirpstack.retry", "retry ="),
        ("opcua.host_port", "host_port ="),
        ("opcua.allow_anonymous", "allow_anonymous ="),
        ("opcua.max_connections", "max_connections ="),
        (
            "application[0].device[0].command[0].command_id",
            "command_id =",
        ),
    ];
    for (key, needle) in expected {
        let problem = found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{key} not reported: {found:#?}"));
        assert!(
            problem.message.starts_with("invalid type")
                && problem.message.contains(&line_of(&toml, needle)),
            "{problem}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn weak_secrets_are_refused_from_toml_env_and_file_without_echo() {
    let weak = [
        "changeme",
        "Password123!",
        "admin",
        "opcua-user",
        "aaaaaaaaaaaaaaaa",
        "123456789012",
        "short-1a",
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    for value in weak {
        // TOML.
        let toml = BASE.replace(
            "user_password = \"test-password\"",
            &format!("user_password = \"{value}\""),
        );
        let found = problems(load_with(&toml, &[]));
        let problem = found
            .iter()
            .find(|p| p.key == "opcua.user_password")
            .unwrap_or_else(|| panic!("{value} accepted: {found:#?}"));
        assert!(
            problem.message.contains("OPCGW_OPCUA__USER_PASSWORD")
                && problem.message.contains("at least 12 characters")
                && !problem.message.contains(value),
            "{problem}"
        );
        // Environment.
        let found = problems(load_with(BASE, &[("OPCGW_CHIRPSTACK__API_TOKEN", value)]));
        let problem = found
            .iter()
            .find(|p| p.key == "chirpstack.api_token")
            .unwrap_or_else(|| panic!("{value} accepted from env: {found:#?}"));
        assert!(
            problem.message.contains("OPCGW_CHIRPSTACK__API_TOKEN")
                && !problem.message.contains(value),
            "{problem}"
        );
        // File.
        std::fs::write(&file, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let toml = BASE.replace(
            "api_token = \"test-token-4c8e1f9a\"",
            &format!("api_token_file = \"{}\"", file.display()),
        );
        let found = problems(load_with(&toml, &[]));
        assert!(
            found.iter().any(|p| p.key == "chirpstack.api_token"),
            "{value} accepted from a file: {found:#?}"
        );
    }
    // The password equal to the user name, whatever the user name.
    let toml = BASE.replace(
        "user_password = \"test-password\"",
        "user_name = \"plant-operator\"\nuser_password = \"Plant-Operator\"",
    );
    let found = problems(load_with(&toml, &[]));
    assert!(
        found
            .iter()
            .any(|p| p.key == "opcua.user_password" && p.message.contains("user name")),
        "{found:#?}"
    );
    // The control token: the control socket's own floor of 16 characters, and no weak value.
    for value in ["6f1e2d3c4b5a69", "changemechangeme", "0000000000000000"] {
        let found = problems(load_with(BASE, &[("OPCGW_CONTROL__TOKEN", value)]));
        let problem = found
            .iter()
            .find(|p| p.key == "control.token")
            .unwrap_or_else(|| panic!("control token {value} accepted: {found:#?}"));
        assert!(
            problem.message.contains("OPCGW_CONTROL__TOKEN") && !problem.message.contains(value),
            "{problem}"
        );
    }
    load_with(BASE, &[("OPCGW_CONTROL__TOKEN", "6f1e2d3c4b5a6978")]).unwrap();
}

#[test]
fn non_finite_floats_are_refused_with_their_key() {
    for (line, key) in [
        ("command_min = nan", "command_min"),
        ("command_max = inf", "command_max"),
        ("command_min = -inf", "command_min"),
        ("command_max = -nan", "command_max"),
    ] {
        let toml = BASE.replace(
            "command_port = 10",
            &format!("command_port = 10\n    command_type = \"Float\"\n    {line}"),
        );
        let found = problems(load_with(&toml, &[]));
        let key = format!("application[0].device[0].command[0].{key}");
        assert!(
            found
                .iter()
                .any(|p| p.key == key && p.message.contains("finite")),
            "{line}: {found:#?}"
        );
    }
    let toml = BASE.replace(
        "command_port = 10",
        "command_port = 10\n    command_type = \"Float\"\n    command_min = -1.5e3\n    command_max = 2.5",
    );
    load_with(&toml, &[]).unwrap();
}

#[test]
fn a_credential_in_the_server_address_is_never_echoed() {
    for address in [
        "http://admin:Hunter2-pass@chirpstack:99999",
        "ftp://admin:Hunter2-pass@chirpstack:8080",
        "admin:Hunter2-pass@chirpstack:8080",
    ] {
        let toml = BASE.replace(
            "server_address = \"http://127.0.0.1:8080\"",
            &format!("server_address = \"{address}\""),
        );
        let text = error_text(&toml, &[]);
        assert!(text.contains("chirpstack.server_address"), "{text}");
        assert!(!text.contains("Hunter2"), "{text}");
    }
}
