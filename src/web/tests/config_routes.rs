//! The configuration API through the whole router: reads, each mutation's statuses, the CSRF
//! rules on mutations, bounds, refusals of the configuration's owner and the audit trail.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::support::*;
use crate::config::edit::{ConfigEdit, EditError, FieldProblem};

fn put_json(path: &str, body: &str) -> axum::http::Request<axum::body::Body> {
    request_json("PUT", path, body)
}

fn delete(path: &str) -> axum::http::Request<axum::body::Body> {
    request_json("DELETE", path, "")
}

fn metric(name: &str, kind: &str) -> Value {
    json!({"metric_name": name, "chirpstack_metric_name": name, "metric_type": kind})
}

fn command(name: &str, port: u8) -> Value {
    json!({"command_name": name, "command_id": 7, "command_port": port, "command_type": "Float"})
}

/// Asserts a refusal's status and reason; returns the body.
async fn refused(response: axum::response::Response, status: StatusCode, reason: &str) -> Value {
    assert_eq!(response.status(), status);
    let body = json_body(response).await;
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

/// The newest audit event: (event, detail).
fn last_audit(app: &App) -> (String, String) {
    let event = app
        .shared
        .audit
        .recent()
        .into_iter()
        .next()
        .expect("an audit event");
    assert_eq!(event.user, USER);
    assert_eq!(event.source_ip.as_deref(), Some("127.0.0.1"));
    (event.event.to_string(), event.detail)
}

#[tokio::test]
async fn reads_show_the_live_tree_and_whether_it_can_be_edited() {
    let app = App::new();
    let config = json_body(app.send(as_operator(get("/api/config"))).await).await;
    assert_eq!(config["generation"], 1);
    assert_eq!(config["editing"], json!({"enabled": true}));

    let list = json_body(app.send(as_operator(get("/api/applications"))).await).await;
    assert_eq!(list["generation"], 1);
    assert_eq!(list["editing"]["enabled"], true);
    assert_eq!(
        list["applications"],
        json!([{"application_id": "app-1", "application_name": "Plant", "device_count": 1}])
    );

    let one = json_body(app.send(as_operator(get("/api/applications/app-1"))).await).await;
    let summary = json!([{"device_id": "valve-1", "device_name": "Valve", "metric_count": 2, "command_count": 1, "discovered": false}]);
    assert_eq!(one["devices"], summary);
    let devices = json_body(
        app.send(as_operator(get("/api/applications/app-1/devices")))
            .await,
    )
    .await;
    assert_eq!(devices["devices"], summary);

    let device = json_body(
        app.send(as_operator(get("/api/applications/app-1/devices/valve-1")))
            .await,
    )
    .await;
    assert_eq!(device["application_id"], "app-1");
    assert_eq!(device["device_name"], "Valve");
    assert!(device.get("stale_threshold_seconds").is_none(), "{device}");
    assert_eq!(
        device["read_metric"][0],
        json!({"metric_name": "temperature", "chirpstack_metric_name": "temp", "metric_type": "Float", "metric_unit": "°C"})
    );
    assert_eq!(device["read_metric"][1]["metric_type"], "Bool");
    let level = json!({"command_name": "level", "command_id": 1, "command_confirmed": true,
        "command_port": 10, "command_type": "Int", "command_min": 0.0, "command_max": 100.0});
    assert_eq!(device["command"], json!([level.clone()]));
    let commands = json_body(
        app.send(as_operator(get(
            "/api/applications/app-1/devices/valve-1/commands",
        )))
        .await,
    )
    .await;
    assert_eq!(commands["commands"], json!([level.clone()]));
    let one_command = app
        .send(as_operator(get(
            "/api/applications/app-1/devices/valve-1/commands/level",
        )))
        .await;
    assert_eq!(json_body(one_command).await, level);
}

#[tokio::test]
async fn unknown_ids_answer_404_with_the_reason_and_field() {
    let app = App::new();
    for (path, reason, field) in [
        (
            "/api/applications/nope",
            "application_not_found",
            "application_id",
        ),
        (
            "/api/applications/nope/devices",
            "application_not_found",
            "application_id",
        ),
        (
            "/api/applications/app-1/devices/nope",
            "device_not_found",
            "device_id",
        ),
        // Ids are case-sensitive.
        (
            "/api/applications/APP-1/devices/valve-1",
            "application_not_found",
            "application_id",
        ),
        (
            "/api/applications/app-1/devices/valve-1/commands/nope",
            "command_not_found",
            "command_name",
        ),
    ] {
        let body = refused(
            app.send(as_operator(get(path))).await,
            StatusCode::NOT_FOUND,
            reason,
        )
        .await;
        assert_eq!(body["field"], field, "{path}");
    }
    // A long id is quoted bounded.
    let long = "x".repeat(5000);
    let body = refused(
        app.send(as_operator(get(&format!("/api/applications/{long}"))))
            .await,
        StatusCode::NOT_FOUND,
        "application_not_found",
    )
    .await;
    assert!(body["error"].as_str().unwrap().len() < 400, "{body}");
    let response = app
        .send(as_operator(delete("/api/applications/app-1/devices/ghost")))
        .await;
    refused(response, StatusCode::NOT_FOUND, "device_not_found").await;
    assert!(
        app.fake.edits().is_empty(),
        "a 404 is answered before any edit is sent"
    );
    assert_eq!(
        last_audit(&app),
        (
            "device_crud_rejected".into(),
            "application_id=app-1 device_id=ghost reason=device_not_found".into()
        )
    );
}

#[tokio::test]
async fn reads_and_edits_need_credentials() {
    let app = App::new();
    let response = app.send(get("/api/applications")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .send(post_json(
            "/api/applications",
            r#"{"application_id":"a2","application_name":"Two"}"#,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(app.fake.edits().is_empty());
}

#[tokio::test]
async fn an_application_is_created_renamed_and_deleted() {
    let app = App::new();
    let response = app
        .send(as_operator(post_json(
            "/api/applications",
            r#"{"application_id":"field 2","application_name":"Field"}"#,
        )))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        "/api/applications/field%202"
    );
    assert_eq!(
        json_body(response).await,
        json!({"application_id": "field 2", "application_name": "Field", "device_count": 0,
            "generation": 2, "class": "topology"})
    );
    assert_eq!(
        last_audit(&app),
        (
            "application_created".into(),
            "application_id=field 2 generation=2".into()
        )
    );
    let list = json_body(app.send(as_operator(get("/api/applications"))).await).await;
    assert_eq!(list["applications"][1]["application_id"], "field 2");
    assert_eq!(list["generation"], 2);

    let response = app
        .send(as_operator(put_json(
            "/api/applications/field%202",
            r#"{"application_id":"field 2","application_name":"North field"}"#,
        )))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["application_name"], "North field");
    assert_eq!(body["generation"], 3);
    assert_eq!(last_audit(&app).0, "application_updated");

    let response = app
        .send(as_operator(delete("/api/applications/field%202")))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(body_text(response).await, "");
    assert_eq!(
        last_audit(&app),
        (
            "application_deleted".into(),
            "application_id=field 2 generation=4".into()
        )
    );
    assert_eq!(
        app.fake.edits(),
        vec![
            ConfigEdit::CreateApplication {
                application_id: "field 2".into(),
                application_name: "Field".into()
            },
            ConfigEdit::UpdateApplication {
                application_id: "field 2".into(),
                application_name: "North field".into()
            },
            ConfigEdit::DeleteApplication {
                application_id: "field 2".into()
            },
        ]
    );
}

#[tokio::test]
async fn application_preconditions_are_checked_before_anything_is_sent() {
    let app = App::new();
    let response = app
        .send(as_operator(post_json(
            "/api/applications",
            r#"{"application_id":"app-1","application_name":"Again"}"#,
        )))
        .await;
    refused(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        last_audit(&app),
        (
            "application_crud_rejected".into(),
            "application_id=app-1 reason=conflict".into()
        )
    );
    let response = app
        .send(as_operator(put_json(
            "/api/applications/app-1",
            r#"{"application_id":"app-2","application_name":"Renamed"}"#,
        )))
        .await;
    let body = refused(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "immutable_field",
    )
    .await;
    assert_eq!(body["field"], "application_id");
    // Still has a device (and is the only one).
    let response = app
        .send(as_operator(delete("/api/applications/app-1")))
        .await;
    let body = refused(response, StatusCode::CONFLICT, "conflict").await;
    assert!(body["error"].as_str().unwrap().contains("device"), "{body}");
    assert!(app.fake.edits().is_empty());
}

#[tokio::test]
async fn a_body_that_does_not_parse_names_the_field_at_fault() {
    let app = App::new();
    let body = json!({"device_id": "probe-1", "device_name": "Probe",
        "read_metric": [metric("a", "Float"), metric("b", "Double")]});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &body.to_string(),
        )))
        .await;
    let answer = refused(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(answer["field"], "read_metric[1].metric_type");
    let (event, detail) = last_audit(&app);
    assert_eq!(event, "device_crud_rejected");
    assert_eq!(detail, "application_id=app-1 reason=validation");

    for (text, field) in [
        ("{", "."),
        (r#"{"application_name":"x"}"#, "application_id"),
        (
            r#"{"application_id":7,"application_name":"x"}"#,
            "application_id",
        ),
        (
            r#"{"application_id":"a","application_name":"x","extra":true}"#,
            "extra",
        ),
    ] {
        let response = app
            .send(as_operator(post_json("/api/applications", text)))
            .await;
        let answer = refused(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(answer["field"], field, "{text}: {answer}");
    }
    assert!(app.fake.edits().is_empty());
}

#[tokio::test]
async fn lists_and_strings_are_bounded() {
    let mut config = config();
    config.web.max_body_bytes = 1 << 20;
    let app = App::with_config(config);
    let metrics: Vec<Value> = (0..1001).map(|i| metric(&format!("m{i}"), "Int")).collect();
    let body = json!({"device_id": "big", "device_name": "Big", "read_metric": metrics});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &body.to_string(),
        )))
        .await;
    let answer = refused(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(answer["field"], "read_metric");

    let commands: Vec<Value> = (0..257).map(|i| command(&format!("c{i}"), 1)).collect();
    let body = json!({"device_id": "big", "device_name": "Big", "command": commands});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &body.to_string(),
        )))
        .await;
    let answer = refused(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(answer["field"], "command");

    let long = "x".repeat(257);
    let body = json!({"device_id": "d", "device_name": long,
        "read_metric": [metric(&long, "Int")]});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &body.to_string(),
        )))
        .await;
    let answer = refused(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let fields: Vec<&str> = answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "device_name",
            "read_metric[0].metric_name",
            "read_metric[0].chirpstack_metric_name"
        ]
    );
    // Exactly at the bound is fine.
    let body = json!({"device_id": "d", "device_name": "x".repeat(256)});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &body.to_string(),
        )))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.fake.edits().len(), 1);
}

#[tokio::test]
async fn a_device_is_created_updated_with_its_commands_kept_and_deleted() {
    let app = App::new();
    let body = json!({"device_id": "probe-1", "device_name": "Probe",
        "stale_threshold_seconds": 900,
        "read_metric": [metric("moisture", "Float"), metric("battery", "Int")],
        "command": [command("interval", 12)]});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &body.to_string(),
        )))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        "/api/applications/app-1/devices/probe-1"
    );
    let created = json_body(response).await;
    assert_eq!(created["device_id"], "probe-1");
    assert_eq!(created["stale_threshold_seconds"], 900);
    assert_eq!(created["read_metric"][1]["metric_name"], "battery");
    assert_eq!(created["command"][0]["command_port"], 12);
    assert_eq!(created["class"], "topology");
    assert_eq!(created["generation"], 2);
    assert_eq!(
        last_audit(&app),
        (
            "device_created".into(),
            "application_id=app-1 device_id=probe-1 generation=2".into()
        )
    );
    // The console's device list comes from the same live configuration.
    let devices = json_body(app.send(as_operator(get("/api/devices"))).await).await;
    assert!(
        devices.to_string().contains("probe-1"),
        "the new device is listed: {devices}"
    );

    // A device id is unique across applications.
    let again = json!({"device_id": "valve-1", "device_name": "Dup"});
    let response = app
        .send(as_operator(post_json(
            "/api/applications/app-1/devices",
            &again.to_string(),
        )))
        .await;
    refused(response, StatusCode::CONFLICT, "conflict").await;

    let update = json!({"device_id": "probe-1", "device_name": "Probe (north)",
        "read_metric": [metric("moisture", "Float")]});
    let response = app
        .send(as_operator(put_json(
            "/api/applications/app-1/devices/probe-1",
            &update.to_string(),
        )))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated = json_body(response).await;
    assert_eq!(updated["device_name"], "Probe (north)");
    assert!(
        updated.get("stale_threshold_seconds").is_none(),
        "{updated}"
    );
    assert_eq!(updated["read_metric"].as_array().unwrap().len(), 1);
    assert_eq!(
        updated["command"][0]["command_name"], "interval",
        "commands kept"
    );
    let stored = json_body(
        app.send(as_operator(get("/api/applications/app-1/devices/probe-1")))
            .await,
    )
    .await;
    assert_eq!(stored["command"], updated["command"]);
    assert_eq!(last_audit(&app).0, "device_updated");

    let renamed_id = json!({"device_id": "probe-2", "device_name": "Probe"});
    let response = app
        .send(as_operator(put_json(
            "/api/applications/app-1/devices/probe-1",
            &renamed_id.to_string(),
        )))
        .await;
    let body = refused(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "immutable_field",
    )
    .await;
    assert_eq!(body["field"], "device_id");

    let response = app
        .send(as_operator(delete(
            "/api/applications/app-1/devices/probe-1",
        )))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(last_audit(&app).0, "device_deleted");
    let response = app
        .send(as_operator(get("/api/applications/app-1/devices/probe-1")))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.fake.edits().len(), 3);
}

#[tokio::test]
async fn a_command_is_created_replaced_and_deleted() {
    let app = App::new();
    let base = "/api/applications/app-1/devices/valve-1/commands";
    let response = app
        .send(as_operator(post_json(
            base,
            &command("setpoint", 20).to_string(),
        )))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], format!("{base}/setpoint"));
    let created = json_body(response).await;
    assert_eq!(created["command_name"], "setpoint");
    assert_eq!(created["command_confirmed"], false, "default filled in");
    assert_eq!(
        last_audit(&app),
        (
            "command_created".into(),
            "application_id=app-1 device_id=valve-1 command_name=setpoint generation=2".into()
        )
    );
    let response = app
        .send(as_operator(post_json(
            base,
            &command("setpoint", 21).to_string(),
        )))
        .await;
    refused(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(last_audit(&app).0, "command_crud_rejected");

    let response = app
        .send(as_operator(put_json(
            &format!("{base}/setpoint"),
            &command("other", 21).to_string(),
        )))
        .await;
    let body = refused(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "immutable_field",
    )
    .await;
    assert_eq!(body["field"], "command_name");

    let response = app
        .send(as_operator(put_json(
            &format!("{base}/setpoint"),
            &command("setpoint", 21).to_string(),
        )))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["command_port"], 21);
    assert_eq!(last_audit(&app).0, "command_updated");

    let response = app
        .send(as_operator(put_json(
            &format!("{base}/ghost"),
            &command("ghost", 21).to_string(),
        )))
        .await;
    refused(response, StatusCode::NOT_FOUND, "command_not_found").await;

    let response = app
        .send(as_operator(delete(&format!("{base}/setpoint"))))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(last_audit(&app).0, "command_deleted");
    let commands = json_body(app.send(as_operator(get(base))).await).await;
    assert_eq!(commands["commands"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn mutations_pass_the_csrf_rules_and_refusals_are_audited_per_subject() {
    let app = App::new();
    // No Origin.
    let mut request = as_operator(post_json(
        "/api/applications",
        r#"{"application_id":"a2","application_name":"Two"}"#,
    ));
    request.headers_mut().remove("origin");
    assert_eq!(app.send(request).await.status(), StatusCode::FORBIDDEN);
    let (event, detail) = last_audit(&app);
    assert_eq!(
        (event.as_str(), detail.as_str()),
        ("application_crud_rejected", "reason=csrf")
    );

    // DELETE needs the JSON content type too.
    let mut request = as_operator(delete("/api/applications/app-1/devices/valve-1"));
    request.headers_mut().remove("content-type");
    assert_eq!(
        app.send(request).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        last_audit(&app),
        (
            "device_crud_rejected".into(),
            "application_id=app-1 device_id=valve-1 reason=csrf".into()
        )
    );

    // A cookie session needs its CSRF token.
    let (session, token) = app.sign_in().await;
    let path = "/api/applications/app-1/devices/valve-1/commands/level";
    let response = app.send(cookie(delete(path), &session)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (event, _) = last_audit(&app);
    assert_eq!(event, "command_crud_rejected");
    assert!(app.fake.edits().is_empty());

    let response = app
        .send(with_header(
            cookie(delete(path), &session),
            "x-csrf-token",
            &token,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.fake.edits().len(), 1);
}

#[tokio::test]
async fn refusals_of_the_configuration_owner_keep_their_status_and_reason() {
    let app = App::new();
    let cases = [
        (
            EditError::AmbientDrift,
            StatusCode::CONFLICT,
            "ambient_drift",
        ),
        (
            EditError::Disabled("the directory is not writable".into()),
            StatusCode::SERVICE_UNAVAILABLE,
            "editing_disabled",
        ),
        (
            EditError::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            EditError::ReloadFailed("opcua.port".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload_failed",
        ),
        (
            EditError::Validation {
                problems: vec![FieldProblem {
                    field: "read_metric[0].metric_name".into(),
                    message: "must not be empty".into(),
                }],
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
    ];
    for (error, status, reason) in cases {
        app.fake.refuse_edits_with(error);
        let response = app
            .send(as_operator(put_json(
                "/api/applications/app-1",
                r#"{"application_name":"Renamed"}"#,
            )))
            .await;
        let body = refused(response, status, reason).await;
        let (event, detail) = last_audit(&app);
        assert_eq!(event, "application_crud_rejected");
        assert_eq!(detail, format!("application_id=app-1 reason={reason}"));
        if reason == "validation" {
            assert_eq!(body["field"], "read_metric[0].metric_name");
            assert_eq!(
                body["problems"],
                json!([{"field": "read_metric[0].metric_name", "message": "must not be empty"}])
            );
        }
    }
    // Nothing was applied: the live name is unchanged.
    let one = json_body(app.send(as_operator(get("/api/applications/app-1"))).await).await;
    assert_eq!(one["application_name"], "Plant");
}

#[tokio::test]
async fn a_reload_from_the_console_answers_its_generation_or_why_not() {
    let app = App::new();
    for body in ["", "{}"] {
        let response = app
            .send(as_operator(post_json("/api/config/reload", body)))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "body {body:?}");
        assert_eq!(
            json_body(response).await,
            json!({"generation": 1, "changed_knobs": []})
        );
    }
    assert_eq!(
        last_audit(&app),
        (
            "config_reload_attempted".into(),
            "trigger=web generation=1".into()
        )
    );
    let response = app
        .send(as_operator(post_json(
            "/api/config/reload",
            r#"{"force":true}"#,
        )))
        .await;
    refused(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(
        app.fake.reloads.load(std::sync::atomic::Ordering::SeqCst),
        2
    );

    app.fake.refuse_edits_with(EditError::RestartRequired {
        knob: "web.port".into(),
    });
    let response = app
        .send(as_operator(post_json("/api/config/reload", "")))
        .await;
    let body = refused(response, StatusCode::CONFLICT, "restart_required").await;
    assert_eq!(body["field"], "web.port");
    assert_eq!(
        last_audit(&app),
        (
            "config_reload_attempted".into(),
            "trigger=web reason=restart_required".into()
        )
    );
    let response = app.send(as_operator(get("/api/config"))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_owner_makes_reads_of_the_editing_state_503() {
    let app = App::new();
    app.fake.refuse_edits_with(EditError::Unavailable);
    let response = app.send(as_operator(get("/api/config"))).await;
    refused(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    // The tree itself is the live configuration and stays readable.
    let response = app.send(as_operator(get("/api/applications/app-1"))).await;
    assert_eq!(response.status(), StatusCode::OK);
}
