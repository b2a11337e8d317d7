//! HistoryRead processed (`ReadProcessedDetails`, OPC UA Part 11 §6.5.4): Part 13 aggregates
//! over processing intervals, computed in storage (`storage::aggregate`).
//!
//! - Each node names its aggregate (`aggregateType[i]` for `nodesToRead[i]`; the server
//!   answers a list of the wrong length with Bad_AggregateListMismatch). Aggregates asked of
//!   the same variable in one request are computed in one pass over its history.
//! - An aggregate this gateway does not compute, or one that needs numbers asked of a Boolean
//!   or String variable, is Bad_AggregateNotSupported for that node.
//! - AggregateConfiguration: the server's defaults are Part 13's (TreatUncertainAsBad true,
//!   PercentDataBad 100, PercentDataGood 100, UseSlopedExtrapolation false), taken when the
//!   request sets `useServerCapabilitiesDefaults` — or sends the all-zero structure many
//!   clients send for "no preference", which is no valid configuration; otherwise the
//!   request's values, Bad_AggregateInvalidInputs when they are not percentages adding up to
//!   at least 100 (Part 13 §4.2.1.2).
//! - Float variables interpolate on a slope, Int, Boolean and String ones step (docs/opcua.md).
//! - A response holds at most `max_history_data_results_per_node` intervals per node, and its
//!   share of the message size; the rest follows through a continuation point.

use std::collections::HashMap;

use ua::server::node_manager::HistoryNode;
use ua::server::ContinuationPoint;
use ua::types::{
    AggregateConfiguration, DataValue, HistoryData, NodeId, ObjectId, ReadProcessedDetails,
    StatusCode, StatusCodeInfoType, StatusCodeValueType, TimestampsToReturn, Variant,
};

use super::space::Kind;
use super::{gateway_time, metric_type_of, ua_time, variant_of, GatewayNodes};
use crate::model::{MetricType, Value};
use crate::storage::{
    Aggregate, AggregateConfig, AggregateValue, Interpolation, IntervalPlan, Origin,
    ProcessedQuery, ResultQuality,
};

/// The AggregateFunction object of each aggregate (namespace 0).
pub fn aggregate_function(aggregate: Aggregate) -> ObjectId {
    match aggregate {
        Aggregate::Interpolative => ObjectId::AggregateFunction_Interpolative,
        Aggregate::Average => ObjectId::AggregateFunction_Average,
        Aggregate::TimeAverage => ObjectId::AggregateFunction_TimeAverage,
        Aggregate::Total => ObjectId::AggregateFunction_Total,
        Aggregate::Minimum => ObjectId::AggregateFunction_Minimum,
        Aggregate::Maximum => ObjectId::AggregateFunction_Maximum,
        Aggregate::MinimumActualTime => ObjectId::AggregateFunction_MinimumActualTime,
        Aggregate::MaximumActualTime => ObjectId::AggregateFunction_MaximumActualTime,
        Aggregate::Range => ObjectId::AggregateFunction_Range,
        Aggregate::Count => ObjectId::AggregateFunction_Count,
        Aggregate::Start => ObjectId::AggregateFunction_Start,
        Aggregate::End => ObjectId::AggregateFunction_End,
        Aggregate::Delta => ObjectId::AggregateFunction_Delta,
        Aggregate::DurationGood => ObjectId::AggregateFunction_DurationGood,
        Aggregate::DurationBad => ObjectId::AggregateFunction_DurationBad,
        Aggregate::PercentGood => ObjectId::AggregateFunction_PercentGood,
    }
}

fn aggregate_of(node: &NodeId) -> Option<Aggregate> {
    let ua::types::Identifier::Numeric(number) = node.identifier else {
        return None;
    };
    Aggregate::ALL
        .into_iter()
        .find(|a| node.namespace == 0 && aggregate_function(*a) as u32 == number)
}

/// What a result costs on the wire, at most (mask, variant, status, source timestamp).
const RESULT_BYTES: usize = 1 + 9 + 4 + 8 + 2;

/// What nodes must share to be computed in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    device_id: String,
    metric: String,
    plan: IntervalPlan,
    first_interval: u64,
    max_intervals: usize,
    config: AggregateConfig,
}

impl GroupKey {
    fn of(query: &ProcessedQuery) -> Self {
        Self {
            device_id: query.device_id.clone(),
            metric: query.metric.clone(),
            plan: query.plan,
            first_interval: query.first_interval,
            max_intervals: query.max_intervals,
            config: query.config,
        }
    }
}

/// Where a processed read continues (kept per session by the library).
#[derive(Debug, Clone)]
struct ProcessedCursor {
    node: NodeId,
    aggregate: Aggregate,
    query: ProcessedQuery,
}

impl GatewayNodes {
    /// The body of the node manager's `history_read_processed`.
    pub(super) async fn read_processed(
        &self,
        details: &ReadProcessedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        timestamps: TimestampsToReturn,
    ) {
        let cap = self.history_page.load(std::sync::atomic::Ordering::Relaxed);
        let byte_budget = self.settings.max_response_bytes / nodes.len().max(1);
        let page = cap.min(byte_budget / RESULT_BYTES).max(1);
        // Each node's cursor, or its status.
        let mut cursors: Vec<Option<ProcessedCursor>> = Vec::with_capacity(nodes.len());
        for node in nodes.iter_mut() {
            match self.processed_cursor(details, node, timestamps, page) {
                Ok(cursor) => cursors.push(Some(cursor)),
                Err(status) => {
                    node.set_status(status);
                    cursors.push(None);
                }
            }
        }
        // The nodes asking the same page of the same read of a variable share one pass over
        // it (continuation points of different reads stay apart: the plan is in the key).
        let mut groups: Vec<(GroupKey, Vec<usize>)> = Vec::new();
        let mut index_of: HashMap<GroupKey, usize> = HashMap::new();
        for (index, cursor) in cursors.iter().enumerate() {
            if let Some(cursor) = cursor {
                let key = GroupKey::of(&cursor.query);
                match index_of.get(&key) {
                    Some(group) => groups[*group].1.push(index),
                    None => {
                        index_of.insert(key.clone(), groups.len());
                        groups.push((key, vec![index]));
                    }
                }
            }
        }
        for (_, members) in groups {
            let Some(mut query) = members
                .first()
                .and_then(|i| cursors[*i].as_ref())
                .map(|c| c.query.clone())
            else {
                continue;
            };
            query.aggregates.clear();
            for member in &members {
                if let Some(cursor) = &cursors[*member] {
                    if !query.aggregates.contains(&cursor.aggregate) {
                        query.aggregates.push(cursor.aggregate);
                    }
                }
            }
            let answer = self.backend.processed(query.clone()).await;
            for index in members {
                let Some(cursor) = cursors[index].take() else {
                    continue;
                };
                let node = &mut nodes[index];
                let page = match &answer {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::debug!(event = "opcua_history_unavailable", error = ?error);
                        node.set_status(error.status_code());
                        continue;
                    }
                };
                let Some(position) = query.aggregates.iter().position(|a| *a == cursor.aggregate)
                else {
                    node.set_status(StatusCode::BadInternalError);
                    continue;
                };
                let values = page
                    .values
                    .get(position)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                node.set_result(HistoryData {
                    data_values: Some(
                        values
                            .iter()
                            .map(|v| data_value(v, cursor.aggregate))
                            .collect(),
                    ),
                });
                let next = page.next_interval.map(|next| {
                    let mut cursor = cursor.clone();
                    cursor.query.first_interval = next;
                    ContinuationPoint::new(Box::new(cursor))
                });
                node.set_next_continuation_point(next);
                node.set_status(StatusCode::Good);
            }
        }
    }

    /// The cursor a node's read starts or continues from.
    fn processed_cursor(
        &self,
        details: &ReadProcessedDetails,
        node: &HistoryNode,
        timestamps: TimestampsToReturn,
        page: usize,
    ) -> Result<ProcessedCursor, StatusCode> {
        if let Some(point) = node.continuation_point() {
            return match point.get::<ProcessedCursor>() {
                Some(cursor) if &cursor.node == node.node_id() => Ok(cursor.clone()),
                _ => Err(StatusCode::BadContinuationPointInvalid),
            };
        }
        match timestamps {
            // Only device (source) times are stored.
            TimestampsToReturn::Server => return Err(StatusCode::BadTimestampNotSupported),
            TimestampsToReturn::Neither | TimestampsToReturn::Invalid => {
                return Err(StatusCode::BadTimestampsToReturnInvalid)
            }
            _ => {}
        }
        let aggregate = node
            .aggregate_type()
            .and_then(aggregate_of)
            .ok_or(StatusCode::BadAggregateNotSupported)?;
        let (start, end) = match (
            gateway_time(&details.start_time),
            gateway_time(&details.end_time),
        ) {
            (Some(start), Some(end)) if start != end => (start, end),
            // Part 11 §6.5.4.2: both times are needed, and equal ones are no interval.
            _ => return Err(StatusCode::BadInvalidArgument),
        };
        let interval_ms = details.processing_interval;
        if !interval_ms.is_finite() || interval_ms < 0.0 {
            return Err(StatusCode::BadInvalidArgument);
        }
        let config = request_config(&details.aggregate_configuration)?;
        let (device_id, metric) = self.series_of(node.node_id())?;
        let metric_type = self.metric_type(node.node_id())?;
        if !aggregate.applies_to(metric_type) {
            return Err(StatusCode::BadAggregateNotSupported);
        }
        Ok(ProcessedCursor {
            node: node.node_id().clone(),
            aggregate,
            query: ProcessedQuery {
                device_id,
                metric,
                plan: IntervalPlan {
                    start,
                    end,
                    // Milliseconds (a Double) to whole microseconds, at least one when not
                    // zero; past i64 is one interval.
                    interval: match interval_ms * 1_000.0 {
                        0.0 => 0,
                        micros => (micros.ceil().min(i64::MAX as f64) as i64).max(1),
                    },
                },
                first_interval: 0,
                max_intervals: page,
                aggregates: vec![aggregate],
                config,
                interpolation: Interpolation::of(metric_type),
            },
        })
    }
}

impl GatewayNodes {
    /// The type of a metric variable.
    fn metric_type(&self, node: &NodeId) -> Result<MetricType, StatusCode> {
        let id = self.string_id(node).ok_or(StatusCode::BadNodeIdUnknown)?;
        match self.served.read().get(id).map(|found| &found.kind) {
            Some(Kind::Metric { data_type }) => {
                metric_type_of(*data_type).ok_or(StatusCode::BadHistoryOperationUnsupported)
            }
            Some(_) => Err(StatusCode::BadHistoryOperationUnsupported),
            None => Err(StatusCode::BadNodeIdUnknown),
        }
    }
}

/// The configuration a request asks for (see the module doc).
fn request_config(asked: &AggregateConfiguration) -> Result<AggregateConfig, StatusCode> {
    let all_zero = !asked.treat_uncertain_as_bad
        && asked.percent_data_bad == 0
        && asked.percent_data_good == 0
        && !asked.use_sloped_extrapolation;
    if asked.use_server_capabilities_defaults || all_zero {
        return Ok(AggregateConfig::default());
    }
    let config = AggregateConfig {
        treat_uncertain_as_bad: asked.treat_uncertain_as_bad,
        percent_data_bad: asked.percent_data_bad,
        percent_data_good: asked.percent_data_good,
        use_sloped_extrapolation: asked.use_sloped_extrapolation,
    };
    if config.is_valid() {
        Ok(config)
    } else {
        Err(StatusCode::BadAggregateInvalidInputs)
    }
}

/// The DataValue of one aggregate result: Part 13's status with its aggregate bits, and the
/// value in the aggregate's data type (Count Int32; averages, totals and durations Double;
/// the others the variable's own type, as storage computed them).
fn data_value(value: &AggregateValue, aggregate: Aggregate) -> DataValue {
    let status = match value.quality {
        ResultQuality::Good => StatusCode::Good,
        ResultQuality::GoodNoData => StatusCode::GoodNoData,
        ResultQuality::UncertainDataSubNormal => StatusCode::UncertainDataSubNormal,
        ResultQuality::Uncertain => StatusCode::Uncertain,
        ResultQuality::Bad => StatusCode::Bad,
        ResultQuality::BadNoData => StatusCode::BadNoData,
    };
    let status = if value.quality == ResultQuality::BadNoData {
        status
    } else {
        status
            .set_info_type(StatusCodeInfoType::DataValue)
            .set_value_type(match value.origin {
                Origin::Raw => StatusCodeValueType::Raw,
                Origin::Calculated => StatusCodeValueType::Calculated,
                Origin::Interpolated => StatusCodeValueType::Interpolated,
            })
            .set_partial(value.partial)
            .set_multi_value(value.multi_value)
    };
    let variant = value.value.as_ref().map(|v| match (aggregate, v) {
        (Aggregate::Count, Value::Int(n)) => Variant::Int32(i32::try_from(*n).unwrap_or(i32::MAX)),
        (_, other) => variant_of(other),
    });
    DataValue {
        value: variant,
        status: Some(status),
        source_timestamp: Some(ua_time(value.time)),
        source_picoseconds: None,
        server_timestamp: None,
        server_picoseconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    #[test]
    fn every_aggregate_has_its_function_object_and_back() {
        for aggregate in Aggregate::ALL {
            let id = NodeId::from(aggregate_function(aggregate));
            assert_eq!(aggregate_of(&id), Some(aggregate));
        }
        assert_eq!(
            aggregate_of(&ObjectId::AggregateFunction_StandardDeviationSample.into()),
            None
        );
    }

    #[test]
    fn results_carry_the_aggregate_bits_and_their_data_type() {
        let value = AggregateValue {
            time: Timestamp(1_000_000),
            value: Some(Value::Int(3)),
            quality: ResultQuality::UncertainDataSubNormal,
            origin: Origin::Calculated,
            partial: true,
            multi_value: false,
        };
        let dv = data_value(&value, Aggregate::Count);
        assert_eq!(dv.value, Some(Variant::Int32(3)));
        let status = dv.status.unwrap();
        assert_eq!(
            status.bits() & 0xFFFF_0000,
            StatusCode::UncertainDataSubNormal.bits()
        );
        assert_eq!(status.bits() & 0x41F, 0x400 | 0x04 | 0x01, "{status:?}");
        let none = AggregateValue {
            value: None,
            quality: ResultQuality::BadNoData,
            ..value
        };
        assert_eq!(
            data_value(&none, Aggregate::Average).status,
            Some(StatusCode::BadNoData)
        );
    }

    #[test]
    fn the_all_zero_configuration_means_the_defaults_and_bad_percentages_are_refused() {
        let zero = AggregateConfiguration::default();
        assert_eq!(request_config(&zero), Ok(AggregateConfig::default()));
        let asked = AggregateConfiguration {
            use_server_capabilities_defaults: false,
            treat_uncertain_as_bad: false,
            percent_data_bad: 50,
            percent_data_good: 50,
            use_sloped_extrapolation: true,
        };
        assert!(request_config(&asked).is_ok_and(|c| c.use_sloped_extrapolation));
        let invalid = AggregateConfiguration {
            percent_data_bad: 80,
            percent_data_good: 0,
            treat_uncertain_as_bad: true,
            ..asked
        };
        assert_eq!(
            request_config(&invalid),
            Err(StatusCode::BadAggregateInvalidInputs)
        );
    }
}
