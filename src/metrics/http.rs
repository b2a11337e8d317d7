//! The metrics listener's routes: `GET /metrics` (Prometheus text format 0.0.4, or OpenMetrics
//! when the scraper's `Accept` asks for it), `GET /healthz` (liveness) and `GET /readyz`
//! (readiness). No credentials: the listener belongs on loopback or a management network
//! (docs/operations.md). The answers come from a [`Health`] the caller supplies: the library
//! knows no actors.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::metrics;

/// Longest wait for a health answer; a probe that hangs is a failed probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the probes ask of the running gateway.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// Alive: the gateway's supervisor answers (a wedged process should be restarted).
    async fn alive(&self) -> Result<(), String>;
    /// Ready: it serves (every actor running, OPC UA listening); the error says what is not.
    async fn ready(&self) -> Result<(), String>;
}

/// The routes, answering from `health`.
pub fn router(health: Arc<dyn Health>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn scrape(headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let encoded = if openmetrics {
        metrics().encode_openmetrics()
    } else {
        metrics().encode_prometheus()
    };
    match encoded {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                if openmetrics {
                    OPENMETRICS_TEXT
                } else {
                    PROMETHEUS_TEXT
                },
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response(),
    }
}

async fn healthz(State(health): State<Arc<dyn Health>>) -> Response {
    probe_answer(tokio::time::timeout(PROBE_TIMEOUT, health.alive()).await)
}

async fn readyz(State(health): State<Arc<dyn Health>>) -> Response {
    probe_answer(tokio::time::timeout(PROBE_TIMEOUT, health.ready()).await)
}

fn probe_answer(answer: Result<Result<(), String>, tokio::time::error::Elapsed>) -> Response {
    let (status, body) = match answer {
        Ok(Ok(())) => (StatusCode::OK, "ok\n".to_string()),
        Ok(Err(reason)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {} s\n", PROBE_TIMEOUT.as_secs()),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    struct Switch(AtomicBool);

    #[async_trait]
    impl Health for Switch {
        async fn alive(&self) -> Result<(), String> {
            Ok(())
        }
        async fn ready(&self) -> Result<(), String> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("poller: backoff".into())
            }
        }
    }

    async fn get(router: &Router, path: &str, accept: &str) -> (StatusCode, String, String) {
        let request = axum::http::Request::get(path)
            .header(header::ACCEPT, accept)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, kind, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn probes_answer_from_the_health_and_the_scrape_negotiates_its_format() {
        let switch = Arc::new(Switch(AtomicBool::new(false)));
        let router = router(switch.clone());
        assert_eq!(get(&router, "/healthz", "*/*").await.0, StatusCode::OK);
        let (status, _, body) = get(&router, "/readyz", "*/*").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "poller: backoff\n")
        );
        switch.0.store(true, Ordering::SeqCst);
        assert_eq!(get(&router, "/readyz", "*/*").await.0, StatusCode::OK);

        let (status, kind, body) = get(&router, "/metrics", "text/plain").await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, PROMETHEUS_TEXT));
        assert!(
            body.contains("# TYPE opcgw_samples_stored_total counter"),
            "{body}"
        );
        assert!(!body.contains("# EOF"));
        let (_, kind, body) = get(
            &router,
            "/metrics",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .await;
        assert_eq!(kind, OPENMETRICS_TEXT);
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get(&router, "/", "*/*").await.0, StatusCode::NOT_FOUND);
    }
}
