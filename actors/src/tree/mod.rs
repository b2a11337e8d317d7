//! The supervision tree: how actors are started, restarted, stopped and connected, without
//! knowing what any of them does. The root supervisor and its restart policy, the child
//! specification, the tree of the gateway's children in start order, the typed messages and
//! peer references between actors, the storage client with its timeouts, the part every duty
//! shares and task ownership belong here; an actor's own work does not (see `duties`).

pub mod backoff;
pub mod child;
pub mod duty;
pub mod gateway;
pub mod messages;
pub mod peers;
pub mod storage_client;
pub mod supervisor;
pub mod task;
