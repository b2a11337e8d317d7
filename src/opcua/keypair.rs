//! The OPC UA server key pair check: run by `opcgw run` before it starts anything (so a
//! missing key refuses the start with exit 1) and by every start of the OPC UA server.

use crate::config::AppConfig;
use crate::opcua::server::OpcUaStartError;
use crate::security::check_private_key;

/// Whether the key pair is usable as it is: `Ok(true)` when both files exist (and the key is
/// owner-only), `Ok(false)` when they are missing and `create_sample_keypair` allows the
/// server to generate them, an error otherwise.
pub fn check_keypair(config: &AppConfig) -> Result<bool, OpcUaStartError> {
    let ua = &config.opcua;
    let private_key = ua.pki_dir.join(&ua.private_key_path);
    let certificate = ua.pki_dir.join(&ua.certificate_path);
    check_private_key(&private_key)?;
    let present = private_key.exists() && certificate.exists();
    if !present && !ua.create_sample_keypair {
        return Err(OpcUaStartError::NoKeypair {
            certificate,
            private_key,
        });
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_pair_names_both_files_and_the_development_switch() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = AppConfig::default();
        config.opcua.pki_dir = dir.path().to_path_buf();
        config.opcua.create_sample_keypair = false;
        let error = check_keypair(&config).expect_err("no key pair").to_string();
        for part in [
            config.opcua.certificate_path.to_string_lossy().into_owned(),
            config.opcua.private_key_path.to_string_lossy().into_owned(),
            "[opcua].create_sample_keypair = true".to_string(),
            "docs/opcua.md".to_string(),
        ] {
            assert!(error.contains(&part), "{part:?} in {error}");
        }
        config.opcua.create_sample_keypair = true;
        assert!(
            matches!(check_keypair(&config), Ok(false)),
            "to be generated"
        );
    }
}
