//! Commands on their way to ChirpStack: the book of requests and the enqueue calls in flight.

use opcgw::chirpstack::client::ChirpstackClient;
use opcgw::chirpstack::commands::CommandBook;
use opcgw::chirpstack::upstream::UpstreamState;
use ractor::ActorRef;

use crate::tree::messages::PollerMsg;
use crate::tree::task::OwnedTask;

pub struct CommandDispatch {
    pub book: CommandBook,
    client: ChirpstackClient,
    /// Enqueue calls in flight; each reports back with `PollerMsg::CommandEnqueued`.
    enqueues: Vec<OwnedTask>,
}

impl CommandDispatch {
    pub fn new(client: ChirpstackClient) -> Self {
        Self {
            book: CommandBook::default(),
            client,
            enqueues: Vec::new(),
        }
    }

    /// Starts the enqueue of every due command, but only while ChirpStack may answer: a
    /// command sent into an outage would only fail and count as an attempt.
    pub fn dispatch_due(&mut self, upstream: UpstreamState, poller: &ActorRef<PollerMsg>) {
        if !matches!(
            upstream,
            UpstreamState::Connected | UpstreamState::Degraded | UpstreamState::Starting
        ) {
            return;
        }
        for request in self.book.take_due() {
            let (client, poller) = (self.client.clone(), poller.clone());
            self.enqueues.push(OwnedTask::spawn(async move {
                let result = client
                    .enqueue(
                        &request.downlink.device_id,
                        request.downlink.f_port,
                        request.downlink.confirmed,
                        request.downlink.payload,
                    )
                    .await;
                let _ = poller.cast(PollerMsg::CommandEnqueued {
                    id: request.id,
                    result,
                });
            }));
        }
    }

    /// Forgets the enqueue tasks that have finished.
    pub fn reap(&mut self) {
        self.enqueues.retain(|t| !t.is_finished());
    }
}
