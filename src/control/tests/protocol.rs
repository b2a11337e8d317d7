use serde_json::{json, Value};

use crate::control::{
    parse_auth, parse_request, Envelope, ErrorCode, ProtocolError, Request, Response,
    MAX_ARG_BYTES, MAX_COMMAND_LIST_LIMIT, MAX_HISTORY_LIMIT, MAX_ID_BYTES,
};

fn parsed(line: &str) -> Envelope {
    parse_request(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn refused(line: &str) -> ProtocolError {
    match parse_request(line) {
        Ok(envelope) => panic!("{line} parsed as {envelope:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_command_parses_with_its_arguments() {
    let cases: Vec<(&str, Request)> = vec![
        (r#"{"type":"status"}"#, Request::Status),
        (r#"{"type":"reload"}"#, Request::Reload),
        (r#"{"type":"devices"}"#, Request::Devices),
        (
            r#"{"type":"read","device":"tank-1"}"#,
            Request::Read {
                device: "tank-1".into(),
                metric: None,
            },
        ),
        (
            r#"{"type":"read","device":"tank-1","metric":"level"}"#,
            Request::Read {
                device: "tank-1".into(),
                metric: Some("level".into()),
            },
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"15m"}"#,
            Request::History {
                device: "d".into(),
                metric: "m".into(),
                since: "15m".into(),
                until: None,
                limit: None,
                aggregate: None,
                interval: None,
            },
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"2024-05-01T00:00:00Z","until":"2h","limit":10}"#,
            Request::History {
                device: "d".into(),
                metric: "m".into(),
                since: "2024-05-01T00:00:00Z".into(),
                until: Some("2h".into()),
                limit: Some(10),
                aggregate: None,
                interval: None,
            },
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"7d","aggregate":"time_average","interval":"1h"}"#,
            Request::History {
                device: "d".into(),
                metric: "m".into(),
                since: "7d".into(),
                until: None,
                limit: None,
                aggregate: Some("time_average".into()),
                interval: Some("1h".into()),
            },
        ),
        (
            r#"{"type":"command_send","device":"valve-3","command":"open","value":true}"#,
            Request::CommandSend {
                device: "valve-3".into(),
                command: "open".into(),
                value: json!(true),
            },
        ),
        (
            r#"{"type":"command_send","device":"v","command":"setpoint","value":21.5}"#,
            Request::CommandSend {
                device: "v".into(),
                command: "setpoint".into(),
                value: json!(21.5),
            },
        ),
        (
            r#"{"type":"command_list"}"#,
            Request::CommandList {
                device: None,
                limit: None,
            },
        ),
        (
            r#"{"type":"command_list","device":"v","limit":5}"#,
            Request::CommandList {
                device: Some("v".into()),
                limit: Some(5),
            },
        ),
        (
            r#"{"type":"log_level","filter":"info,opcgw=debug"}"#,
            Request::LogLevel {
                filter: "info,opcgw=debug".into(),
            },
        ),
    ];
    for (line, expected) in cases {
        let envelope = parsed(line);
        assert_eq!(envelope.request, expected, "{line}");
        assert_eq!(envelope.id, None);
        assert_eq!(envelope.request.name(), line.split('"').nth(3).unwrap());
    }
}

#[test]
fn every_request_round_trips_through_its_wire_form() {
    let requests = [
        Request::Status,
        Request::Reload,
        Request::Devices,
        Request::Read {
            device: "d".into(),
            metric: Some("m".into()),
        },
        Request::History {
            device: "d".into(),
            metric: "m".into(),
            since: "7d".into(),
            until: Some("now".into()),
            limit: Some(MAX_HISTORY_LIMIT),
            aggregate: None,
            interval: None,
        },
        Request::CommandSend {
            device: "d".into(),
            command: "c".into(),
            value: json!("on"),
        },
        Request::CommandList {
            device: None,
            limit: Some(1),
        },
        Request::LogLevel {
            filter: "warn".into(),
        },
    ];
    for (n, request) in requests.into_iter().enumerate() {
        let envelope = Envelope {
            id: Some(json!(n)),
            request,
        };
        let line = envelope.to_line().unwrap();
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert_eq!(parsed(&line), envelope);
        // serde's derive reads the same form back.
        let value: Value = serde_json::from_str(&line).unwrap();
        let request: Request = serde_json::from_value(value).unwrap();
        assert_eq!(request, envelope.request);
    }
}

#[test]
fn ids_are_echoed_in_errors_and_may_be_numbers_or_strings() {
    assert_eq!(parsed(r#"{"id":7,"type":"status"}"#).id, Some(json!(7)));
    assert_eq!(
        parsed(r#"{"id":"a-1","type":"status"}"#).id,
        Some(json!("a-1"))
    );
    assert_eq!(parsed(r#"{"id":null,"type":"status"}"#).id, None);

    let err = refused(r#"{"id":42,"type":"frobnicate"}"#);
    assert_eq!(
        (err.code, err.id.clone()),
        (ErrorCode::UnknownCommand, Some(json!(42)))
    );
    assert!(err.message.contains("`frobnicate`") && err.message.contains("command_send"));
    let err = refused(r#"{"id":"x","type":"read"}"#);
    assert_eq!(
        (err.code, err.id.clone()),
        (ErrorCode::BadRequest, Some(json!("x")))
    );

    let response = err.into_response();
    assert_eq!(response.id, Some(json!("x")));
    assert!(!response.ok);
}

#[test]
fn an_invalid_id_is_refused_and_not_echoed() {
    let long_id = format!(
        r#"{{"id":"{}","type":"status"}}"#,
        "i".repeat(MAX_ID_BYTES + 1)
    );
    for line in [
        r#"{"id":{"a":1},"type":"status"}"#,
        r#"{"id":[1],"type":"status"}"#,
        r#"{"id":true,"type":"status"}"#,
        long_id.as_str(),
    ] {
        let err = refused(line);
        assert_eq!(err.code, ErrorCode::BadRequest, "{line}");
        assert_eq!(err.id, None, "{line}");
        assert!(err.message.contains("`id`"), "{line}: {}", err.message);
    }
}

#[test]
fn frames_that_are_not_request_objects_are_bad_requests() {
    for line in [
        "",
        "not json",
        "[1,2]",
        "\"status\"",
        "42",
        "{\"type\":5}",
        "{}",
        "{\"id\":1",
    ] {
        let err = refused(line);
        assert_eq!(err.code, ErrorCode::BadRequest, "{line}");
    }
    assert!(refused("{}").message.contains("`type`"));
    assert_eq!(refused(r#"{"id":3}"#).id, Some(json!(3)));
}

#[test]
fn missing_or_invalid_arguments_are_bad_requests_naming_the_field() {
    let long = "x".repeat(MAX_ARG_BYTES + 1);
    let cases: Vec<(String, &str)> = vec![
        (r#"{"type":"read"}"#.into(), "device"),
        (r#"{"type":"read","device":""}"#.into(), "device"),
        (r#"{"type":"read","device":"  "}"#.into(), "device"),
        (r#"{"type":"read","device":5}"#.into(), "device"),
        (r#"{"type":"read","device":"a\nb"}"#.into(), "device"),
        (format!(r#"{{"type":"read","device":"{long}"}}"#), "device"),
        (
            r#"{"type":"read","device":"d","metric":[]}"#.into(),
            "metric",
        ),
        (
            r#"{"type":"history","device":"d","since":"1h"}"#.into(),
            "metric",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m"}"#.into(),
            "since",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"yesterday"}"#.into(),
            "since",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","until":"soon"}"#.into(),
            "until",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","aggregate":"median"}"#
                .into(),
            "aggregate",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","aggregate":"average","interval":"hourly"}"#
                .into(),
            "interval",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","limit":0}"#.into(),
            "limit",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","limit":-1}"#.into(),
            "limit",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","limit":2.5}"#.into(),
            "limit",
        ),
        (
            r#"{"type":"history","device":"d","metric":"m","since":"1h","limit":"10"}"#.into(),
            "limit",
        ),
        (
            format!(
                r#"{{"type":"history","device":"d","metric":"m","since":"1h","limit":{}}}"#,
                MAX_HISTORY_LIMIT + 1
            ),
            "limit",
        ),
        (
            r#"{"type":"command_send","device":"d","value":1}"#.into(),
            "command",
        ),
        (
            r#"{"type":"command_send","device":"d","command":"c"}"#.into(),
            "value",
        ),
        (
            r#"{"type":"command_send","device":"d","command":"c","value":null}"#.into(),
            "value",
        ),
        (
            r#"{"type":"command_send","device":"d","command":"c","value":[1]}"#.into(),
            "value",
        ),
        (
            r#"{"type":"command_send","device":"d","command":"c","value":{"a":1}}"#.into(),
            "value",
        ),
        (
            format!(r#"{{"type":"command_send","device":"d","command":"c","value":"{long}"}}"#),
            "value",
        ),
        (
            format!(
                r#"{{"type":"command_list","limit":{}}}"#,
                MAX_COMMAND_LIST_LIMIT + 1
            ),
            "limit",
        ),
        (r#"{"type":"command_list","device":false}"#.into(), "device"),
        (r#"{"type":"log_level"}"#.into(), "filter"),
        (r#"{"type":"log_level","filter":""}"#.into(), "filter"),
    ];
    for (line, field) in cases {
        let with_id = line.replacen('{', r#"{"id":9,"#, 1);
        let err = refused(&with_id);
        assert_eq!(err.code, ErrorCode::BadRequest, "{line}");
        assert_eq!(err.id, Some(json!(9)), "{line}");
        assert!(
            err.message.contains(&format!("`{field}`")),
            "{line}: {}",
            err.message
        );
    }
}

#[test]
fn unknown_fields_are_refused_so_typos_are_not_silently_ignored() {
    let err = refused(r#"{"id":1,"type":"command_list","limt":5}"#);
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(err.message.contains("`limt`"), "{}", err.message);
    assert_eq!(
        refused(r#"{"type":"status","verbose":true}"#).code,
        ErrorCode::BadRequest
    );
}

#[test]
fn an_auth_frame_after_authentication_is_a_bad_request() {
    let err = refused(r#"{"id":2,"type":"auth","token":"t"}"#);
    assert_eq!((err.code, err.id), (ErrorCode::BadRequest, Some(json!(2))));
}

#[test]
fn auth_frames_parse_and_anything_else_does_not() {
    assert_eq!(
        parse_auth(r#"{"type":"auth","token":"abc"}"#),
        Some((None, "abc".to_string()))
    );
    assert_eq!(
        parse_auth(r#"{"id":"c1","type":"auth","token":"abc"}"#),
        Some((Some(json!("c1")), "abc".to_string()))
    );
    assert_eq!(
        parse_auth(r#"{"type":"auth","token":""}"#),
        Some((None, String::new()))
    );
    for line in [
        r#"{"type":"status"}"#,
        r#"{"type":"auth"}"#,
        r#"{"type":"auth","token":123}"#,
        r#"{"type":"auth","token":"abc","extra":1}"#,
        r#"{"type":"AUTH","token":"abc"}"#,
        r#"{"id":{},"type":"auth","token":"abc"}"#,
        r#"["auth","abc"]"#,
        "abc",
        "",
    ] {
        assert_eq!(parse_auth(line), None, "{line}");
    }
}

#[test]
fn responses_have_the_documented_wire_form() {
    assert_eq!(
        Response::auth_failed().to_line(),
        "{\"ok\":false,\"error\":{\"code\":\"auth_failed\",\"message\":\"authentication failed\"}}\n"
    );
    assert_eq!(
        Response::authenticated(Some(json!(1))).to_line(),
        "{\"id\":1,\"ok\":true,\"result\":{\"authenticated\":true}}\n"
    );
    assert_eq!(
        Response::ok(Some(json!("a")), json!([1])).to_line(),
        "{\"id\":\"a\",\"ok\":true,\"result\":[1]}\n"
    );
    assert_eq!(
        Response::err(Some(json!(3)), ErrorCode::Unavailable, "storage is restarting").to_line(),
        "{\"id\":3,\"ok\":false,\"error\":{\"code\":\"unavailable\",\"message\":\"storage is restarting\"}}\n"
    );
    let codes = [
        (ErrorCode::AuthFailed, "auth_failed"),
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::UnknownCommand, "unknown_command"),
        (ErrorCode::Timeout, "timeout"),
        (ErrorCode::Unavailable, "unavailable"),
        (ErrorCode::Internal, "internal"),
    ];
    for (code, token) in codes {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(token));
        assert_eq!(code.as_str(), token);
        let back: ErrorCode = serde_json::from_value(json!(token)).unwrap();
        assert_eq!(back, code);
    }
    let line = Response::err(None, ErrorCode::Internal, "x").to_line();
    let back: Response = serde_json::from_str(&line).unwrap();
    assert_eq!(back, Response::err(None, ErrorCode::Internal, "x"));
}

#[test]
fn a_result_too_large_for_one_frame_becomes_an_error_naming_the_remedy() {
    let huge = json!("x".repeat(crate::control::MAX_RESPONSE_BYTES));
    let line = Response::ok(Some(json!(5)), huge).to_line();
    let response: Response = serde_json::from_str(&line).unwrap();
    assert_eq!(response.id, Some(json!(5)));
    let error = response.error.unwrap();
    assert_eq!(error.code, ErrorCode::BadRequest);
    assert!(error.message.contains("limit"));
}
