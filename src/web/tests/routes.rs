//! The API routes over the fake gateway: shapes of docs/web.md, parameter checks, command
//! idempotency, and every error path's status and body.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::support::*;
use crate::model::{Timestamp, Value};
use crate::web::backend::WebBackendError;

#[tokio::test]
async fn devices_lists_every_configured_metric_with_nulls_until_a_value_arrives() {
    let app = App::new();
    let now = Timestamp::now();
    app.fake
        .latest
        .lock()
        .unwrap()
        .push(sample("temperature", Value::Float(21.5), now));
    let body = json_body(app.send(as_operator(get("/api/devices"))).await).await;
    assert_eq!(body["stale_threshold_secs"], 120);
    assert_eq!(body["bad_threshold_secs"], 86_400);
    let device = &body["applications"][0]["devices"][0];
    assert_eq!(body["applications"][0]["application_id"], "app-1");
    assert!(device.get("application_id").is_none());
    assert_eq!(device["device_id"], "valve-1");
    assert_eq!(
        device["quality"], "good",
        "the worst of the metrics that reported; one still waiting does not count"
    );
    let temperature = &device["metrics"][0];
    assert_eq!(temperature["value"], 21.5);
    assert_eq!(temperature["unit"], "°C");
    assert_eq!(temperature["metric_type"], "Float");
    assert_eq!(temperature["quality"], "good");
    let stamp = temperature["timestamp"].as_str().unwrap();
    assert_eq!(stamp.len(), "2026-11-29T21:40:01.123Z".len(), "{stamp}");
    assert_eq!(device["last_seen"], temperature["timestamp"]);
    let open = &device["metrics"][1];
    assert_eq!(
        (
            open["value"].clone(),
            open["timestamp"].clone(),
            open["quality"].clone()
        ),
        (json!(null), json!(null), json!("waiting"))
    );
    assert_eq!(
        device["commands"][0],
        json!({"command_name": "level", "command_type": "Int", "command_port": 10, "command_confirmed": true, "command_min": 0.0, "command_max": 100.0})
    );
}

#[tokio::test]
async fn a_device_none_of_whose_metrics_reported_is_waiting() {
    let app = App::new();
    let body = json_body(app.send(as_operator(get("/api/devices/valve-1"))).await).await;
    assert_eq!(body["metrics"][0]["quality"], "waiting");
    assert_eq!(body["quality"], "waiting");
}

#[tokio::test]
async fn a_stale_value_is_uncertain_and_the_device_takes_its_worst_quality() {
    let app = App::new();
    let old = Timestamp::now().saturating_sub(Duration::from_secs(600));
    app.fake.latest.lock().unwrap().extend([
        sample("temperature", Value::Float(1.0), old),
        sample("open", Value::Bool(true), Timestamp::now()),
    ]);
    let body = json_body(app.send(as_operator(get("/api/devices/valve-1"))).await).await;
    assert_eq!(body["application_id"], "app-1");
    assert_eq!(body["metrics"][0]["quality"], "uncertain");
    assert_eq!(body["metrics"][1]["value"], true);
    assert_eq!(body["quality"], "uncertain");
}

#[tokio::test]
async fn an_unknown_device_metric_or_command_is_404() {
    let app = App::new();
    assert_error(
        app.send(as_operator(get("/api/devices/nope"))).await,
        StatusCode::NOT_FOUND,
        "unknown device",
    )
    .await;
    assert_error(
        app.send(as_operator(get(
            "/api/devices/nope/metrics/temperature/history",
        )))
        .await,
        StatusCode::NOT_FOUND,
        "unknown device",
    )
    .await;
    assert_error(
        app.send(as_operator(get(
            "/api/devices/valve-1/metrics/nope/history",
        )))
        .await,
        StatusCode::NOT_FOUND,
        "the device has no such metric",
    )
    .await;
    let body = json!({"value": 1, "idempotency_key": "key-0001"}).to_string();
    let response = app
        .send(as_operator(post_json(
            "/api/devices/valve-1/commands/nope",
            &body,
        )))
        .await;
    let error = assert_error(
        response,
        StatusCode::NOT_FOUND,
        "device \"valve-1\" has no command \"nope\"",
    )
    .await;
    assert_eq!(error["field"], "command");
}

#[tokio::test]
async fn history_takes_unix_seconds_or_rfc3339_and_checks_its_parameters() {
    let app = App::new();
    let path = "/api/devices/valve-1/metrics/temperature/history";
    let response = app
        .send(as_operator(get(&format!(
            "{path}?from=1700000000&to=2023-11-14T22:23:20Z&max_points=50"
        ))))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["from"], "2023-11-14T22:13:20.000Z");
    assert_eq!(body["to"], "2023-11-14T22:23:20.000Z");
    assert_eq!(body["downsampled"], false);
    assert_eq!(
        body["points"],
        json!([{"t": "2023-11-14T22:13:20.000Z", "v": 1.5}])
    );
    let sent = app.fake.history_requests.lock().unwrap().pop().unwrap();
    assert_eq!(
        (sent.from, sent.to, sent.max_points),
        (
            Timestamp(1_700_000_000_000_000),
            Timestamp(1_700_000_600_000_000),
            50
        )
    );

    // Defaults: the last hour, 1000 points.
    app.send(as_operator(get(path))).await;
    let sent = app.fake.history_requests.lock().unwrap().pop().unwrap();
    assert_eq!(
        (sent.to.as_micros() - sent.from.as_micros(), sent.max_points),
        (3_600_000_000, 1000)
    );

    let refusals = [
        (
            "?from=yesterday",
            "from must be Unix seconds or an RFC 3339 time",
            "from",
        ),
        (
            "?to=NaN",
            "to must be Unix seconds or an RFC 3339 time",
            "to",
        ),
        ("?from=2000&to=1000", "from must be before to", "from"),
        (
            "?from=0&to=40000000",
            "the window is longer than 366 days",
            "from",
        ),
        ("?max_points=9", "max_points must be 10-10000", "max_points"),
        (
            "?max_points=10001",
            "max_points must be 10-10000",
            "max_points",
        ),
        (
            "?max_points=lots",
            "max_points must be 10-10000",
            "max_points",
        ),
    ];
    for (query, error, field) in refusals {
        let body = assert_error(
            app.send(as_operator(get(&format!("{path}{query}")))).await,
            StatusCode::BAD_REQUEST,
            error,
        )
        .await;
        assert_eq!(body["field"], field, "{query}");
    }
}

#[tokio::test]
async fn a_command_is_queued_once_per_idempotency_key() {
    let app = App::new();
    let body = json!({"value": 42, "idempotency_key": "click-123456"}).to_string();
    let path = "/api/devices/valve-1/commands/level";
    let first = app.send(as_operator(post_json(path, &body))).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(json_body(first).await, json!({"id": 1, "state": "queued"}));
    let again = app.send(as_operator(post_json(path, &body))).await;
    assert_eq!(json_body(again).await, json!({"id": 1, "state": "queued"}));
    assert_eq!(
        app.fake.enqueue_calls.load(Ordering::SeqCst),
        1,
        "one downlink"
    );
    let queued = app.fake.enqueued.lock().unwrap()[0].clone();
    assert_eq!(queued.requested_by, format!("web:{USER}"));
    assert_eq!(queued.downlink.f_port, 10);
    // Another key is another command.
    let other = json!({"value": 42, "idempotency_key": "click-654321"}).to_string();
    assert_eq!(
        json_body(app.send(as_operator(post_json(path, &other))).await).await["id"],
        2
    );

    let listed = json_body(
        app.send(as_operator(get(
            "/api/commands?device=valve-1&state=queued,sent&limit=5",
        )))
        .await,
    )
    .await;
    assert_eq!(listed["commands"][0]["id"], 2);
    assert_eq!(listed["commands"][1]["command_name"], "level");
    assert_eq!(listed["commands"][1]["requested_by"], "web:operator");
    let filter = app.fake.command_filters.lock().unwrap().pop().unwrap();
    assert_eq!(filter.device_id.as_deref(), Some("valve-1"));
    assert_eq!(filter.limit, 5);
    assert_eq!(filter.states.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_double_click_in_flight_sends_one_downlink() {
    let app = App::new();
    *app.fake.enqueue_delay.lock().unwrap() = Duration::from_millis(200);
    let body = json!({"value": 7, "idempotency_key": "double-click"}).to_string();
    let path = "/api/devices/valve-1/commands/level";
    let (a, b) = tokio::join!(
        app.send(as_operator(post_json(path, &body))),
        app.send(as_operator(post_json(path, &body)))
    );
    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(json_body(a).await["id"], json_body(b).await["id"]);
    assert_eq!(app.fake.enqueue_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_idempotency_key_is_forgotten_after_ten_minutes() {
    let app = App::new();
    let body = json!({"value": 7, "idempotency_key": "slow-repeat"}).to_string();
    let path = "/api/devices/valve-1/commands/level";
    app.send(as_operator(post_json(path, &body))).await;
    tokio::time::advance(Duration::from_secs(601)).await;
    let response = app.send(as_operator(post_json(path, &body))).await;
    assert_eq!(json_body(response).await["id"], 2);
}

#[tokio::test]
async fn a_wrong_value_or_key_is_422_with_its_field() {
    let app = App::new();
    let path = "/api/devices/valve-1/commands/level";
    let cases = [
        (
            json!({"value": "5", "idempotency_key": "key-00001"}),
            "command level takes Int: expected a JSON integer",
            "value",
        ),
        (
            json!({"value": 5.5, "idempotency_key": "key-00001"}),
            "command level takes Int: not a whole number in the 64-bit range",
            "value",
        ),
        (
            json!({"value": 101, "idempotency_key": "key-00001"}),
            "101 is outside the range 0..=100 of command level",
            "value",
        ),
        (
            json!({"value": 5, "idempotency_key": "short"}),
            "idempotency_key must be 8-64 visible ASCII characters",
            "idempotency_key",
        ),
        (
            json!({"value": 5}),
            "idempotency_key must be 8-64 visible ASCII characters",
            "idempotency_key",
        ),
        (
            json!({"value": 5, "idempotency_key": "has a space"}),
            "idempotency_key must be 8-64 visible ASCII characters",
            "idempotency_key",
        ),
    ];
    for (body, error, field) in cases {
        let response = app
            .send(as_operator(post_json(path, &body.to_string())))
            .await;
        let answer = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, error).await;
        assert_eq!(answer["field"], field, "{body}");
    }
    assert_eq!(app.fake.enqueue_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn command_list_parameters_are_checked() {
    let app = App::new();
    for (query, error, field) in [
        ("?limit=0", "limit must be 1-1000", "limit"),
        ("?limit=1001", "limit must be 1-1000", "limit"),
        (
            "?state=lost",
            "state must be queued, sent, acknowledged, failed or expired",
            "state",
        ),
    ] {
        let body = assert_error(
            app.send(as_operator(get(&format!("/api/commands{query}"))))
                .await,
            StatusCode::BAD_REQUEST,
            error,
        )
        .await;
        assert_eq!(body["field"], field);
    }
    app.send(as_operator(get("/api/commands"))).await;
    let filter = app.fake.command_filters.lock().unwrap().pop().unwrap();
    assert_eq!(
        (filter.device_id, filter.states, filter.limit),
        (None, None, 100)
    );
}

#[tokio::test]
async fn a_storage_failure_is_a_generic_500_and_a_restart_503() {
    let app = App::new();
    app.fake.fail_with(WebBackendError::Internal(
        "redb: table `latest` corrupt at /var/lib/opcgw/opcgw.redb".into(),
    ));
    let command = json!({"value": 1, "idempotency_key": "key-00001"}).to_string();
    let requests = || {
        vec![
            get("/api/status"),
            get("/api/devices"),
            get("/api/devices/valve-1"),
            get("/api/devices/valve-1/metrics/temperature/history"),
            get("/api/commands"),
            post_json("/api/devices/valve-1/commands/level", &command),
        ]
    };
    for request in requests() {
        let path = request.uri().to_string();
        let response = app.send(as_operator(request)).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        assert_eq!(
            body_text(response).await,
            "{\"error\":\"internal server error\"}",
            "{path}"
        );
    }
    for (error, status, text) in [
        (
            WebBackendError::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable",
        ),
        (
            WebBackendError::Timeout,
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable",
        ),
    ] {
        app.fake.fail_with(error);
        for request in requests() {
            assert_error(app.send(as_operator(request)).await, status, text).await;
        }
    }
    app.fake
        .fail_with(WebBackendError::CommandQueueFull("100 unfinished".into()));
    let command = json!({"value": 1, "idempotency_key": "key-00002"}).to_string();
    let response = app
        .send(as_operator(post_json(
            "/api/devices/valve-1/commands/level",
            &command,
        )))
        .await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "the device's command queue is full; try again once its queued commands complete",
    )
    .await;
}

#[tokio::test]
async fn a_failed_enqueue_does_not_burn_its_idempotency_key() {
    let app = App::new();
    app.fake.fail_with(WebBackendError::Unavailable);
    let body = json!({"value": 1, "idempotency_key": "retry-me-1"}).to_string();
    let path = "/api/devices/valve-1/commands/level";
    assert_eq!(
        app.send(as_operator(post_json(path, &body))).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    *app.fake.failure.lock().unwrap() = None;
    assert_eq!(
        app.send(as_operator(post_json(path, &body))).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn status_and_audit_follow_the_contract() {
    let app = App::new();
    let status = json_body(app.send(as_operator(get("/api/status"))).await).await;
    assert_eq!(status["verdict"], "ok");
    assert_eq!(
        status["actors"][0],
        json!({"role": "storage", "state": "running", "restarts": 0, "last_error": null, "next_retry": null})
    );
    assert_eq!(status["started_at"], "1970-01-01T00:00:00.000Z");
    for key in [
        "upstream", "poll", "streams", "ingest", "quality", "storage", "opcua", "editing",
    ] {
        assert!(status.get(key).is_some(), "{key}");
    }
    app.sign_in().await;
    let audit = json_body(app.send(as_operator(get("/api/audit"))).await).await;
    let newest = &audit["events"][0];
    assert_eq!(newest["event"], "web_login");
    assert_eq!(newest["source_ip"], "127.0.0.1");
    assert_eq!(newest["user"], USER);
}

/// One device's answer is its entry of the fleet's answer plus its application id (it is built
/// from that device's samples only, by the same code).
#[tokio::test]
async fn one_device_answers_what_the_fleet_answer_holds_for_it() {
    let app = App::new();
    let now = Timestamp::now();
    app.fake.latest.lock().unwrap().extend([
        sample("temperature", Value::Float(21.5), now),
        sample(
            "open",
            Value::Bool(false),
            now.saturating_sub(Duration::from_secs(5)),
        ),
    ]);
    let fleet = json_body(app.send(as_operator(get("/api/devices"))).await).await;
    let one = json_body(app.send(as_operator(get("/api/devices/valve-1"))).await).await;
    let mut expected = fleet["applications"][0]["devices"][0].clone();
    assert_eq!(expected["device_id"], "valve-1");
    expected["application_id"] = json!("app-1");
    // Qualities are computed at each answer's own time; both are fresh here.
    assert_eq!(one, expected);
}

/// The fleet answer is JSON with the API's headers (it is written by hand, not through `Json`).
#[tokio::test]
async fn the_devices_answer_is_json_and_never_cached() {
    let app = App::new();
    let response = app.send(as_operator(get("/api/devices"))).await;
    assert_eq!(response.status(), axum::http::StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(
        headers[axum::http::header::CONTENT_TYPE],
        "application/json"
    );
    assert_eq!(headers[axum::http::header::CACHE_CONTROL], "no-store");
    let body = json_body(response).await;
    assert_eq!(
        body["applications"][0]["devices"][0]["device_id"],
        "valve-1"
    );
}
