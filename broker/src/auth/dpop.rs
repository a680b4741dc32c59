//! DPoP proof verification for one request: the broker's expected `htu`, its server nonces and
//! its replay store, with every failure mapped to the reference status, `detail` and headers.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderName, StatusCode};
use cullis_shared::jose::dpop::{self, DpopError, Expectations, IatWindow, ServerNonces};
use cullis_shared::jose::htu;

/// The `DPoP-Nonce` response header.
pub static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The URL a proof for this request must name in `htu`: `BROKER_PUBLIC_URL` + the decoded path
/// when configured, else scheme + `Host` + path as the request names them.
pub fn expected_htu(state: &AppState, host: Option<&str>, raw_path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    htu::expected(
        state.config.broker_public_url.as_deref(),
        state.scheme(),
        host.unwrap_or("localhost"),
        &decoded,
    )
}

/// Verifies `proof` (§3.3, nonce required) and consumes its `jti`. Returns the key thumbprint.
pub async fn verify_proof(
    state: &AppState,
    proof: &str,
    htm: &str,
    htu_expected: &str,
    access_token: Option<&str>,
) -> Result<String, ApiError> {
    let (current, previous) = state
        .nonces
        .accepted()
        .await
        .map_err(|e| ApiError::unavailable("DPoP nonce store", e))?;
    let expect = Expectations {
        htm,
        htu: htu_expected,
        access_token,
        nonces: Some(ServerNonces {
            current: &current,
            previous: previous.as_deref(),
        }),
        now: now_float(),
        iat_window: IatWindow::default(),
    };
    dpop::verify(proof, &expect, state.dpop_replay.as_ref()).await.map_err(|error| match error {
        DpopError::NonceRequired => ApiError::unauthorized(error.to_string()).with_header(DPOP_NONCE.clone(), &current),
        DpopError::StoreUnavailable(cause) => ApiError::unavailable("DPoP replay store", cause),
        DpopError::Replay => {
            crate::telemetry::metrics().dpop_jti_replay_attempt.add(1, &[]);
            ApiError::unauthorized(error.to_string())
        }
        DpopError::HtuMismatch => {
            tracing::warn!(expected = htu_expected, "DPoP htu mismatch — if clients reach the broker through a proxy, set BROKER_PUBLIC_URL to the URL they use");
            ApiError::unauthorized(error.to_string())
        }
        other => ApiError::new(StatusCode::UNAUTHORIZED, other.to_string()),
    })
}

fn now_float() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
