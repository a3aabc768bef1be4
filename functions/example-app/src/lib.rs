//! An example web app that keeps its users' state in sessions, in process
//! (`dynamodb-sessions-axum`), on the stack's sessions table: sign in (a new
//! session id), a counter, a cart for signed-in users, sign out. JSON in and
//! out; every route under `/app`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dynamodb_sessions_axum::{Session, SessionLayer, SessionRejection};
use serde::Deserialize;
use serde_json::{json, Value};

const USER: &str = "user";
const COUNT: &str = "count";
const CART: &str = "cart";

/// The app's routes, with sessions from `sessions`.
pub fn router(sessions: SessionLayer) -> Router {
    Router::new()
        .route("/app", get(show))
        .route("/app/sign-in", post(sign_in))
        .route("/app/counter", post(count))
        .route("/app/cart", post(add_to_cart))
        .route("/app/sign-out", post(sign_out))
        .layer(sessions)
}

/// Why a request was refused: a JSON error, as the session API's.
enum AppError {
    Session(SessionRejection),
    BadRequest(String),
    SignedOut,
}

impl From<SessionRejection> for AppError {
    fn from(rejection: SessionRejection) -> AppError {
        AppError::Session(rejection)
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> AppError {
        AppError::BadRequest(rejection.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            AppError::Session(rejection) => return rejection.into_response(),
            AppError::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
            AppError::SignedOut => (StatusCode::UNAUTHORIZED, "signed_out", "sign in first".to_string()),
        };
        (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
    }
}

type Answer = Result<Json<Value>, AppError>;

/// What the session holds for this visitor.
async fn state(session: &Session) -> Result<Value, AppError> {
    Ok(json!({
        "user": session.get::<String>(USER).await?,
        "count": session.get::<u64>(COUNT).await?.unwrap_or(0),
        "cart": session.get::<Vec<String>>(CART).await?.unwrap_or_default(),
    }))
}

async fn show(session: Session) -> Answer {
    Ok(Json(state(&session).await?))
}

#[derive(Deserialize)]
struct SignIn {
    user: String,
}

/// Signs in: a new session id (the old one is gone), the user stored in it.
async fn sign_in(session: Session, body: Result<Json<SignIn>, JsonRejection>) -> Answer {
    let Json(SignIn { user }) = body?;
    if user.trim().is_empty() {
        return Err(AppError::BadRequest("`user` is empty".into()));
    }
    session.regenerate().await?;
    session.insert(USER, user).await?;
    Ok(Json(state(&session).await?))
}

async fn count(session: Session) -> Answer {
    let count = session.get::<u64>(COUNT).await?.unwrap_or(0) + 1;
    session.insert(COUNT, count).await?;
    Ok(Json(state(&session).await?))
}

#[derive(Deserialize)]
struct CartItem {
    item: String,
}

/// Adds to the cart of a signed-in user.
async fn add_to_cart(session: Session, body: Result<Json<CartItem>, JsonRejection>) -> Answer {
    let Json(CartItem { item }) = body?;
    if session.get::<String>(USER).await?.is_none() {
        return Err(AppError::SignedOut);
    }
    let mut cart = session.get::<Vec<String>>(CART).await?.unwrap_or_default();
    cart.push(item);
    session.insert(CART, cart).await?;
    Ok(Json(state(&session).await?))
}

/// Signs out: the session destroyed, its cookie expired.
async fn sign_out(session: Session) -> Result<StatusCode, AppError> {
    session.destroy().await?;
    Ok(StatusCode::NO_CONTENT)
}
