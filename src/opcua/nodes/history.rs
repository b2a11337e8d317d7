//! HistoryRead raw from storage: time ranges and directions of OPC UA Part 11 §6.4.3.2,
//! bounding values, real continuation points (the cursor is kept per session by the library),
//! and responses that fit the message size.

use std::time::Duration;

use tracing::debug;
use ua::server::node_manager::HistoryNode;
use ua::server::ContinuationPoint;
use ua::types::{
    DataValue, HistoryData, NodeId, ReadRawModifiedDetails, StatusCode, StatusCodeInfoType,
    StatusCodeValueType, TimestampsToReturn,
};

use super::{gateway_time, ua_time, variant_of, BackendError, GatewayNodes};
use crate::model::{SampleOrigin, Timestamp, Value};
use crate::storage::{HistoryPage, HistoryQuery, HistoryRow, ResumeKey};

impl GatewayNodes {
    /// The body of the node manager's `history_read_raw_modified`.
    pub(super) async fn read_history(
        &self,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) {
        // The response must fit the message size: each node gets its share of it.
        let byte_budget = self.settings.max_response_bytes / nodes.len().max(1);
        for node in nodes.iter_mut() {
            let status = self
                .history_node(details, node, timestamps_to_return, byte_budget)
                .await;
            node.set_status(status);
        }
    }
}

/// Where a HistoryRead continues on the next call (kept per session by the library).
#[derive(Debug, Clone)]
struct HistoryCursor {
    node: NodeId,
    device_id: String,
    metric: String,
    start: Timestamp,
    end: Timestamp,
    reverse: bool,
    resume: Option<ResumeKey>,
    /// EndTime, when given with StartTime: where the far bounding value is looked for.
    end_bound: Option<Timestamp>,
    /// Every raw row was returned; only the far bounding value is left.
    far_bound_only: bool,
    /// Only one of StartTime / EndTime given: the values still owed of numValuesPerNode
    /// (Part 11 §6.5.3.2: that many are returned, then the read is complete).
    remaining: Option<usize>,
}

/// Far enough back for any device time a client can name (OPC UA time starts in 1601).
pub(super) const TIME_MIN: Timestamp = Timestamp(i64::MIN / 20);
pub(super) const TIME_MAX: Timestamp = Timestamp(i64::MAX / 20);

/// What a row of history costs on the wire, roughly (encoding mask, variant, status, source
/// timestamp), so a response fits the negotiated message size.
fn row_bytes(row: &HistoryRow) -> usize {
    let variant = match &row.value {
        Value::String(s) => 5 + s.len(),
        Value::Bool(_) => 2,
        Value::Float(_) | Value::Int(_) => 9,
    };
    1 + variant + 4 + 8 + 2
}

/// A BadBoundNotFound placeholder on the wire (mask, status, timestamp).
const PLACEHOLDER_BYTES: usize = 1 + 4 + 8 + 2;

impl GatewayNodes {
    async fn history_node(
        &self,
        details: &ReadRawModifiedDetails,
        node: &mut HistoryNode,
        timestamps: TimestampsToReturn,
        byte_budget: usize,
    ) -> StatusCode {
        if details.is_read_modified {
            return StatusCode::BadHistoryOperationUnsupported;
        }
        match timestamps {
            // Only device (source) times are stored.
            TimestampsToReturn::Server => return StatusCode::BadTimestampNotSupported,
            TimestampsToReturn::Neither | TimestampsToReturn::Invalid => {
                return StatusCode::BadTimestampsToReturnInvalid
            }
            _ => {}
        }
        let cursor = match node
            .continuation_point()
            .and_then(|c| c.get::<HistoryCursor>())
        {
            Some(cursor) if &cursor.node == node.node_id() => cursor.clone(),
            Some(_) => return StatusCode::BadContinuationPointInvalid,
            None => match self.new_cursor(details, node.node_id()) {
                Ok(cursor) => cursor,
                Err(status) => return status,
            },
        };
        let cap = self.history_page.load(std::sync::atomic::Ordering::Relaxed);
        let mut page = match details.num_values_per_node {
            0 => cap,
            n => (n as usize).min(cap),
        };
        if let Some(remaining) = cursor.remaining {
            page = page.min(remaining);
        }
        let first_call = node.continuation_point().is_none();
        let start_bound = first_call && details.return_bounds;
        let (values, next) = match self
            .history_page(
                cursor,
                start_bound,
                details.return_bounds,
                page.max(1),
                byte_budget,
            )
            .await
        {
            Ok(out) => out,
            Err(status) => return status,
        };
        let empty = values.is_empty();
        node.set_result(HistoryData {
            data_values: Some(values),
        });
        node.set_next_continuation_point(next.map(|c| ContinuationPoint::new(Box::new(c))));
        if empty {
            StatusCode::GoodNoData
        } else {
            StatusCode::Good
        }
    }

    fn new_cursor(
        &self,
        details: &ReadRawModifiedDetails,
        node: &NodeId,
    ) -> Result<HistoryCursor, StatusCode> {
        let (device_id, metric) = self.series_of(node)?;
        let start = gateway_time(&details.start_time);
        let end = gateway_time(&details.end_time);
        let one = Duration::from_micros(1);
        let wanted = details.num_values_per_node as usize;
        // Part 11 §6.4.3.2: StartTime > EndTime reads backwards; only one time given needs
        // numValuesPerNode and reads that many forwards from StartTime or backwards from
        // EndTime; StartTime = EndTime asks for the value at that instant.
        let (lo, hi, reverse, far, remaining) = match (start, end) {
            (None, None) => return Err(StatusCode::BadHistoryOperationInvalid),
            (Some(_), None) | (None, Some(_)) if wanted == 0 => {
                return Err(StatusCode::BadHistoryOperationInvalid)
            }
            (Some(s), None) => (s, TIME_MAX, false, None, Some(wanted)),
            (None, Some(e)) => (TIME_MIN, e.saturating_add(one), true, None, Some(wanted)),
            (Some(s), Some(e)) if s == e => (s, s.saturating_add(one), false, None, None),
            (Some(s), Some(e)) if s < e => (s, e, false, Some(e), None),
            (Some(s), Some(e)) => (
                e.saturating_add(one),
                s.saturating_add(one),
                true,
                Some(e),
                None,
            ),
        };
        Ok(HistoryCursor {
            node: node.clone(),
            device_id,
            metric,
            start: lo,
            end: hi,
            reverse,
            resume: None,
            end_bound: far,
            far_bound_only: false,
            remaining,
        })
    }

    fn query(
        &self,
        cursor: &HistoryCursor,
        start: Timestamp,
        end: Timestamp,
        limit: usize,
        reverse: bool,
        resume: Option<ResumeKey>,
    ) -> HistoryQuery {
        HistoryQuery {
            device_id: cursor.device_id.clone(),
            metric: cursor.metric.clone(),
            start,
            end,
            limit,
            reverse,
            resume,
        }
    }

    pub(super) async fn fetch(&self, query: HistoryQuery) -> Result<HistoryPage, StatusCode> {
        if query.start >= query.end {
            return Ok(HistoryPage::default());
        }
        match self.backend.history(query).await {
            Ok(page) => Ok(page),
            // A metric never stored has no rows: a Good, empty answer, not a failure.
            Err(BackendError::UnknownSeries) => Ok(HistoryPage::default()),
            Err(error) => {
                let event = match error {
                    BackendError::Unavailable(_) => "opcua_history_unavailable",
                    _ => "opcua_history_rejected",
                };
                debug!(event, error = ?error);
                Err(error.status_code())
            }
        }
    }

    /// The value at `at` or the nearest one beyond it in direction `later` (with its row),
    /// or a BadBoundNotFound placeholder.
    async fn bound(
        &self,
        cursor: &HistoryCursor,
        at: Timestamp,
        later: bool,
    ) -> Result<(DataValue, Option<HistoryRow>), StatusCode> {
        let one = Duration::from_micros(1);
        let query = if later {
            self.query(cursor, at, TIME_MAX, 1, false, None)
        } else {
            self.query(cursor, TIME_MIN, at.saturating_add(one), 1, true, None)
        };
        let mut page = self.fetch(query).await?;
        Ok(match page.rows.pop() {
            Some(row) => (history_value(&row), Some(row)),
            None => (
                DataValue {
                    value: None,
                    status: Some(StatusCode::BadBoundNotFound),
                    source_timestamp: Some(ua_time(at)),
                    source_picoseconds: None,
                    server_timestamp: None,
                    server_picoseconds: None,
                },
                None,
            ),
        })
    }

    async fn history_page(
        &self,
        mut cursor: HistoryCursor,
        start_bound: bool,
        bounds: bool,
        page: usize,
        byte_budget: usize,
    ) -> Result<(Vec<DataValue>, Option<HistoryCursor>), StatusCode> {
        let mut out = Vec::with_capacity(page.min(1024));
        if cursor.far_bound_only {
            if let Some(far) = cursor.end_bound {
                out.push(self.bound(&cursor, far, !cursor.reverse).await?.0);
            }
            return Ok((out, None));
        }
        let one = Duration::from_micros(1);
        let mut bytes_left = byte_budget;
        if start_bound {
            // Forward: the value at StartTime or just before; backward: at StartTime or after.
            let (at, later) = if cursor.reverse {
                (cursor.end.saturating_sub(one), true)
            } else {
                (cursor.start, false)
            };
            let (bound, row) = self.bound(&cursor, at, later).await?;
            // A value exactly at StartTime is the bound and the first raw row: return it once.
            if row.as_ref().map(|r| r.time) != Some(at) {
                bytes_left -= row
                    .as_ref()
                    .map_or(PLACEHOLDER_BYTES, row_bytes)
                    .min(bytes_left);
                out.push(bound);
            }
        }
        let mut budget = page.saturating_sub(out.len()).max(1);
        let fetched = loop {
            let query = self.query(
                &cursor,
                cursor.start,
                cursor.end,
                budget,
                cursor.reverse,
                cursor.resume,
            );
            let fetched = self.fetch(query).await?;
            // Too many bytes for the response: ask again for the rows that fit (the resume
            // key then points right after them).
            let mut total = 0;
            let fit = fetched
                .rows
                .iter()
                .take_while(|row| {
                    total += row_bytes(row);
                    total <= bytes_left
                })
                .count()
                .max(1);
            if fit >= fetched.rows.len() {
                break fetched;
            }
            budget = fit;
        };
        out.extend(fetched.rows.iter().map(history_value));
        cursor.resume = fetched.resume;
        if let Some(remaining) = cursor.remaining.as_mut() {
            *remaining = remaining.saturating_sub(fetched.rows.len());
            if *remaining == 0 {
                return Ok((out, None));
            }
        }
        if cursor.resume.is_some() {
            return Ok((out, Some(cursor)));
        }
        if let (true, Some(far)) = (bounds, cursor.end_bound) {
            if out.len() >= page {
                // No room left in this call: the far bound comes alone with the next one.
                cursor.far_bound_only = true;
                return Ok((out, Some(cursor)));
            }
            out.push(self.bound(&cursor, far, !cursor.reverse).await?.0);
        }
        Ok((out, None))
    }
}

pub(super) fn history_value(row: &HistoryRow) -> DataValue {
    let status = match row.origin {
        SampleOrigin::Aggregate => StatusCode::Good
            .set_info_type(StatusCodeInfoType::DataValue)
            .set_value_type(StatusCodeValueType::Calculated),
        _ => StatusCode::Good,
    };
    DataValue {
        value: Some(variant_of(&row.value)),
        status: Some(status),
        source_timestamp: Some(ua_time(row.time)),
        source_picoseconds: None,
        server_timestamp: None,
        server_picoseconds: None,
    }
}
