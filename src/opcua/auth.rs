//! Who may open an OPC UA session: the configured user name and password (HMAC-SHA-256
//! digests under a per-process key, constant-time compare), and anonymous only when enabled.
//! Every refusal is an `event="opcua_auth_failed"` warning with the sanitised user name and
//! the endpoint, never the password.

use async_trait::async_trait;
use opcua::crypto::SecurityPolicy;
use opcua::server::authenticator::{
    user_pass_security_policy_id, AuthManager, Password, UserToken,
};
use opcua::server::ServerEndpoint;
use opcua::types::{Error, StatusCode, UAString, UserTokenPolicy, UserTokenType};
use tracing::warn;

use crate::security::sanitize_for_log;
use crate::security::CredentialVerifier;

const POLICY_ID_ANONYMOUS: &str = "anonymous";

/// A refused login answers only after this long, so guessing passwords is slow (at most
/// `max_connections` guesses in flight).
pub const AUTH_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(300);

pub struct GatewayAuth {
    verifier: CredentialVerifier,
    allow_anonymous: bool,
}

impl GatewayAuth {
    pub fn new(user: &str, password: &str, allow_anonymous: bool) -> Self {
        Self {
            verifier: CredentialVerifier::new(user, password),
            allow_anonymous,
        }
    }
}

fn endpoint_label(endpoint: &ServerEndpoint) -> String {
    format!(
        "{} {} {}",
        endpoint.path, endpoint.security_policy, endpoint.security_mode
    )
}

#[async_trait]
impl AuthManager for GatewayAuth {
    async fn authenticate_anonymous_token(&self, endpoint: &ServerEndpoint) -> Result<(), Error> {
        if self.allow_anonymous {
            return Ok(());
        }
        warn!(
            event = "opcua_auth_failed",
            user = "<anonymous>",
            reason = "anonymous_disabled",
            endpoint = %endpoint_label(endpoint),
            "OPC UA authentication failed"
        );
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
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
        match self.verifier.verify(username, password.get()) {
            Ok(()) => Ok(UserToken(username.to_string())),
            Err(reason) => {
                warn!(
                    event = "opcua_auth_failed",
                    user = %sanitize_for_log(username, 64),
                    reason = reason.as_str(),
                    endpoint = %endpoint_label(endpoint),
                    "OPC UA authentication failed"
                );
                tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                // The library logs this text: no user name in it.
                Err(Error::new(
                    StatusCode::BadUserAccessDenied,
                    "user name or password rejected",
                ))
            }
        }
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
