//! Whether another gateway already serves a control socket path: checked by `opcgw run`
//! before it touches anything, and by the control actor before it replaces a stale socket.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Another process answers on the control socket path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("another opcgw is running: its control socket {} answers; stop it first or give this instance its own [control].socket_path", path.display())]
pub struct ControlSocketInUse {
    pub path: PathBuf,
}

/// Fails when something accepts connections at `path`; a missing path, or a socket file left
/// behind by a crash (nothing answers), is free.
pub fn check_socket_not_in_use(path: &Path) -> Result<(), ControlSocketInUse> {
    match UnixStream::connect(path) {
        Ok(_) => Err(ControlSocketInUse {
            path: path.to_path_buf(),
        }),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_in_use_and_a_stale_one_is_free() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("control.sock");
        assert_eq!(check_socket_not_in_use(&path), Ok(()), "missing");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind a test socket");
        let error = check_socket_not_in_use(&path).expect_err("a listener answers");
        assert!(
            error.to_string().contains("another opcgw is running")
                && error.to_string().contains("control.sock"),
            "{error}"
        );
        drop(listener);
        assert_eq!(check_socket_not_in_use(&path), Ok(()), "stale file");
    }
}
