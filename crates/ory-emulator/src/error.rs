//! Failures a handler answers with Kratos' `errorGeneric` JSON
//! (`{"error":{"code":..,"status":..,"reason":..,"message":..}}`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Everything that makes a request fail. `Display` is the `reason` of the JSON body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmulatorError {
    #[error("No valid session credentials found in the request.")]
    Unauthorized,
    #[error(
        "The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF). \
         Please retry the flow and optionally clear your cookies."
    )]
    CsrfViolation,
    #[error("The flow query parameter is missing or malformed.")]
    MissingFlowId,
    #[error("The requested flow could not be found.")]
    FlowNotFound,
    #[error("The self-service flow expired, please start a new one.")]
    FlowExpired,
    #[error("A valid session was detected and thus login is not possible.")]
    SessionAlreadyAvailable,
    #[error("Please include a valid logout token in the URL query.")]
    InvalidLogoutToken,
    #[error(
        "The provided Ory Session Token could not be found, is invalid, or otherwise malformed."
    )]
    UnknownSessionToken,
    #[error("You can not requested a higher AAL (AAL2/AAL3) without an active session.")]
    SessionAal1Required,
    #[error("Requested return_to URL \"{0}\" is not allowed.")]
    ReturnToForbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("The requested resource could not be found.")]
    NotFound,
    #[error("The request method is not allowed for this resource.")]
    MethodNotAllowed,
    /// Injected by `Emulator::set_whoami_failure`.
    #[error("The emulator was told to fail this request.")]
    Injected(u16),
}

impl EmulatorError {
    /// Kratos' machine-readable error id, where it has one.
    fn id(&self) -> Option<&'static str> {
        match self {
            EmulatorError::CsrfViolation => Some("security_csrf_violation"),
            EmulatorError::FlowExpired => Some("self_service_flow_expired"),
            EmulatorError::SessionAlreadyAvailable => Some("session_already_available"),
            EmulatorError::SessionAal1Required => Some("session_aal1_required"),
            EmulatorError::ReturnToForbidden(_) => Some("self_service_flow_return_to_forbidden"),
            _ => None,
        }
    }
}

impl ResponseError for EmulatorError {
    fn status_code(&self) -> StatusCode {
        match self {
            EmulatorError::Unauthorized
            | EmulatorError::InvalidLogoutToken
            | EmulatorError::SessionAal1Required => StatusCode::UNAUTHORIZED,
            EmulatorError::CsrfViolation | EmulatorError::UnknownSessionToken => {
                StatusCode::FORBIDDEN
            }
            EmulatorError::MissingFlowId
            | EmulatorError::SessionAlreadyAvailable
            | EmulatorError::ReturnToForbidden(_)
            | EmulatorError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EmulatorError::FlowNotFound | EmulatorError::NotFound => StatusCode::NOT_FOUND,
            EmulatorError::FlowExpired => StatusCode::GONE,
            EmulatorError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            EmulatorError::Injected(code) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut error = json!({
            "code": status.as_u16(),
            "status": status.canonical_reason().unwrap_or("Error"),
            "reason": self.to_string(),
            "message": message_for(status),
        });
        if let (Some(id), Some(obj)) = (self.id(), error.as_object_mut()) {
            obj.insert("id".to_owned(), id.into());
        }
        HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ))
            .body(json!({ "error": error }).to_string())
    }
}

/// The fixed human message Ory's error writer uses for a status.
fn message_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request was malformed or contained invalid parameters",
        401 => "The request could not be authorized",
        403 => "The requested action was forbidden",
        404 => "The requested resource could not be found",
        405 => "The request method is not supported",
        410 => "The requested resource is no longer available",
        503 => "The service is currently unavailable",
        _ => "An internal server error occurred, please contact the system administrator",
    }
}

/// JSON error answer for the 404 of unknown paths.
pub(crate) async fn not_found() -> Result<HttpResponse, EmulatorError> {
    Err(EmulatorError::NotFound)
}

/// JSON error answer for a known path called with the wrong method.
pub(crate) async fn method_not_allowed() -> Result<HttpResponse, EmulatorError> {
    Err(EmulatorError::MethodNotAllowed)
}
