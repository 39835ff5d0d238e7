//! The live web console: one page served by the binary (`console.html`, no build step) and
//! two server-sent-event streams it reads — a snapshot of the server every second, and the
//! messages of one channel (the server subscribes quietly for it: nobody sees it present).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use rtm2_proto::enums::ChannelType;
use rtm2_proto::frame;
use rtm2_proto::pb::{self, client_frame, server_frame};

use super::{Body, Http, HttpError, Req, only, response};
use crate::engine::Ending;

const PAGE: &str = include_str!("console.html");

/// Users and channels listed per app in a snapshot, at most.
const MAX_LISTED: usize = 500;
/// The user id the console's message tail subscribes as (quietly: it is never present).
const TAIL_USER: &str = "rtm2-console";
/// Messages of a tail that may wait for a slow browser; more are dropped (and counted).
const TAIL_BUFFER: usize = 1024;

pub(super) async fn route(http: &Arc<Http>, r: &Req, seg: &[&str]) -> Result<Response<Body>, HttpError> {
    only(r, &[Method::GET])?;
    match seg {
        [] => Ok(response(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(PAGE.as_bytes()))),
        ["events"] => Ok(events(http)),
        // An EventSource cannot read an error's body: a refused tail is a stream of one error.
        ["tail"] => match tail(http, r).await {
            Ok(stream) => Ok(stream),
            Err(e) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(sse("error", &json!({"code": e.code, "reason": e.reason})));
                Ok(stream_response(rx))
            }
        },
        _ => Err(HttpError::new(StatusCode::NOT_FOUND, "no such console resource")),
    }
}

/// A response that streams what `rx` yields (server-sent events).
fn stream_response(mut rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b)))));
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Every second, until the page goes away or the server stops: a snapshot of the server.
fn events(http: &Arc<Http>) -> Response<Body> {
    let (tx, rx) = mpsc::channel(4);
    let (http, mut stop) = (http.clone(), http.stop.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            // A page that does not read is not waited for.
            match tx.try_send(sse("snapshot", &snapshot(&http))) {
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                _ => continue,
            }
        }
    });
    stream_response(rx)
}

/// The server as the console shows it.
pub(crate) fn snapshot(http: &Http) -> Value {
    let engine = &http.engine;
    let m = &engine.metrics;
    let mut apps = engine.all_apps();
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    let apps: Vec<Value> = apps
        .iter()
        .map(|app| {
            let users: Vec<Value> = engine
                .online_users(app)
                .into_iter()
                .take(MAX_LISTED)
                .map(|(u, node)| json!({"user_id": u, "node_id": node}))
                .collect();
            let channels: Vec<Value> =
                app.channel_views(MAX_LISTED).into_iter().map(|c| super::channel_json(&c)).collect();
            json!({"app_id": app.id, "users": users, "channels": channels})
        })
        .collect();
    json!({
        "time_ms": rtm2_proto::now_ms(),
        "node_id": engine.node_id(),
        "ready": http.ready(),
        "connections": engine.connection_count(),
        "sessions": engine.sessions.lock().unwrap().len(),
        "messages_published_total": m.published.total(),
        "messages_delivered_total": m.delivered.total(),
        "apps": apps,
    })
}

/// `?app=APP&channel=NAME`: the messages published to that message channel from now on.
async fn tail(http: &Arc<Http>, r: &Req) -> Result<Response<Body>, HttpError> {
    let app_id = r.query.get("app").cloned().unwrap_or_default();
    let channel = r.query.get("channel").cloned().unwrap_or_default();
    let app = http.engine.backend_app(&app_id)?;
    rtm2_proto::validate::channel_name(&channel)?;
    let (session, mut frames) = http.engine.backend_session(&app, TAIL_USER, TAIL_BUFFER)?;
    let subscribe = client_frame::Body::Subscribe(pb::Subscribe {
        channel: channel.clone(),
        with_message: true,
        be_quiet: true,
        ..Default::default()
    });
    let (engine, s) = (http.engine.clone(), session.clone());
    let subscribed = http.main.spawn(async move { engine.handle(&s, 1, subscribe) }).await;
    if let Ok(Some(Err(v))) = subscribed {
        http.engine.end_session(&session, Ending::Leave);
        return Err(v.into());
    }
    let (tx, rx) = mpsc::channel(64);
    let (engine, main, mut stop) = (http.engine.clone(), http.main.clone(), http.stop.clone());
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(b": subscribed\n\n")).await;
        loop {
            let body = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tx.closed() => break,
                f = frames.recv() => match f { Some(f) => f, None => break },
            };
            let Ok(f) = frame::decode_server(body) else { continue };
            let Some(server_frame::Body::Message(m)) = f.body else { continue };
            if tx.send(sse("message", &message_json(&m))).await.is_err() {
                break;
            }
        }
        main.spawn(async move { engine.end_session(&session, Ending::Leave) });
    });
    Ok(stream_response(rx))
}

fn message_json(m: &pb::MessageEvent) -> Value {
    let mut v = super::payload_json(m.message_type, m.encryption, &m.payload);
    v["channel_name"] = json!(m.channel);
    v["channel_type"] = json!(ChannelType::from_u32(m.channel_type).map_or("NONE", ChannelType::name));
    v["topic_name"] = json!(m.topic);
    v["publisher"] = json!(m.publisher);
    v["custom_type"] = json!(m.custom_type);
    v["timestamp"] = json!(m.timestamp_ms);
    v
}
