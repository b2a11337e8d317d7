//! Command writes: a Write to a command variable is checked strictly (type, range), queued
//! durably through the backend and only then answered Good; the variable and its `Status`
//! child show what happened.

use tracing::{debug, info, warn};
use ua::server::node_manager::{RequestContext, WriteNode};
use ua::types::{AttributeId, DataValue, DateTime, NodeId, NumericRange, StatusCode, Variant};

use super::handle::store_and_notify;
use super::{variant_of, GatewayNodes, Model};
use crate::commands::{self, CommandRejection, NewCommand};
use crate::model::{MetricType, Value};
use crate::naming;
use crate::security::sanitize_for_log;
use crate::storage::CommandRecord;

/// A written Variant as a command value of `command_type`, strictly (no lossy conversion).
fn command_value(command_type: MetricType, variant: &Variant) -> Option<Value> {
    match (command_type, variant) {
        (MetricType::Float, Variant::Double(v)) => Some(Value::Float(*v)),
        (MetricType::Float, Variant::Float(v)) => Some(Value::Float(f64::from(*v))),
        (MetricType::Int, Variant::SByte(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Byte(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Int16(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::UInt16(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Int32(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::UInt32(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Int64(v)) => Some(Value::Int(*v)),
        (MetricType::Int, Variant::UInt64(v)) => i64::try_from(*v).ok().map(Value::Int),
        (MetricType::Bool, Variant::Boolean(v)) => Some(Value::Bool(*v)),
        (MetricType::String, Variant::String(v)) => Some(Value::String(v.as_ref().to_string())),
        _ => None,
    }
}

/// The answer to a write whose command was refused.
fn status_of_rejection(rejection: &CommandRejection) -> StatusCode {
    match rejection {
        CommandRejection::UnknownDevice { .. } | CommandRejection::UnknownCommand { .. } => {
            StatusCode::BadNodeIdUnknown
        }
        CommandRejection::TypeMismatch { .. } => StatusCode::BadTypeMismatch,
        CommandRejection::NotFinite
        | CommandRejection::OutOfRange { .. }
        | CommandRejection::PayloadTooLarge { .. }
        | CommandRejection::EmptyString => StatusCode::BadOutOfRange,
    }
}

impl GatewayNodes {
    /// The body of the node manager's `write`.
    pub(super) async fn write_commands(
        &self,
        context: &RequestContext,
        nodes_to_write: &mut [&mut WriteNode],
    ) {
        let user = context.user_token().0.clone();
        // Validate everything first, without holding any lock across an await.
        let mut pending: Vec<(usize, NodeId, Variant, NewCommand)> = Vec::new();
        {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            // Each command write queues a downlink; a request naming more command variables
            // than allowed queues none of them. Part 4 §5.10.4 makes BadTooManyOperations the
            // answer to a request with too many operations; as this node manager only sees its
            // own nodes, each command write of the request gets it (other nodes are unaffected).
            let command_writes = nodes_to_write
                .iter()
                .filter(|write| self.names_command(&model, write))
                .count();
            let limit = self.settings.max_command_writes_per_request;
            let too_many = command_writes > limit;
            if too_many {
                warn!(
                    event = "opcua_command_write_refused",
                    user = %sanitize_for_log(&user, 64),
                    command_writes,
                    limit,
                    "an OPC UA Write names more command variables than max_command_writes_per_request; none is queued"
                );
            }
            for (index, write) in nodes_to_write.iter_mut().enumerate() {
                if too_many && self.names_command(&model, write) {
                    write.set_status(StatusCode::BadTooManyOperations);
                    continue;
                }
                match self.validate_write(&model, write, &user) {
                    Ok((node, variant, command)) => pending.push((index, node, variant, command)),
                    Err(status) => write.set_status(status),
                }
            }
        }
        for (index, node, variant, command) in pending {
            let downlink = &command.downlink;
            let label = naming::command_node_id(&downlink.device_id, &downlink.command_name);
            let result = tokio::time::timeout(
                self.settings.write_timeout,
                self.backend.enqueue_command(command),
            )
            .await;
            let status = match result {
                Ok(Ok(record)) => {
                    info!(
                        event = "opcua_command_written",
                        user = %sanitize_for_log(&user, 64),
                        command = %label,
                        id = record.id,
                        "command queued from an OPC UA write"
                    );
                    self.publish_command_written(&node, variant, &record);
                    StatusCode::Good
                }
                Ok(Err(error)) => {
                    warn!(event = "opcua_command_rejected", command = %label, error = ?error, "an OPC UA write could not be queued");
                    error.status_code()
                }
                Err(_) => {
                    warn!(event = "opcua_command_rejected", command = %label, error = "storage did not answer in time", "an OPC UA write could not be queued");
                    StatusCode::BadTimeout
                }
            };
            if let Some(write) = nodes_to_write.get_mut(index) {
                write.set_status(status);
            }
        }
    }
}

impl GatewayNodes {
    /// Whether `write` targets a command variable (whatever it writes).
    fn names_command(&self, model: &Model, write: &WriteNode) -> bool {
        self.string_id(&write.value().node_id)
            .is_some_and(|id| model.commands.contains_key(id))
    }

    fn validate_write(
        &self,
        model: &Model,
        write: &WriteNode,
        user: &str,
    ) -> Result<(NodeId, Variant, NewCommand), StatusCode> {
        let request = write.value();
        let Some(id) = self.string_id(&request.node_id) else {
            return Err(StatusCode::BadNodeIdUnknown);
        };
        let Some((device_id, command)) = model.commands.get(id) else {
            return Err(
                if self.served.read().get(id).is_some() || naming::is_reserved(id) {
                    StatusCode::BadNotWritable
                } else {
                    StatusCode::BadNodeIdUnknown
                },
            );
        };
        if request.attribute_id != AttributeId::Value {
            return Err(StatusCode::BadNotWritable);
        }
        if !matches!(request.index_range, NumericRange::None) {
            return Err(StatusCode::BadWriteNotSupported);
        }
        let Some(variant) = request.value.value.as_ref() else {
            return Err(StatusCode::BadTypeMismatch);
        };
        let Some(value) = command_value(command.command_type, variant) else {
            return Err(StatusCode::BadTypeMismatch);
        };
        let new = commands::prepare(
            &model.config,
            device_id,
            &command.command_name,
            &value,
            format!("opcua:{}", sanitize_for_log(user, 64)),
        )
        .map_err(|rejection| {
            debug!(event = "opcua_command_invalid", command = %id, error = %rejection);
            status_of_rejection(&rejection)
        })?;
        Ok((request.node_id.clone(), variant_of(&value), new))
    }

    /// The written value becomes the variable's value; its `Status` child says "queued".
    fn publish_command_written(&self, node: &NodeId, value: Variant, record: &CommandRecord) {
        let Some(id) = self.string_id(node) else {
            return;
        };
        let now = DateTime::now();
        let status_id = naming::command_status_node_id(
            &record.downlink.device_id,
            &record.downlink.command_name,
        );
        store_and_notify(
            self,
            [
                (id.to_string(), DataValue::new_at(value, now)),
                (
                    status_id,
                    DataValue::new_at(
                        command_status_text(record.id, record.state.as_str(), None),
                        now,
                    ),
                ),
            ],
        );
    }
}

/// The text of a command's `Status` variable.
pub fn command_status_text(id: u64, state: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => format!("#{id} {state}: {detail}"),
        _ => format!("#{id} {state}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_values_are_taken_strictly_by_command_type() {
        use MetricType::*;
        assert_eq!(
            command_value(Int, &Variant::Int32(-3)),
            Some(Value::Int(-3))
        );
        assert_eq!(command_value(Int, &Variant::UInt64(7)), Some(Value::Int(7)));
        assert_eq!(command_value(Int, &Variant::UInt64(u64::MAX)), None);
        assert_eq!(command_value(Int, &Variant::Double(1.0)), None);
        assert_eq!(command_value(Int, &Variant::from("1")), None);
        assert_eq!(
            command_value(Float, &Variant::Float(1.5)),
            Some(Value::Float(1.5))
        );
        assert_eq!(command_value(Float, &Variant::Int64(1)), None);
        assert_eq!(
            command_value(Bool, &Variant::Boolean(true)),
            Some(Value::Bool(true))
        );
        assert_eq!(command_value(Bool, &Variant::Int64(1)), None);
        assert_eq!(
            command_value(String, &Variant::from("on")),
            Some(Value::String("on".into()))
        );
        assert_eq!(command_value(String, &Variant::Empty), None);
    }

    #[test]
    fn refused_commands_answer_with_the_status_of_their_reason() {
        let rows = [
            (
                CommandRejection::UnknownDevice {
                    device_id: "d".into(),
                },
                StatusCode::BadNodeIdUnknown,
            ),
            (
                CommandRejection::UnknownCommand {
                    device_id: "d".into(),
                    command_name: "c".into(),
                },
                StatusCode::BadNodeIdUnknown,
            ),
            (
                CommandRejection::TypeMismatch {
                    command_name: "c".into(),
                    expected: MetricType::Int,
                    detail: "got Float".into(),
                },
                StatusCode::BadTypeMismatch,
            ),
            (CommandRejection::NotFinite, StatusCode::BadOutOfRange),
            (
                CommandRejection::OutOfRange {
                    command_name: "c".into(),
                    value: 11.0,
                    min: None,
                    max: Some(10.0),
                },
                StatusCode::BadOutOfRange,
            ),
            (
                CommandRejection::PayloadTooLarge { bytes: 300 },
                StatusCode::BadOutOfRange,
            ),
            (CommandRejection::EmptyString, StatusCode::BadOutOfRange),
        ];
        for (rejection, status) in rows {
            assert_eq!(status_of_rejection(&rejection), status, "{rejection:?}");
        }
    }
}
