//! Who may open an OPC UA session: the configured user name and password (HMAC-SHA-256
//! digests under a per-process key, constant-time compare), and anonymous only when enabled.
//! Every refusal is an `event="opcua_auth_failed"` warning with the sanitised user name, the
//! client's address and the endpoint, never the password; its answer is held back by the
//! per-address [`LoginThrottle`]. A session refused at the session limit is an
//! `event="opcua_session_count_at_limit"` warning with the client's address.

use std::net::SocketAddr;
use std::time::Instant;

use async_trait::async_trait;
use tracing::warn;
use ua::crypto::SecurityPolicy;
use ua::server::authenticator::{user_pass_security_policy_id, AuthManager, Password, UserToken};
use ua::server::ServerEndpoint;
use ua::types::{Error, StatusCode, UAString, UserTokenPolicy, UserTokenType};

use crate::security::sanitize_for_log;
use crate::security::CredentialVerifier;
use crate::security::LoginThrottle;

const POLICY_ID_ANONYMOUS: &str = "anonymous";

pub struct GatewayAuth {
    verifier: CredentialVerifier,
    allow_anonymous: bool,
    throttle: LoginThrottle,
}

impl GatewayAuth {
    pub fn new(user: &str, password: &str, allow_anonymous: bool) -> Self {
        Self {
            verifier: CredentialVerifier::new(user, password),
            allow_anonymous,
            throttle: LoginThrottle::default(),
        }
    }

    /// Logs a refusal and holds the answer back for as long as the source's failures say.
    async fn refuse(
        &self,
        endpoint: &ServerEndpoint,
        peer: Option<SocketAddr>,
        user: &str,
        reason: &str,
    ) {
        let delay = self.throttle.failed(peer.map(|p| p.ip()), Instant::now());
        crate::metrics::metrics()
            .auth_failures
            .get_or_create(&[("surface", "opcua")])
            .inc();
        warn!(
            event = "opcua_auth_failed",
            user = %user,
            reason,
            source = %source_label(peer),
            endpoint = %endpoint_label(endpoint),
            delay_ms = delay.as_millis() as u64,
            "OPC UA authentication failed"
        );
        tokio::time::sleep(delay).await;
    }
}

fn endpoint_label(endpoint: &ServerEndpoint) -> String {
    format!(
        "{} {} {}",
        endpoint.path, endpoint.security_policy, endpoint.security_mode
    )
}

fn source_label(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(
        || "unknown".to_string(),
        |p| p.ip().to_canonical().to_string(),
    )
}

#[async_trait]
impl AuthManager for GatewayAuth {
    async fn authenticate_anonymous_token(&self, endpoint: &ServerEndpoint) -> Result<(), Error> {
        self.authenticate_anonymous_token_from(endpoint, None).await
    }

    async fn authenticate_anonymous_token_from(
        &self,
        endpoint: &ServerEndpoint,
        peer: Option<SocketAddr>,
    ) -> Result<(), Error> {
        if self.allow_anonymous {
            return Ok(());
        }
        self.refuse(endpoint, peer, "<anonymous>", "anonymous_disabled")
            .await;
        Err(Error::new(
            StatusCode::BadIdentityTokenRejected,
            "anonymous sessions are disabled",
        ))
    }

    async fn authenticate_username_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &Password,
    ) -> Result<UserToken, Error> {
        self.authenticate_username_identity_token_from(endpoint, username, password, None)
            .await
    }

    async fn authenticate_username_identity_token_from(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &Password,
        peer: Option<SocketAddr>,
    ) -> Result<UserToken, Error> {
        match self.verifier.verify(username, password.get()) {
            Ok(()) => {
                self.throttle.succeeded(peer.map(|p| p.ip()));
                Ok(UserToken(username.to_string()))
            }
            Err(reason) => {
                self.refuse(
                    endpoint,
                    peer,
                    &sanitize_for_log(username, 64),
                    reason.as_str(),
                )
                .await;
                // The library logs this text: no user name in it.
                Err(Error::new(
                    StatusCode::BadUserAccessDenied,
                    "user name or password rejected",
                ))
            }
        }
    }

    /// A token refused before its credentials were checked (malformed, undecryptable, wrong
    /// policy): counted and slowed like a wrong password, so floods of them gain nothing.
    async fn identity_token_rejected(
        &self,
        endpoint: &ServerEndpoint,
        peer: Option<SocketAddr>,
        error: &Error,
    ) {
        let reason = format!("invalid_token:{}", error.status());
        self.refuse(endpoint, peer, "<unchecked>", &reason).await;
    }

    /// Every session refused at `[opcua].max_connections`, with its source: a port scan or a
    /// client stuck in a reconnect loop shows up by address, at any log level up to warn.
    fn session_refused(&self, peer: Option<SocketAddr>, current: usize, limit: usize) {
        crate::metrics::metrics().opcua_sessions_refused.inc();
        warn!(
            event = "opcua_session_count_at_limit",
            source_ip = %source_label(peer),
            current,
            limit,
            "OPC UA session limit reached: the new session gets BadTooManySessions"
        );
    }

    fn user_token_policies(&self, endpoint: &ServerEndpoint) -> Vec<UserTokenPolicy> {
        let mut policies = Vec::with_capacity(2);
        if self.allow_anonymous {
            policies.push(UserTokenPolicy {
                policy_id: UAString::from(POLICY_ID_ANONYMOUS),
                token_type: UserTokenType::Anonymous,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        // On an endpoint without channel security, name the policy that encrypts the password
        // (the endpoint's own policy applies otherwise); clients then encrypt it with the
        // server certificate.
        let password_policy = endpoint.password_security_policy();
        let security_policy_uri = if endpoint.security_policy() == SecurityPolicy::None
            && password_policy != SecurityPolicy::None
        {
            UAString::from(password_policy.to_uri())
        } else {
            UAString::null()
        };
        policies.push(UserTokenPolicy {
            policy_id: user_pass_security_policy_id(endpoint),
            token_type: UserTokenType::UserName,
            issued_token_type: UAString::null(),
            issuer_endpoint_url: UAString::null(),
            security_policy_uri,
        });
        policies
    }
}
