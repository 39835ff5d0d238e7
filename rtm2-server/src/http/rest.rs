//! The REST API (docs/OPERATIONS.md): the reference's message endpoints with their request
//! and response shapes (peer and channel messages; the history query answers that history is
//! not available), and what a backend needs beyond them under `/v1/apps/{app}/…`: who is online
//! and where, presence per channel, channel and user metadata, locks, and kicking a user.
//! Each call runs as a request of the acting user through the engine's own handlers.

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use rtm2_proto::ErrorCode;
use rtm2_proto::enums::{ChannelType, MessageType};
use rtm2_proto::pb::{self, client_frame::Body as B, response::Result as R};
use rtm2_proto::validate::Violation;

use super::{Body, Caller, Http, HttpError, Req, json_response, only};
use crate::engine::App;

/// The user a metadata write or a lock revocation by an operator acts as, unless `?user_id=`
/// names another.
pub(crate) const OPERATOR_USER: &str = "rtm2-rest";

pub(super) async fn route(http: &Arc<Http>, r: &Req, seg: &[&str]) -> Result<Response<Body>, HttpError> {
    match seg {
        ["dev", "v2", "project", app, "rtm", "users", user, "peer_messages"] => {
            only(r, &[Method::POST])?;
            let (app, caller) = authorized(http, r, app).await?;
            peer_message(http, r, &app, &caller.acting_as(user)?).await
        }
        ["dev", "v2", "project", app, "rtm", "users", user, "channel_messages"] => {
            only(r, &[Method::POST])?;
            let (app, caller) = authorized(http, r, app).await?;
            channel_message(http, r, &app, &caller.acting_as(user)?).await
        }
        ["rtm", "v2", "history", app, "userId", user, "channelType", t, "channel", name] => {
            only(r, &[Method::GET])?;
            let (app, caller) = authorized(http, r, app).await?;
            history(http, r, &app, &caller.acting_as(user)?, t, name).await
        }
        ["v1", "apps", app, rest @ ..] => {
            let (app, caller) = authorized(http, r, app).await?;
            apps(http, r, &app, &caller, rest).await
        }
        _ => Err(HttpError::new(StatusCode::NOT_FOUND, "no such endpoint (see docs/OPERATIONS.md)")),
    }
}

/// The app of the path and who asks (401 before 403: a wrong app is only told to a caller
/// that authenticated).
async fn authorized(http: &Arc<Http>, r: &Req, app_id: &str) -> Result<(Arc<App>, Caller), HttpError> {
    let token = r.headers.contains_key("x-agora-token")
        || r.headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|a| a.starts_with("Bearer "));
    if token {
        let app = http.engine.backend_app(app_id)?;
        let caller = http.authorize(r, Some(&app)).await?;
        return Ok((app, caller));
    }
    let caller = http.authorize(r, None).await?;
    Ok((http.engine.backend_app(app_id)?, caller))
}

async fn apps(
    http: &Arc<Http>,
    r: &Req,
    app: &Arc<App>,
    caller: &Caller,
    seg: &[&str],
) -> Result<Response<Body>, HttpError> {
    match seg {
        ["users"] => {
            only(r, &[Method::GET])?;
            let users: Vec<Value> = http
                .engine
                .online_users(app)
                .into_iter()
                .map(|(u, node)| json!({"user_id": u, "node_id": node}))
                .collect();
            Ok(ok(json!({"count": users.len(), "users": users})))
        }
        ["users", user] => {
            only(r, &[Method::GET])?;
            rtm2_proto::validate::user_id(user)?;
            let node = http.engine.user_node(app, user);
            let result =
                call(http, app, user, B::GetUserChannels(pb::GetUserChannels { user_id: user.to_string() })).await?;
            let channels: Vec<Value> = match result {
                Some(R::UserChannels(c)) => c
                    .channels
                    .iter()
                    .map(|c| json!({"channel_name": c.channel, "channel_type": type_name(c.channel_type)}))
                    .collect(),
                _ => Vec::new(),
            };
            Ok(ok(json!({
                "user_id": user,
                "online": node.is_some(),
                "node_id": node.unwrap_or_default(),
                "channels": channels,
            })))
        }
        ["users", user, "kick"] => {
            only(r, &[Method::POST])?;
            caller.operator_only()?;
            rtm2_proto::validate::user_id(user)?;
            let body = r.json()?;
            let reason = optional_str(&body, "reason")?.unwrap_or("kicked by the operator").to_string();
            let (engine, app2, user2) = (http.engine.clone(), app.clone(), user.to_string());
            let kicked = http.main.spawn(async move { engine.kick(&app2, &user2, &reason) }).await.unwrap_or(false);
            if !kicked {
                return Err(Violation::new(
                    ErrorCode::CHANNEL_RECEIVER_OFFLINE,
                    format!("user {user:?} is not online"),
                )
                .into());
            }
            Ok(ok(json!({"user_id": user, "kicked": true})))
        }
        ["channels"] => {
            only(r, &[Method::GET])?;
            let channels: Vec<Value> = app.channel_views(10_000).into_iter().map(|c| super::channel_json(&c)).collect();
            Ok(ok(json!({"channels": channels})))
        }
        ["channels", t, name, "users"] => {
            only(r, &[Method::GET])?;
            let channel_type = scope_type(t)?;
            let states = r.query_flag("states");
            let page = r.query.get("page").cloned().unwrap_or_default();
            let q = pb::GetOnlineUsers {
                channel: name.to_string(),
                channel_type,
                include_user_id: true,
                include_state: states,
                page,
            };
            let Some(R::OnlineUsers(o)) = call(http, app, OPERATOR_USER, B::GetOnlineUsers(q)).await? else {
                return Err(unexpected());
            };
            let users: Vec<Value> = o
                .occupants
                .iter()
                .map(|u| {
                    let states: Map<String, Value> =
                        u.states.iter().map(|s| (s.key.clone(), Value::String(s.value.clone()))).collect();
                    json!({"user_id": u.user_id, "states": states})
                })
                .collect();
            Ok(ok(json!({
                "channel_name": name,
                "channel_type": type_name(channel_type),
                "total_occupancy": o.total_occupancy,
                "users": users,
                "next_page": o.next_page,
            })))
        }
        ["metadata", "channel", t, name] => {
            let channel_type = scope_type(t)?;
            metadata(http, r, app, caller, 2, name, channel_type).await
        }
        ["metadata", "user", user] => metadata(http, r, app, caller, 1, user, 0).await,
        ["locks", t, name] => {
            only(r, &[Method::GET])?;
            let channel_type = scope_type(t)?;
            let locks = locks(http, app, name, channel_type).await?;
            let locks: Vec<Value> = locks
                .iter()
                .map(|l| json!({"lock_name": l.name, "owner": l.owner, "ttl": l.ttl_s, "fencing_token": l.fencing_token}))
                .collect();
            Ok(ok(json!({"channel_name": name, "channel_type": type_name(channel_type), "locks": locks})))
        }
        ["locks", t, name, lock] => {
            only(r, &[Method::DELETE])?;
            caller.operator_only()?;
            let channel_type = scope_type(t)?;
            let owner = match r.query.get("owner") {
                Some(o) => o.clone(),
                None => locks(http, app, name, channel_type)
                    .await?
                    .into_iter()
                    .find(|l| l.name == *lock)
                    .map(|l| l.owner)
                    .filter(|o| !o.is_empty())
                    .ok_or_else(|| {
                        HttpError::from(Violation::new(
                            ErrorCode::LOCK_NOT_ACQUIRED,
                            format!("lock {lock:?} is not held"),
                        ))
                    })?,
            };
            let revoke = pb::RevokeLock {
                channel: name.to_string(),
                channel_type,
                name: lock.to_string(),
                owner: owner.clone(),
            };
            call(http, app, OPERATOR_USER, B::RevokeLock(revoke)).await?;
            Ok(ok(json!({"lock_name": lock, "revoked_from": owner})))
        }
        _ => Err(HttpError::new(StatusCode::NOT_FOUND, "no such endpoint (see docs/OPERATIONS.md)")),
    }
}

async fn locks(
    http: &Arc<Http>,
    app: &Arc<App>,
    channel: &str,
    channel_type: u32,
) -> Result<Vec<pb::LockDetail>, HttpError> {
    let q = pb::GetLocks { channel: channel.to_string(), channel_type };
    match call(http, app, OPERATOR_USER, B::GetLocks(q)).await? {
        Some(R::Locks(l)) => Ok(l.locks),
        _ => Err(unexpected()),
    }
}

/// GET (read), PUT (set: upsert), PATCH (update: the items must exist), DELETE (remove the
/// items named, or the whole set when none is).
async fn metadata(
    http: &Arc<Http>,
    r: &Req,
    app: &Arc<App>,
    caller: &Caller,
    storage_type: u32,
    target: &str,
    channel_type: u32,
) -> Result<Response<Body>, HttpError> {
    only(r, &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE])?;
    let as_user = match caller {
        Caller::Operator => r.query.get("user_id").cloned().unwrap_or_else(|| OPERATOR_USER.to_string()),
        Caller::User(_) => caller.acting_as(r.query.get("user_id").map_or("", String::as_str))?,
    };
    if r.method == Method::GET {
        let q = pb::GetMetadata { storage_type, target: target.to_string(), channel_type };
        let Some(R::Metadata(m)) = call(http, app, &as_user, B::GetMetadata(q)).await? else {
            return Err(unexpected());
        };
        let items: Vec<Value> = m
            .items
            .iter()
            .map(|i| {
                json!({
                    "key": i.key,
                    "value": i.value,
                    "revision": i.revision.unwrap_or(0),
                    "updated_ts": i.updated_ms,
                    "author_user_id": i.author,
                })
            })
            .collect();
        return Ok(ok(json!({"major_revision": m.major_revision, "total_count": items.len(), "items": items})));
    }
    let body = r.json()?;
    let op = match r.method {
        Method::PUT => 1,
        Method::PATCH => 2,
        _ => 3,
    };
    let mut items = Vec::new();
    if let Some(list) = body.get("items") {
        let Value::Array(list) = list else { return Err(bad("items must be an array of {key, value, revision}")) };
        for item in list {
            let Value::Object(item) = item else { return Err(bad("each item is an object {key, value, revision}")) };
            items.push(pb::MetadataItem {
                key: required_str(item, "key")?.to_string(),
                value: optional_str(item, "value")?.unwrap_or("").to_string(),
                revision: optional_i64(item, "revision")?,
                ..Default::default()
            });
        }
    }
    let write = pb::WriteMetadata {
        storage_type,
        target: target.to_string(),
        channel_type,
        op,
        major_revision: optional_i64(&body, "major_revision")?,
        items,
        lock_name: optional_str(&body, "lock_name")?.unwrap_or("").to_string(),
        record_ts: optional_bool(&body, "record_ts")?,
        record_author: optional_bool(&body, "record_author")?,
        fencing_token: optional_i64(&body, "fencing_token")?.unwrap_or(0).max(0) as u64,
    };
    let Some(R::MetadataWrite(w)) = call(http, app, &as_user, B::WriteMetadata(write)).await? else {
        return Err(unexpected());
    };
    Ok(ok(json!({"major_revision": w.major_revision, "total_count": w.total_count})))
}

/// `GET /rtm/v2/history/{app}/userId/{uid}/channelType/{message|user}/channel/{name}
/// ?start&end&messageCount`: a page of stored messages, newest first, as `uid` reads them (a
/// user channel only its own); BINARY and encrypted payloads in base64.
async fn history(
    http: &Arc<Http>,
    r: &Req,
    app: &Arc<App>,
    user: &str,
    channel_type: &str,
    channel: &str,
) -> Result<Response<Body>, HttpError> {
    let channel_type = match channel_type.to_ascii_lowercase().as_str() {
        "message" => ChannelType::MESSAGE,
        "user" => ChannelType::USER,
        other => {
            return Err(Violation::new(
                ErrorCode::INVALID_CHANNEL_TYPE,
                format!("channelType {other:?}: use message or user"),
            )
            .into());
        }
    };
    let number = |name: &str| -> Result<u64, HttpError> {
        r.query.get(name).map_or(Ok(0), |v| v.parse().map_err(|_| bad(format!("{name} must be a number"))))
    };
    let q = pb::GetMessages {
        channel: channel.to_string(),
        channel_type: channel_type as u32,
        message_count: number("messageCount")?.min(u32::MAX as u64) as u32,
        start: number("start")?,
        end: number("end")?,
    };
    let Some(R::MessageList(list)) = call(http, app, user, B::GetMessages(q)).await? else { return Err(unexpected()) };
    let messages: Vec<Value> = list
        .messages
        .iter()
        .map(|m| {
            let mut v = super::payload_json(m.message_type, m.encryption, &m.payload);
            v["publisher"] = json!(m.publisher);
            v["custom_type"] = json!(m.custom_type);
            v["timestamp"] = json!(m.timestamp_ms);
            v
        })
        .collect();
    Ok(ok(json!({"result": "success", "count": messages.len(), "messages": messages, "new_start": list.new_start})))
}

/// `POST …/rtm/users/{userId}/peer_messages?wait_for_ack=bool`: `code` is `message_delivered`
/// (with wait_for_ack: queued to the user's session, which keeps it for a resume),
/// `message_sent` (without), or `message_offline` (the user is online nowhere; nothing is kept).
async fn peer_message(http: &Arc<Http>, r: &Req, app: &Arc<App>, from: &str) -> Result<Response<Body>, HttpError> {
    http.admit_message(&app.id)?;
    let body = r.json()?;
    let destination = required_str(&body, "destination")?.to_string();
    let publish = publish_of(&body, destination, ChannelType::USER)?;
    let code = match call(http, app, from, B::Publish(publish)).await {
        Ok(_) if r.query_flag("wait_for_ack") => "message_delivered",
        Ok(_) => "message_sent",
        // (Offline: with history asked for, the message is kept there.)
        Err(e)
            if e.code == ErrorCode::CHANNEL_RECEIVER_OFFLINE.code()
                || e.code == ErrorCode::CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED.code() =>
        {
            "message_offline"
        }
        Err(e) => return Err(e),
    };
    Ok(ok(json!({"result": "success", "request_id": request_id(), "code": code})))
}

/// `POST …/rtm/users/{userId}/channel_messages`.
async fn channel_message(http: &Arc<Http>, r: &Req, app: &Arc<App>, from: &str) -> Result<Response<Body>, HttpError> {
    http.admit_message(&app.id)?;
    let body = r.json()?;
    let channel = required_str(&body, "channel_name")?.to_string();
    let publish = publish_of(&body, channel, ChannelType::MESSAGE)?;
    call(http, app, from, B::Publish(publish)).await?;
    Ok(ok(json!({"result": "success", "request_id": request_id(), "code": "message_sent"})))
}

/// The publish a message request asks for: `payload` a non-empty string (the reference's),
/// optionally `custom_type`; `enable_historical_messaging` asks for history.
fn publish_of(body: &Map<String, Value>, channel: String, channel_type: ChannelType) -> Result<pb::Publish, HttpError> {
    let payload = required_str(body, "payload")?;
    if payload.is_empty() {
        return Err(Violation::new(ErrorCode::CHANNEL_INVALID_MESSAGE, "payload is empty").into());
    }
    Ok(pb::Publish {
        channel,
        channel_type: channel_type as u32,
        message_type: MessageType::STRING as u32,
        payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
        custom_type: optional_str(body, "custom_type")?.unwrap_or("").to_string(),
        store_in_history: optional_bool(body, "enable_historical_messaging")?,
        // A backend's message is plain: an SDK with end-to-end encryption drops it.
        encryption: 0,
    })
}

/// Runs a request as `user` on the server's runtime.
async fn call(
    http: &Arc<Http>,
    app: &Arc<App>,
    user: &str,
    body: pb::client_frame::Body,
) -> Result<Option<R>, HttpError> {
    let (engine, app, user) = (http.engine.clone(), app.clone(), user.to_string());
    let task = http.main.spawn(async move { engine.backend_call(&app, &user, body).await });
    match task.await {
        Ok(reply) => reply.map_err(HttpError::from),
        Err(_) => Err(HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")),
    }
}

/// A channel type of a channel with presence, metadata and locks: MESSAGE or STREAM (by name,
/// any case, or number).
fn scope_type(t: &str) -> Result<u32, HttpError> {
    let parsed = match t.to_ascii_uppercase().as_str() {
        "MESSAGE" | "1" => Some(ChannelType::MESSAGE),
        "STREAM" | "2" => Some(ChannelType::STREAM),
        _ => None,
    };
    parsed.map(|t| t as u32).ok_or_else(|| {
        Violation::new(ErrorCode::INVALID_CHANNEL_TYPE, format!("channel type {t:?}: use MESSAGE or STREAM")).into()
    })
}

fn type_name(t: u32) -> &'static str {
    ChannelType::from_u32(t).map_or("NONE", ChannelType::name)
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:x}-{:x}", rtm2_proto::now_ms(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn ok(v: Value) -> Response<Body> {
    json_response(StatusCode::OK, v)
}

fn bad(reason: impl Into<String>) -> HttpError {
    HttpError { status: StatusCode::BAD_REQUEST, code: ErrorCode::INVALID_PARAMETER.code(), reason: reason.into() }
}

fn unexpected() -> HttpError {
    HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "the server answered with an unexpected result")
}

fn required_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, HttpError> {
    optional_str(m, key)?.ok_or_else(|| bad(format!("{key} is missing")))
}

fn optional_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, HttpError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{key} must be a string"))),
    }
}

fn optional_bool(m: &Map<String, Value>, key: &str) -> Result<bool, HttpError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("{key} must be true or false"))),
    }
}

fn optional_i64(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, HttpError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| bad(format!("{key} must be an integer"))),
    }
}
