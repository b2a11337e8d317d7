//! opcgw patch: pause accepting after a resource error instead of retrying in a hot loop.
//!
//! When the process runs out of file descriptors, `accept()` fails at once, again and again,
//! while the pending connection stays in the backlog: the published loop spun a core and
//! logged "Too many open files" hundreds of thousands of times in seconds.

use std::{io, time::Duration};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Exponential pause between accept attempts after resource errors.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    pause: Option<Duration>,
}

impl AcceptBackoff {
    /// The pause before the next `accept()` after `error`: doubling from 10 ms up to 1 s for
    /// a shortage of descriptors or memory; none for an error of one connection (e.g. a peer
    /// that reset before it was accepted).
    pub(crate) fn failed(&mut self, error: &io::Error) -> Option<Duration> {
        if !is_resource_shortage(error) {
            return None;
        }
        let pause = match self.pause {
            None => FIRST_PAUSE,
            Some(previous) => (previous * 2).min(LONGEST_PAUSE),
        };
        self.pause = Some(pause);
        Some(pause)
    }

    pub(crate) fn succeeded(&mut self) {
        self.pause = None;
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or the system lacks resources; retrying at
/// once cannot succeed.
fn is_resource_shortage(error: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    ) || error.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_backs_off_exponentially_up_to_a_second() {
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..10).filter_map(|_| backoff.failed(&emfile)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(*pauses.last().unwrap(), Duration::from_secs(1));
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile), Some(Duration::from_millis(10)));
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.failed(&aborted), None);
    }
}
