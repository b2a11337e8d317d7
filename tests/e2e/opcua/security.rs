//! Endpoints and users: passwords on every endpoint, audit, anonymous and clear passwords only on request, limits.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_accepts_the_password_and_refuses_a_wrong_one_with_an_audit_event() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.endpoints = opcgw::config::OPCUA_ENDPOINT_IDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    config.opcua.max_connections = 50;
    // The test client's certificate is not in pki/trusted.
    config.opcua.trust_client_cert = true;
    let gw = Gateway::start(config.clone(), dir).await;
    // Wait for the server.
    gw.client().await.close().await;
    let before = crate::logs::events("opcua_auth_failed", "").len();
    let wrong = "not-the-password-0000";
    for id in opcgw::config::OPCUA_ENDPOINT_IDS {
        let (policy, mode) = opcgw::opcua::server::endpoint_security(id).unwrap();
        let ok = connect(gw.port, policy, mode, USER, PASSWORD).await;
        assert!(ok.is_ok(), "{id}: right password refused: {:?}", ok.err());
        ok.unwrap().close().await;
        let refused = connect(gw.port, policy, mode, USER, wrong).await;
        let status = refused
            .err()
            .unwrap_or_else(|| panic!("{id}: wrong password accepted"));
        assert!(
            matches!(
                status,
                StatusCode::BadUserAccessDenied | StatusCode::BadIdentityTokenRejected
            ),
            "{id}: {status}"
        );
        let intruder = connect(gw.port, policy, mode, "mallory\nadmin", PASSWORD).await;
        assert!(intruder.is_err(), "{id}: wrong user accepted");
    }
    let events = crate::logs::events("opcua_auth_failed", "");
    let new = &events[before..];
    assert!(
        new.len() >= 2 * opcgw::config::OPCUA_ENDPOINT_IDS.len(),
        "one audit event per refusal: {new:#?}"
    );
    assert!(new
        .iter()
        .any(|e| e.contains("password_mismatch") && e.contains(USER)));
    assert!(new
        .iter()
        .any(|e| e.contains("user_mismatch") && e.contains("mallory\\nadmin")));
    let text = crate::logs::text();
    assert!(
        !text.contains(wrong) && !text.contains(PASSWORD),
        "a password reached the log"
    );

    // The None endpoint advertises an encrypted password policy.
    let endpoints = ua_client::endpoints(gw.port).await;
    let none = endpoints
        .iter()
        .find(|e| e.security_mode == MessageSecurityMode::None)
        .expect("None endpoint");
    let token = none
        .user_identity_tokens
        .as_ref()
        .unwrap()
        .iter()
        .find(|t| t.token_type == ua::types::UserTokenType::UserName)
        .expect("user name token policy");
    assert_eq!(
        token.security_policy_uri.as_ref(),
        SecurityPolicy::Basic256Sha256.to_uri()
    );
    assert!(
        !none
            .user_identity_tokens
            .as_ref()
            .unwrap()
            .iter()
            .any(|t| t.token_type == ua::types::UserTokenType::Anonymous),
        "anonymous is off by default"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_sessions_and_clear_passwords_only_when_the_operator_allows_them() {
    use ua::client::IdentityToken;
    use ua::types::UserTokenType;
    let none = (SecurityPolicy::None, MessageSecurityMode::None);
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;

    // Defaults: anonymous refused (and audited), the password policy encrypts.
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config, dir).await;
    gw.client().await.close().await;
    // (async-opcua's client does not even try: no anonymous policy is advertised. The Python
    // client, which tries anyway, is refused by the server: opcua_python.rs.)
    let refused =
        ua_client::connect_as(gw.port, none.0, none.1, IdentityToken::new_anonymous()).await;
    assert!(refused.is_err(), "an anonymous session was accepted");
    let endpoints = ua_client::endpoints(gw.port).await;
    assert!(endpoints.iter().all(|e| e
        .user_identity_tokens
        .iter()
        .flatten()
        .all(|t| t.token_type != UserTokenType::Anonymous)));
    gw.stop().await;

    // Allowed: anonymous gets in; the None endpoint takes the password in clear.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.allow_anonymous = true;
    config.opcua.allow_cleartext_password = true;
    let gw = Gateway::start(config, dir).await;
    gw.client().await.close().await;
    let anonymous = ua_client::connect_as(gw.port, none.0, none.1, IdentityToken::new_anonymous())
        .await
        .expect("anonymous allowed");
    anonymous.close().await;
    let endpoints = ua_client::endpoints(gw.port).await;
    let tokens = endpoints
        .iter()
        .find(|e| e.security_mode == MessageSecurityMode::None)
        .and_then(|e| e.user_identity_tokens.clone())
        .unwrap();
    assert!(tokens
        .iter()
        .any(|t| t.token_type == UserTokenType::Anonymous));
    let user = tokens
        .iter()
        .find(|t| t.token_type == UserTokenType::UserName)
        .unwrap();
    assert!(
        user.security_policy_uri.is_null() || user.security_policy_uri.is_empty(),
        "{user:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_limit_refuses_one_more_session() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.max_connections = 2;
    config.opcua.max_subscriptions_per_session = 1;
    config.opcua.max_monitored_items_per_sub = 2;
    let ids = metric_ids(&config);
    let gw = Gateway::start(config, dir).await;
    let first = gw.client().await;
    // Subscriptions per session and monitored items per subscription are capped too.
    let nodes: Vec<NodeId> = ids.iter().take(3).map(|id| first.id(id)).collect();
    let items = first.try_subscribe(&nodes).await;
    assert!(
        matches!(
            items.as_deref(),
            Err(&StatusCode::BadTooManyMonitoredItems)
                | Ok([
                    StatusCode::Good,
                    StatusCode::Good,
                    StatusCode::BadTooManyMonitoredItems
                ])
        ),
        "{items:?}"
    );
    assert_eq!(
        first.try_subscribe(&nodes[..1]).await,
        Err(StatusCode::BadTooManySubscriptions)
    );
    let second = gw.client().await;
    let third = connect(
        gw.port,
        SecurityPolicy::None,
        MessageSecurityMode::None,
        USER,
        PASSWORD,
    )
    .await;
    assert_eq!(third.err(), Some(StatusCode::BadTooManySessions));
    assert!(
        crate::logs::text().contains("event=\"opcua_limits_configured\"")
            || crate::logs::text().contains("opcua_limits_configured")
    );
    first.close().await;
    // A freed slot is usable again.
    let again = gw.client().await;
    again.close().await;
    second.close().await;
    gw.stop().await;
}
