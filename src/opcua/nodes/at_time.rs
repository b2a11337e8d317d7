//! HistoryRead at given instants (`ReadAtTimeDetails`, OPC UA Part 11 §6.5.5): one value per
//! requested time, in the order asked.
//!
//! - A stored value at that very time is returned as it is (HistorianBits Raw; Calculated for
//!   a value read from ChirpStack's aggregates).
//! - Otherwise it is interpolated from the bounding values (Part 13 §3.1.8/§3.1.9): the
//!   nearest stored values before and after. Float is interpolated on a straight line
//!   (SlopedInterpolation); Int (counters, levels in steps), Bool and String hold the value
//!   before (SteppedInterpolation). Status Good, HistorianBits Interpolated.
//! - After the last stored value the value before is held (SteppedExtrapolation, the server's
//!   `UseSlopedExtrapolation` being false): Uncertain_DataSubNormal, Interpolated.
//! - Before the first stored value: Bad_NoData.
//!
//! Every stored value is a Good device value, so Simple Bounding Values (`useSimpleBounds`
//! true) and Interpolated Bounding Values (which skip Bad values) find the same bounds: both
//! flags answer alike. A request may name at most `max_history_data_results_per_node` times
//! per node (more: BadTooManyOperations for that node).

use std::time::Duration;

use ua::server::node_manager::HistoryNode;
use ua::types::{
    DataValue, HistoryData, NodeId, ReadAtTimeDetails, StatusCode, StatusCodeInfoType,
    StatusCodeValueType, TimestampsToReturn,
};

use super::history::{history_value, TIME_MAX, TIME_MIN};
use super::{gateway_time, ua_time, variant_of, GatewayNodes};
use crate::model::{Timestamp, Value};
use crate::storage::{HistoryQuery, HistoryRow};

impl GatewayNodes {
    /// The body of the node manager's `history_read_at_time`.
    pub(super) async fn read_at_time(
        &self,
        details: &ReadAtTimeDetails,
        nodes: &mut [&mut &mut HistoryNode],
        timestamps: TimestampsToReturn,
    ) {
        for node in nodes.iter_mut() {
            let status = self.at_time_node(details, node, timestamps).await;
            node.set_status(status);
        }
    }

    async fn at_time_node(
        &self,
        details: &ReadAtTimeDetails,
        node: &mut HistoryNode,
        timestamps: TimestampsToReturn,
    ) -> StatusCode {
        match timestamps {
            // Only device (source) times are stored.
            TimestampsToReturn::Server => return StatusCode::BadTimestampNotSupported,
            TimestampsToReturn::Neither | TimestampsToReturn::Invalid => {
                return StatusCode::BadTimestampsToReturnInvalid
            }
            _ => {}
        }
        let times = details.req_times.as_deref().unwrap_or_default();
        if times.is_empty() {
            return StatusCode::BadHistoryOperationInvalid;
        }
        let cap = self.history_page.load(std::sync::atomic::Ordering::Relaxed);
        if times.len() > cap {
            return StatusCode::BadTooManyOperations;
        }
        let (device_id, metric) = match self.series_of(node.node_id()) {
            Ok(series) => series,
            Err(status) => return status,
        };
        let mut values = Vec::with_capacity(times.len());
        for time in times {
            let Some(at) = gateway_time(time) else {
                return StatusCode::BadHistoryOperationInvalid;
            };
            match self.value_at(&device_id, &metric, at).await {
                Ok(value) => values.push(value),
                Err(status) => return status,
            }
        }
        node.set_result(HistoryData {
            data_values: Some(values),
        });
        StatusCode::Good
    }

    /// The device and metric a variable NodeId stands for (raw and at-time reads).
    pub(super) fn series_of(&self, node: &NodeId) -> Result<(String, String), StatusCode> {
        let id = self.string_id(node).ok_or(StatusCode::BadNodeIdUnknown)?;
        let served = self.served.read();
        let Some(found) = served.get(id) else {
            tracing::trace!(event = "opcua_history_unknown_node", node = %node);
            return Err(StatusCode::BadNodeIdUnknown);
        };
        let (device_id, metric) = found
            .series()
            .ok_or(StatusCode::BadHistoryOperationUnsupported)?;
        Ok((device_id.to_string(), metric.to_string()))
    }

    /// The value of one series at `at` (see the module doc).
    async fn value_at(
        &self,
        device_id: &str,
        metric: &str,
        at: Timestamp,
    ) -> Result<DataValue, StatusCode> {
        let one = Duration::from_micros(1);
        let query = |start, end, reverse| HistoryQuery {
            device_id: device_id.to_string(),
            metric: metric.to_string(),
            start,
            end,
            limit: 1,
            reverse,
            resume: None,
        };
        let before = self
            .fetch(query(TIME_MIN, at.saturating_add(one), true))
            .await?
            .rows
            .pop();
        let Some(before) = before else {
            return Ok(no_data(at));
        };
        if before.time == at {
            return Ok(history_value(&before));
        }
        let after = self
            .fetch(query(at.saturating_add(one), TIME_MAX, false))
            .await?
            .rows
            .pop();
        Ok(interpolate(&before, after.as_ref(), at))
    }
}

fn no_data(at: Timestamp) -> DataValue {
    at_time(None, StatusCode::BadNoData, at)
}

/// The value at `at` from the bounding values `before` (strictly earlier) and `after` (strictly
/// later, if any).
pub(super) fn interpolate(
    before: &HistoryRow,
    after: Option<&HistoryRow>,
    at: Timestamp,
) -> DataValue {
    let interpolated = |status: StatusCode| {
        status
            .set_info_type(StatusCodeInfoType::DataValue)
            .set_value_type(StatusCodeValueType::Interpolated)
    };
    let Some(after) = after else {
        // Beyond the last value: SteppedExtrapolation.
        return at_time(
            Some(variant_of(&before.value)),
            interpolated(StatusCode::UncertainDataSubNormal),
            at,
        );
    };
    let value = match (&before.value, &after.value) {
        (Value::Float(v0), Value::Float(v1)) => {
            let span = (after.time.as_micros() - before.time.as_micros()) as f64;
            let part = (at.as_micros() - before.time.as_micros()) as f64 / span;
            Value::Float(v0 + (v1 - v0) * part)
        }
        // Int, Bool, String (and a series whose type changed between the two): stepped.
        (held, _) => held.clone(),
    };
    at_time(Some(variant_of(&value)), interpolated(StatusCode::Good), at)
}

fn at_time(value: Option<ua::types::Variant>, status: StatusCode, at: Timestamp) -> DataValue {
    DataValue {
        value,
        status: Some(status),
        source_timestamp: Some(ua_time(at)),
        source_picoseconds: None,
        server_timestamp: None,
        server_picoseconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SampleOrigin;
    use ua::types::Variant;

    fn row(seconds: i64, value: Value) -> HistoryRow {
        HistoryRow {
            time: Timestamp(seconds * 1_000_000),
            value,
            origin: SampleOrigin::Uplink,
        }
    }

    fn at(seconds: f64) -> Timestamp {
        Timestamp((seconds * 1e6) as i64)
    }

    #[test]
    fn floats_slope_other_types_step_and_the_end_is_held_as_uncertain() {
        // Part 13's SlopedInterpolation example: 10 at 12:00:00, 20 at 12:00:10.
        let (t0, t1) = (row(0, Value::Float(10.0)), row(10, Value::Float(20.0)));
        let mid = interpolate(&t0, Some(&t1), at(5.0));
        assert_eq!(mid.value, Some(Variant::Double(15.0)));
        assert_eq!(mid.source_timestamp, Some(ua_time(at(5.0))));
        let status = mid.status.unwrap();
        assert!(status.is_good());
        assert_eq!(status.value_type(), StatusCodeValueType::Interpolated);
        let near = interpolate(&t0, Some(&t1), at(8.0));
        assert_eq!(near.value, Some(Variant::Double(18.0)));

        let (i0, i1) = (row(0, Value::Int(10)), row(10, Value::Int(20)));
        assert_eq!(
            interpolate(&i0, Some(&i1), at(8.0)).value,
            Some(Variant::Int64(10)),
            "an Int holds its value"
        );
        let (b0, b1) = (row(0, Value::Bool(true)), row(10, Value::Bool(false)));
        assert_eq!(
            interpolate(&b0, Some(&b1), at(9.9)).value,
            Some(Variant::Boolean(true))
        );

        let held = interpolate(&t1, None, at(60.0));
        assert_eq!(held.value, Some(Variant::Double(20.0)));
        let status = held.status.unwrap();
        assert_eq!(
            status.sub_code(),
            StatusCode::UncertainDataSubNormal.sub_code()
        );
        assert!(status.is_uncertain());
        assert_eq!(status.value_type(), StatusCodeValueType::Interpolated);

        assert_eq!(no_data(at(1.0)).status, Some(StatusCode::BadNoData));
        assert_eq!(
            history_value(&t0).status.unwrap().value_type(),
            StatusCodeValueType::Raw
        );
    }
}
