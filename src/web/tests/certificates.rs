//! The client-certificate routes over real files (the fake gateway's `[opcua].pki_dir` is a
//! temp dir): shapes, trust / reject / delete with their statuses, audit events, the
//! thumbprint check, and the CSRF rules that every mutation passes.

use axum::http::StatusCode;
use ua::crypto::{CertificateStore, X509};

use super::support::*;
use crate::security::client_certificates::tests::certificate;

struct Console {
    app: App,
    pki: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A console whose PKI directory holds `cert` in `rejected/`, as the server leaves it.
fn console_with_rejected(cert: &X509) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    crate::security::ensure_pki_layout(&pki).unwrap();
    std::fs::write(
        pki.join("rejected")
            .join(CertificateStore::cert_file_name(cert)),
        cert.to_der().unwrap(),
    )
    .unwrap();
    let mut config = config();
    config.opcua.pki_dir = pki.clone();
    Console {
        app: App::with_config(config),
        pki,
        _dir: dir,
    }
}

fn thumbprint(cert: &X509) -> String {
    cert.thumbprint().as_hex_string()
}

fn in_dir(pki: &std::path::Path, dir: &str) -> usize {
    std::fs::read_dir(pki.join(dir)).unwrap().count()
}

#[tokio::test]
async fn the_list_shows_each_certificate_with_its_state_and_validity() {
    let cert = certificate("Route list", 30);
    let console = console_with_rejected(&cert);
    let response = console
        .app
        .send(as_operator(get("/api/certificates")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["truncated"], false);
    let listed = &body["certificates"][0];
    assert_eq!(listed["thumbprint"], thumbprint(&cert));
    assert_eq!(listed["state"], "rejected");
    assert!(listed["subject"]
        .as_str()
        .unwrap()
        .contains("CN=Route list"));
    assert_eq!(listed["application_uri"], "urn:opcgw:scada-client");
    let stamp = listed["not_after"].as_str().unwrap();
    assert_eq!(stamp.len(), "2026-11-29T21:40:01.123Z".len(), "{stamp}");
    assert!(listed["not_before"].is_string());
    assert_eq!(listed["expired"], false);
    assert_eq!(listed["file"], CertificateStore::cert_file_name(&cert));
    assert!(listed.get("error").is_none() && listed.get("warning").is_none());
    // Signing in is required.
    let response = console.app.send(get("/api/certificates")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn trust_reject_and_delete_move_the_file_answer_their_statuses_and_are_audited() {
    let cert = certificate("Route actions", 30);
    let console = console_with_rejected(&cert);
    let app = &console.app;
    let (session, csrf) = app.sign_in().await;
    let send = |method: &str, path: String| {
        with_header(
            cookie(request_json(method, &path, ""), &session),
            "x-csrf-token",
            &csrf,
        )
    };
    let tp = thumbprint(&cert);

    let response = app
        .send(send("POST", format!("/api/certificates/{tp}/trust")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(
        (body["state"].clone(), body["thumbprint"].clone()),
        ("trusted".into(), tp.clone().into())
    );
    assert_eq!(
        (
            in_dir(&console.pki, "trusted"),
            in_dir(&console.pki, "rejected")
        ),
        (1, 0)
    );
    let audit = json_body(app.send(as_operator(get("/api/audit"))).await).await;
    let newest = &audit["events"][0];
    assert_eq!(newest["event"], "pki_certificate_trusted");
    assert_eq!(newest["source_ip"], "127.0.0.1");
    assert_eq!(newest["user"], USER);
    let detail = newest["detail"].as_str().unwrap();
    assert!(
        detail.contains(&tp) && detail.contains("CN=Route actions"),
        "{detail}"
    );

    // An upper-case thumbprint names the same certificate.
    let upper = tp.to_ascii_uppercase();
    let response = app
        .send(send("POST", format!("/api/certificates/{upper}/trust")))
        .await;
    assert_error(
        response,
        StatusCode::CONFLICT,
        &format!("the certificate with thumbprint {tp} is already trusted"),
    )
    .await;

    let response = app
        .send(send("POST", format!("/api/certificates/{tp}/reject")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["state"], "rejected");
    assert_eq!(
        (
            in_dir(&console.pki, "trusted"),
            in_dir(&console.pki, "rejected")
        ),
        (0, 1)
    );

    let response = app
        .send(send("DELETE", format!("/api/certificates/{tp}")))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(in_dir(&console.pki, "rejected"), 0);
    let audit = json_body(app.send(as_operator(get("/api/audit"))).await).await;
    let events: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        &events[..3],
        [
            "pki_certificate_deleted",
            "pki_certificate_rejected",
            "pki_certificate_trusted"
        ]
    );

    let response = app
        .send(send("DELETE", format!("/api/certificates/{tp}")))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .send(send("POST", format!("/api/certificates/{tp}/trust")))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_malformed_thumbprint_is_refused_before_any_file_is_touched() {
    let cert = certificate("Route malformed", 30);
    let console = console_with_rejected(&cert);
    for bad in [
        "..%2F..%2Fown%2Fcert.der",
        "abc",
        "zz23456789abcdef0123456789abcdef01234567",
    ] {
        let response = console
            .app
            .send(as_operator(post_json(
                &format!("/api/certificates/{bad}/trust"),
                "",
            )))
            .await;
        let body = assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "thumbprint must be the 40 hexadecimal digits of the certificate's SHA-1 thumbprint",
        )
        .await;
        assert_eq!(body["field"], "thumbprint");
    }
    assert_eq!(in_dir(&console.pki, "rejected"), 1);
}

#[tokio::test]
async fn certificate_changes_pass_the_csrf_rules_of_every_mutation() {
    let cert = certificate("Route csrf", 30);
    let console = console_with_rejected(&cert);
    let path = format!("/api/certificates/{}/trust", thumbprint(&cert));
    let (session, _csrf) = console.app.sign_in().await;
    // A cookie session without its CSRF token.
    let response = console
        .app
        .send(cookie(post_json(&path, ""), &session))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Basic without an Origin.
    let mut request = as_operator(post_json(&path, ""));
    request.headers_mut().remove("origin");
    assert_eq!(
        console.app.send(request).await.status(),
        StatusCode::FORBIDDEN
    );
    // Not JSON.
    let mut request = as_operator(post_json(&path, ""));
    request
        .headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(
        console.app.send(request).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(in_dir(&console.pki, "trusted"), 0, "nothing moved");
    // The same request, well formed, goes through.
    let response = console.app.send(as_operator(post_json(&path, ""))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_file_that_is_not_a_certificate_cannot_be_trusted_and_disk_failures_stay_in_the_log() {
    let cert = certificate("Route failures", 30);
    let console = console_with_rejected(&cert);
    std::fs::write(console.pki.join("rejected/junk.der"), b"junk").unwrap();
    let listed = json_body(
        console
            .app
            .send(as_operator(get("/api/certificates")))
            .await,
    )
    .await;
    let junk = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "junk.der")
        .unwrap()
        .clone();
    assert!(
        junk["error"].as_str().unwrap().contains("not an X.509"),
        "{junk}"
    );
    assert_eq!(junk["subject"], serde_json::Value::Null);
    let junk_tp = junk["thumbprint"].as_str().unwrap();
    let response = console
        .app
        .send(as_operator(post_json(
            &format!("/api/certificates/{junk_tp}/trust"),
            "",
        )))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // trusted/ is not a directory: 500 with a generic text, the path only in the log.
    let trusted = console.pki.join("trusted");
    std::fs::remove_dir(&trusted).unwrap();
    std::fs::write(&trusted, "").unwrap();
    let response = console
        .app
        .send(as_operator(post_json(
            &format!("/api/certificates/{}/trust", thumbprint(&cert)),
            "",
        )))
        .await;
    let body = assert_error(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the PKI directory could not be read or changed; the gateway log says why",
    )
    .await;
    assert!(!body.to_string().contains("pki"), "{body}");
}
