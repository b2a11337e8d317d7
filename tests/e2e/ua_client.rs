//! A real OPC UA client (async-opcua) over TCP, for the OPC UA tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use ua::client::{ClientBuilder, DataChangeCallback, HistoryReadAction, IdentityToken, Session};
use ua::crypto::SecurityPolicy;
use ua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, ByteString,
    DataChangeFilter, DataChangeTrigger, DataValue, DateTime, DeadbandType, ExtensionObject,
    HistoryData, HistoryReadValueId, MessageSecurityMode, MonitoredItemCreateRequest,
    MonitoringMode, MonitoringParameters, NodeClassMask, NodeId, NumericRange, QualifiedName,
    ReadRawModifiedDetails, ReadValueId, ReferenceTypeId, StatusCode, TimestampsToReturn, Variant,
    WriteValue,
};

use crate::support::{client_pki, CLIENT_URI, SERVER_URI};

pub const USER: &str = "opcua-user";

/// The namespace URI of the gateway's nodes.
pub fn gateway_namespace() -> String {
    format!("{SERVER_URI}:gateway")
}

pub struct Ua {
    pub session: Arc<Session>,
    event_loop: JoinHandle<StatusCode>,
    pub ns: u16,
}

/// Connects with user name and password; `Err` carries why the server refused.
pub async fn connect(
    port: u16,
    policy: SecurityPolicy,
    mode: MessageSecurityMode,
    user: &str,
    password: &str,
) -> Result<Ua, StatusCode> {
    connect_as(
        port,
        policy,
        mode,
        IdentityToken::new_user_name(user, password),
    )
    .await
}

/// Connects with any identity (anonymous, user name...).
pub async fn connect_as(
    port: u16,
    policy: SecurityPolicy,
    mode: MessageSecurityMode,
    identity: IdentityToken,
) -> Result<Ua, StatusCode> {
    let mut client = ClientBuilder::new()
        .application_name("opcgw-test-client")
        .application_uri(CLIENT_URI)
        .product_uri(CLIENT_URI)
        .pki_dir(client_pki())
        .create_sample_keypair(false)
        .trust_server_certs(true)
        .session_retry_limit(0)
        .max_message_size(64 * 1024 * 1024)
        .max_chunk_count(2048)
        .max_array_length(200_000)
        .session_timeout(30_000)
        .client()
        .map_err(|_| StatusCode::BadConfigurationError)?;
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let (session, event_loop) = tokio::time::timeout(
        Duration::from_secs(20),
        client.connect_to_matching_endpoint((url.as_str(), policy.to_uri(), mode), identity),
    )
    .await
    .map_err(|_| StatusCode::BadTimeout)?
    .map_err(|e| e.status())?;
    let mut event_loop = event_loop.spawn();
    tokio::select! {
        _ = session.wait_for_connection() => {}
        ended = &mut event_loop => return Err(ended.unwrap_or(StatusCode::BadUnexpectedError)),
        _ = tokio::time::sleep(Duration::from_secs(20)) => {
            event_loop.abort();
            return Err(StatusCode::BadTimeout);
        }
    }
    let mut ua = Ua {
        session,
        event_loop,
        ns: 0,
    };
    ua.ns = ua.namespace_index(&gateway_namespace()).await;
    Ok(ua)
}

/// Connects on the None endpoint with the test credentials, retrying while the server starts.
pub async fn connect_none(port: u16, password: &str) -> Ua {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match connect(
            port,
            SecurityPolicy::None,
            MessageSecurityMode::None,
            USER,
            password,
        )
        .await
        {
            Ok(ua) => return ua,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot connect to the OPC UA server on port {port}: {e}"),
        }
    }
}

/// Values delivered to a subscription, in arrival order.
pub type Notifications = Arc<Mutex<Vec<(u32, DataValue)>>>;

pub fn history_action(
    start: DateTime,
    end: DateTime,
    num_values: u32,
    bounds: bool,
) -> HistoryReadAction {
    HistoryReadAction::ReadRawModifiedDetails(ReadRawModifiedDetails {
        is_read_modified: false,
        start_time: start,
        end_time: end,
        num_values_per_node: num_values,
        return_bounds: bounds,
    })
}

impl Ua {
    pub fn id(&self, id: &str) -> NodeId {
        NodeId::new(self.ns, id.to_string())
    }

    async fn namespace_index(&self, uri: &str) -> u16 {
        let array = self
            .read_node(
                &NodeId::from(ua::types::VariableId::Server_NamespaceArray),
                AttributeId::Value,
            )
            .await;
        match array.value {
            Some(Variant::Array(array)) => array
                .values
                .iter()
                .position(|v| matches!(v, Variant::String(s) if s.as_ref() == uri))
                .map(|i| i as u16)
                .unwrap_or_else(|| panic!("namespace {uri} not in the server's array")),
            other => panic!("unexpected NamespaceArray {other:?}"),
        }
    }

    pub async fn read_node(&self, id: &NodeId, attribute: AttributeId) -> DataValue {
        self.session
            .read(
                &[ReadValueId {
                    node_id: id.clone(),
                    attribute_id: attribute as u32,
                    ..Default::default()
                }],
                TimestampsToReturn::Both,
                0.0,
            )
            .await
            .expect("read")
            .remove(0)
    }

    pub async fn read(&self, id: &str) -> DataValue {
        self.read_node(&self.id(id), AttributeId::Value).await
    }

    /// Hierarchical children of a node: (browse name, NodeId).
    pub async fn children(&self, node: &NodeId) -> Vec<(String, NodeId)> {
        let result = self
            .session
            .browse(
                &[BrowseDescription {
                    node_id: node.clone(),
                    browse_direction: BrowseDirection::Forward,
                    reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                    include_subtypes: true,
                    node_class_mask: NodeClassMask::all().bits(),
                    result_mask: BrowseResultMask::All as u32,
                }],
                1000,
                None,
            )
            .await
            .expect("browse");
        result[0]
            .references
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.browse_name.name.as_ref().to_string(), r.node_id.node_id))
            .collect()
    }

    /// One HistoryRead call for one node: (status, values, continuation point).
    pub async fn history(
        &self,
        id: &NodeId,
        action: &HistoryReadAction,
        continuation: ByteString,
    ) -> (StatusCode, Vec<DataValue>, ByteString) {
        let mut results = self
            .session
            .history_read(
                action.clone(),
                TimestampsToReturn::Both,
                false,
                &[HistoryReadValueId {
                    node_id: id.clone(),
                    index_range: NumericRange::None,
                    data_encoding: QualifiedName::null(),
                    continuation_point: continuation,
                }],
            )
            .await
            .expect("history_read service");
        let result = results.remove(0);
        let values = result
            .history_data
            .into_inner_as::<HistoryData>()
            .and_then(|d| d.data_values)
            .unwrap_or_default();
        (result.status_code, values, result.continuation_point)
    }

    /// One HistoryRead call for several nodes: per node (status, rows, has a continuation
    /// point), or the service fault.
    pub async fn history_many(
        &self,
        ids: &[NodeId],
        action: &HistoryReadAction,
    ) -> Result<Vec<(StatusCode, usize, bool)>, StatusCode> {
        let to_read: Vec<HistoryReadValueId> = ids
            .iter()
            .map(|id| HistoryReadValueId {
                node_id: id.clone(),
                index_range: NumericRange::None,
                data_encoding: QualifiedName::null(),
                continuation_point: ByteString::null(),
            })
            .collect();
        let results = self
            .session
            .history_read(action.clone(), TimestampsToReturn::Both, false, &to_read)
            .await
            .map_err(|e| e.status())?;
        Ok(results
            .into_iter()
            .map(|r| {
                let rows = r
                    .history_data
                    .into_inner_as::<HistoryData>()
                    .and_then(|d| d.data_values)
                    .map_or(0, |v| v.len());
                (
                    r.status_code,
                    rows,
                    !r.continuation_point.is_null_or_empty(),
                )
            })
            .collect())
    }

    pub async fn write(&self, id: &NodeId, value: Variant) -> StatusCode {
        self.session
            .write(&[WriteValue {
                node_id: id.clone(),
                attribute_id: AttributeId::Value as u32,
                index_range: NumericRange::None,
                value: DataValue::value_only(value),
            }])
            .await
            .expect("write service")
            .remove(0)
    }

    /// A subscription publishing every 100 ms.
    async fn new_subscription(
        &self,
        callback: impl ua::client::OnSubscriptionNotificationCore + 'static,
    ) -> Result<u32, StatusCode> {
        self.session
            .create_subscription(Duration::from_millis(100), 100, 10, 0, 0, true, callback)
            .await
            .map_err(|e| e.status())
    }

    /// One value item per node, sampled on every change, with the given filter.
    fn value_items(
        ids: &[NodeId],
        filter: ExtensionObject,
        sampling_interval: f64,
    ) -> Vec<MonitoredItemCreateRequest> {
        ids.iter()
            .map(|id| MonitoredItemCreateRequest {
                item_to_monitor: ReadValueId {
                    node_id: id.clone(),
                    attribute_id: AttributeId::Value as u32,
                    ..Default::default()
                },
                monitoring_mode: MonitoringMode::Reporting,
                requested_parameters: MonitoringParameters {
                    sampling_interval,
                    filter: filter.clone(),
                    queue_size: 100,
                    discard_oldest: true,
                    ..Default::default()
                },
            })
            .collect()
    }

    /// Subscribes to the values of `ids`, with a StatusValue DataChangeFilter or without any
    /// filter. Notifications carry the client's item handle.
    pub async fn subscribe(&self, ids: &[NodeId], status_value_filter: bool) -> Notifications {
        self.subscribe_sampled(ids, status_value_filter, 0.0).await
    }

    /// [`Ua::subscribe`] asking for a sampling interval (ms; -1 = the publishing interval).
    pub async fn subscribe_sampled(
        &self,
        ids: &[NodeId],
        status_value_filter: bool,
        sampling_interval: f64,
    ) -> Notifications {
        let log: Notifications = Arc::default();
        let sink = log.clone();
        let filter = if status_value_filter {
            ExtensionObject::from_message(DataChangeFilter {
                trigger: DataChangeTrigger::StatusValue,
                deadband_type: DeadbandType::None as u32,
                deadband_value: 0.0,
            })
        } else {
            ExtensionObject::null()
        };
        let callback = DataChangeCallback::new(move |value, item| {
            sink.lock().unwrap().push((item.client_handle(), value));
        });
        let results = self
            .try_items(ids, filter, callback, sampling_interval)
            .await
            .expect("subscribe");
        for status in &results {
            assert!(status.is_good(), "monitored item: {status}");
        }
        log
    }

    /// Creates a subscription with a filter-less item per node: the per-item results, or why
    /// the subscription itself was refused.
    pub async fn try_subscribe(&self, ids: &[NodeId]) -> Result<Vec<StatusCode>, StatusCode> {
        let callback = DataChangeCallback::new(|_, _| {});
        self.try_items(ids, ExtensionObject::null(), callback, 0.0)
            .await
    }

    async fn try_items(
        &self,
        ids: &[NodeId],
        filter: ExtensionObject,
        callback: DataChangeCallback,
        sampling_interval: f64,
    ) -> Result<Vec<StatusCode>, StatusCode> {
        let subscription = self.new_subscription(callback).await?;
        let results = self
            .session
            .create_monitored_items(
                subscription,
                TimestampsToReturn::Both,
                Self::value_items(ids, filter, sampling_interval),
            )
            .await
            .map_err(|e| e.status())?;
        Ok(results.iter().map(|r| r.result.status_code).collect())
    }

    /// Subscribes to the Server object's events; each event's EventType is recorded.
    pub async fn subscribe_server_events(&self) -> Arc<Mutex<Vec<Variant>>> {
        use ua::client::EventCallback;
        use ua::types::{
            ContentFilter, EventFilter, ObjectId, ObjectTypeId, SimpleAttributeOperand,
        };
        let events: Arc<Mutex<Vec<Variant>>> = Arc::default();
        let sink = events.clone();
        let subscription = self
            .new_subscription(EventCallback::new(move |fields, _| {
                if let Some(event_type) = fields.and_then(|f| f.into_iter().next()) {
                    sink.lock().unwrap().push(event_type);
                }
            }))
            .await
            .expect("event subscription");
        let filter = EventFilter {
            select_clauses: Some(vec![SimpleAttributeOperand {
                type_definition_id: ObjectTypeId::BaseEventType.into(),
                browse_path: Some(vec![QualifiedName::new(0, "EventType")]),
                attribute_id: AttributeId::Value as u32,
                index_range: NumericRange::None,
            }]),
            where_clause: ContentFilter { elements: None },
        };
        let results = self
            .session
            .create_monitored_items(
                subscription,
                TimestampsToReturn::Both,
                vec![MonitoredItemCreateRequest {
                    item_to_monitor: ReadValueId {
                        node_id: ObjectId::Server.into(),
                        attribute_id: AttributeId::EventNotifier as u32,
                        ..Default::default()
                    },
                    monitoring_mode: MonitoringMode::Reporting,
                    requested_parameters: MonitoringParameters {
                        sampling_interval: 0.0,
                        filter: ExtensionObject::from_message(filter),
                        queue_size: 10,
                        discard_oldest: true,
                        ..Default::default()
                    },
                }],
            )
            .await
            .expect("event item");
        assert!(results[0].result.status_code.is_good());
        events
    }

    /// Vanishes without closing the session, as a client whose network or process died: no
    /// more publish requests, no CloseSession.
    pub fn abandon(self) {
        self.event_loop.abort();
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(3), self.session.disconnect()).await;
        self.event_loop.abort();
    }
}

/// Waits until `check` holds for the notifications received so far.
pub async fn wait_for(
    log: &Notifications,
    timeout: Duration,
    what: &str,
    check: impl Fn(&[(u32, DataValue)]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check(&log.lock().unwrap()) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let seen: Vec<String> = log
                .lock()
                .unwrap()
                .iter()
                .map(|(h, dv)| format!("{h}: {:?} {}", dv.value, dv.status()))
                .collect();
            panic!("timed out waiting for {what}; notifications: {seen:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's endpoint descriptions (GetEndpoints without a session).
pub async fn endpoints(port: u16) -> Vec<ua::types::EndpointDescription> {
    let client = ClientBuilder::new()
        .application_name("opcgw-test-client")
        .application_uri(CLIENT_URI)
        .pki_dir(client_pki())
        .trust_server_certs(true)
        .client()
        .expect("client");
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    client
        .get_server_endpoints_from_url(url.as_str())
        .await
        .expect("GetEndpoints")
}
