//! Background tasks owned by an actor's state: aborted when the state is dropped, whether the
//! actor stopped cleanly or panicked, so no task outlives its owner.

use tokio::task::JoinHandle;

pub struct OwnedTask(JoinHandle<()>);

impl OwnedTask {
    pub fn spawn<F>(future: F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        Self(tokio::spawn(future))
    }

    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
