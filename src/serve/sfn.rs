//! `POST /`: the Step Functions API (`piflow_sfn_api`), as AWS serves it:
//! `X-Amz-Target: AWSStepFunctions.<Operation>`, a SigV4-signed
//! `application/x-amz-json-1.0` body. This adapter reads the request and
//! writes the answer; the crate authenticates and answers.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use piflow_sfn_api::api::{CONTENT_TYPE, MAX_BODY};
use piflow_sfn_api::sigv4;

use super::Shared;

fn answer(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, format!("{body}")).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        res.headers_mut().insert("x-amzn-requestid", id);
    }
    res
}

pub(super) async fn post_api(
    State(app): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match tokio::time::timeout(app.body_timeout, axum::body::to_bytes(body, MAX_BODY))
        .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let mut res = answer(
                413,
                &serde_json::json!({
                    "__type": "ValidationException",
                    "message": format!("the request body is larger than {MAX_BODY} bytes or could not be read: {e}"),
                }),
            );
            super::close_after(&mut res);
            return res;
        }
        Err(_) => {
            let mut res = answer(
                408,
                &serde_json::json!({
                    "__type": "RequestTimeoutException",
                    "message": format!("the body did not arrive within {} s (--body-timeout)", app.body_timeout.as_secs_f64()),
                }),
            );
            super::close_after(&mut res);
            return res;
        }
    };
    let fields: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = sigv4::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &fields,
        body: &bytes,
    };
    let a = app.api.handle(&request, chrono::Utc::now()).await;
    answer(a.status, &a.body)
}

/// The API's executions run as tasks of the server, as every other start.
pub(super) struct Launch(pub(super) std::sync::Weak<super::App>);

impl piflow_sfn_api::Launcher for Launch {
    fn launch(&self, id: String, env: Option<String>, run: piflow_sfn_api::Run) {
        if let Some(app) = self.0.upgrade() {
            app.spawn_run(id, env, run);
        }
    }
}
