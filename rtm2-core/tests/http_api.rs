//! The HTTP side of a server (docs/OPERATIONS.md), against a real server on loopback and real
//! SDK clients: every REST endpoint and every error status, metrics scraped and parsed, health
//! and readiness, the console's streams, and message delivery with and without an HTTP flood.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http::*;
use common::*;
use rtm2_core::*;
use rtm2_server::{HttpConfig, Server, ServerConfig};
use serde_json::json;
use tokio::io::AsyncWriteExt;

struct Setup {
    server: Server,
    tcp: SocketAddr,
    http: SocketAddr,
}

async fn setup_with(config: ServerConfig, http: HttpConfig) -> Setup {
    let server = Server::start(config);
    let tcp = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let http = server
        .listen_http("127.0.0.1:0", HttpConfig { credentials: vec![(KEY.into(), SECRET.into())], ..http })
        .unwrap();
    Setup { server, tcp, http }
}

async fn setup() -> Setup {
    setup_with(dev_config(), HttpConfig::default()).await
}

async fn user(addr: SocketAddr, user: &str, token: &str) -> (Client, EventReceiver) {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(addr.to_string()));
    fast(&mut cfg);
    let c = Client::new(cfg).unwrap();
    let rx = c.events();
    c.login(token).await.unwrap();
    (c, rx)
}

fn path(rest: &str) -> String {
    format!("/v1/apps/{APP_ID}/{rest}")
}

fn messages_path(user: &str, kind: &str) -> String {
    format!("/dev/v2/project/{APP_ID}/rtm/users/{user}/{kind}")
}

#[tokio::test]
async fn channel_and_peer_messages_reach_subscribers_with_the_reference_shapes() {
    let s = setup().await;
    let (alice, mut alice_rx) = user(s.tcp, "alice", "").await;
    alice.subscribe("lobby", SubscribeOptions::default()).await.unwrap();

    let a = op(
        s.http,
        "POST",
        &messages_path("bob", "channel_messages"),
        Some(json!({"channel_name": "lobby", "payload": "hello"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let j = a.json();
    assert_eq!((j["result"].as_str(), j["code"].as_str()), (Some("success"), Some("message_sent")), "{j}");
    assert!(!j["request_id"].as_str().unwrap().is_empty());
    let m = expect_message(&mut alice_rx, |m| m.channel == "lobby").await;
    assert_eq!((m.publisher.as_str(), m.text()), ("bob", Some("hello")));

    for (wait, code) in [("true", "message_delivered"), ("false", "message_sent")] {
        let p = format!("{}?wait_for_ack={wait}", messages_path("carol", "peer_messages"));
        let a = op(s.http, "POST", &p, Some(json!({"destination": "alice", "payload": format!("psst {wait}")}))).await;
        assert_eq!((a.status, a.json()["code"].as_str()), (200, Some(code)), "{}", a.body);
        let m = expect_message(&mut alice_rx, |m| m.channel_type == ChannelType::USER).await;
        assert_eq!((m.publisher.as_str(), m.text()), ("carol", Some(format!("psst {wait}").as_str())));
    }
    let a = op(
        s.http,
        "POST",
        &messages_path("carol", "peer_messages"),
        Some(json!({"destination": "nobody", "payload": "x"})),
    )
    .await;
    assert_eq!((a.status, a.json()["code"].as_str()), (200, Some("message_offline")), "{}", a.body);
    alice.logout().await.unwrap();
}

#[tokio::test]
async fn bad_message_requests_get_their_status_and_code() {
    let s = setup().await;
    let ch = messages_path("bob", "channel_messages");
    // Payload over 32 KB: 435 with the SDK's code.
    let big = "x".repeat(33 * 1024);
    let a = op(s.http, "POST", &ch, Some(json!({"channel_name": "lobby", "payload": big}))).await;
    assert_eq!((a.status, a.code()), (435, 11010), "{}", a.body);
    // Bad JSON, a missing or empty payload, a wrong type: 400.
    let auth = basic();
    let hdrs = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let a = request(s.http, "POST", &ch, &hdrs, Some("{not json")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.json()["reason"].as_str().unwrap().contains("not valid JSON"), "{}", a.body);
    let a = op(s.http, "POST", &ch, Some(json!({"channel_name": "lobby"}))).await;
    assert_eq!((a.status, a.code()), (400, 10014), "{}", a.body);
    let a = op(s.http, "POST", &ch, Some(json!({"channel_name": "lobby", "payload": ""}))).await;
    assert_eq!((a.status, a.code()), (435, 11009), "{}", a.body);
    let a = op(s.http, "POST", &ch, Some(json!({"channel_name": "lobby", "payload": 7}))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = op(s.http, "POST", &ch, Some(json!({"channel_name": "_bad", "payload": "x"}))).await;
    assert_eq!((a.status, a.code()), (400, 10008), "{}", a.body);
    // Not JSON: 415. A body over the listener's limit: 413.
    let a =
        request(s.http, "POST", &ch, &[("Authorization", auth.as_str()), ("Content-Type", "text/plain")], Some("hi"))
            .await;
    assert_eq!(a.status, 415, "{}", a.body);
    let huge = json!({"channel_name": "lobby", "payload": "y".repeat(70 * 1024)}).to_string();
    let a = request(s.http, "POST", &ch, &hdrs, Some(&huge)).await;
    assert_eq!(a.status, 413, "{}", a.body);
    // History: stored on a publish, read back over REST (newest first, paged), its errors.
    for i in 0..3 {
        let body = json!({"channel_name": "lobby", "payload": format!("h{i}"), "enable_historical_messaging": true});
        let a = op(s.http, "POST", &ch, Some(body)).await;
        assert_eq!((a.status, a.json()["code"].clone()), (200, json!("message_sent")), "{}", a.body);
    }
    let h = format!("/rtm/v2/history/{APP_ID}/userId/bob/channelType/message/channel/lobby?messageCount=2");
    let page = op(s.http, "GET", &h, None).await.json();
    let texts: Vec<&str> =
        page["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["h2", "h1"], "{page}");
    assert_eq!((page["result"].clone(), page["messages"][0]["publisher"].clone()), (json!("success"), json!("bob")));
    let next = page["new_start"].as_u64().unwrap();
    assert!(next > 0, "{page}");
    let older = op(s.http, "GET", &format!("{h}&start={next}"), None).await.json();
    assert_eq!(
        (older["messages"][0]["message"].clone(), older["new_start"].clone()),
        (json!("h0"), json!(0)),
        "{older}"
    );
    // Another user's user channel: 15004; a bad range: 15002; a bad channel type: 10019.
    let theirs = format!("/rtm/v2/history/{APP_ID}/userId/bob/channelType/user/channel/alice");
    let a = op(s.http, "GET", &theirs, None).await;
    assert_eq!(a.code(), 15004, "{}", a.body);
    let a = op(s.http, "GET", &format!("{h}&start=5&end=9"), None).await;
    assert_eq!((a.status, a.code()), (400, 15002), "{}", a.body);
    let a = op(s.http, "GET", &format!("/rtm/v2/history/{APP_ID}/userId/bob/channelType/stream/channel/x"), None).await;
    assert_eq!((a.status, a.code()), (400, 10019), "{}", a.body);
    // Unknown endpoint 404, wrong method 405.
    assert_eq!(op(s.http, "GET", "/v2/nothing", None).await.status, 404);
    assert_eq!(op(s.http, "GET", &ch, None).await.status, 405);
    assert_eq!(op(s.http, "POST", &path("users"), None).await.status, 405);
}

#[tokio::test]
async fn authentication_basic_or_a_users_token_and_the_app_checked() {
    let config = ServerConfig {
        apps: vec![rtm2_server::AppCredentials { app_id: APP_ID.into(), certificates: vec![CERT.into()] }],
        ..dev_config()
    };
    let s = setup_with(config, HttpConfig::default()).await;
    let ch = messages_path("bob", "channel_messages");
    let body = json!({"channel_name": "lobby", "payload": "x"}).to_string();
    let json_type = ("Content-Type", "application/json");
    // Nothing, or a wrong secret: 401 with a Basic challenge.
    let a = request(s.http, "POST", &ch, &[json_type], Some(&body)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.headers.get("www-authenticate").map(String::as_str), Some("Basic realm=\"rtm2\""));
    let a = request(s.http, "POST", &ch, &[("Authorization", "Basic b3BzOndyb25n"), json_type], Some(&body)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    // A token of bob acts as bob, and only as bob.
    let t = rtm_token("bob", 600);
    let bearer = format!("Bearer {t}");
    let as_bob = [("Authorization", bearer.as_str()), ("x-agora-uid", "bob"), json_type];
    assert_eq!(request(s.http, "POST", &ch, &as_bob, Some(&body)).await.status, 200);
    let a = request(s.http, "POST", &messages_path("eve", "channel_messages"), &as_bob, Some(&body)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    // The agora headers work too; a token without its user id, or for another user id: 401.
    let agora = [("x-agora-token", t.as_str()), ("x-agora-uid", "bob"), json_type];
    assert_eq!(request(s.http, "POST", &ch, &agora, Some(&body)).await.status, 200);
    let a = request(s.http, "POST", &ch, &[("x-agora-token", t.as_str()), json_type], Some(&body)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a =
        request(s.http, "POST", &ch, &[("x-agora-token", t.as_str()), ("x-agora-uid", "eve"), json_type], Some(&body))
            .await;
    assert_eq!(a.status, 401, "{}", a.body);
    // A token user cannot kick (operators only): 403.
    let a = request(s.http, "POST", &path("users/alice/kick"), &as_bob, None).await;
    assert_eq!(a.status, 403, "{}", a.body);
    // An app this server does not serve: 403, with Basic or a token.
    let other = "0123456789abcdef0123456789abcdef";
    let a = op(s.http, "GET", &format!("/v1/apps/{other}/users"), None).await;
    assert_eq!((a.status, a.code()), (403, 10003), "{}", a.body);
    let a = request(s.http, "GET", &format!("/v1/apps/{other}/users"), &as_bob, None).await;
    assert_eq!(a.status, 403, "{}", a.body);
    // The console needs the key and secret.
    assert_eq!(request(s.http, "GET", "/console", &[], None).await.status, 401);
    assert_eq!(op(s.http, "GET", "/console", None).await.status, 200);
    // Health, readiness and metrics are open.
    assert_eq!(request(s.http, "GET", "/healthz", &[], None).await.status, 200);
    assert_eq!(request(s.http, "GET", "/metrics", &[], None).await.status, 200);
}

#[tokio::test]
async fn message_calls_and_requests_are_rate_limited_with_429() {
    let s = setup_with(dev_config(), HttpConfig { message_calls_per_s: 5, ..Default::default() }).await;
    let ch = messages_path("bob", "channel_messages");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let a = op(s.http, "POST", &ch, Some(json!({"channel_name": "lobby", "payload": "x"}))).await;
        if a.status == 429 {
            assert_eq!(a.code(), 10021, "{}", a.body);
        }
        statuses.push(a.status);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!((5..=7).contains(&(12 - refused)), "5 per second (plus refill) admitted: {statuses:?}");
    // Other endpoints are not message calls.
    assert_eq!(op(s.http, "GET", &path("users"), None).await.status, 200);

    let s = setup_with(dev_config(), HttpConfig { requests_per_s: 3, ..Default::default() }).await;
    let users = path("users");
    let statuses: Vec<u16> = futures::future::join_all((0..10).map(|_| op(s.http, "GET", &users, None)))
        .await
        .iter()
        .map(|a| a.status)
        .collect();
    assert!(statuses.contains(&429) && statuses.contains(&200), "{statuses:?}");
    // Health is not counted.
    assert_eq!(request(s.http, "GET", "/healthz", &[], None).await.status, 200);
}

#[tokio::test]
async fn who_is_online_where_and_presence_with_states() {
    let s = setup().await;
    let (alice, _rx) = user(s.tcp, "alice", "").await;
    alice.subscribe("lobby", SubscribeOptions::default()).await.unwrap();
    alice.presence().set_state("lobby", ChannelType::MESSAGE, [("mood", "sunny")]).await.unwrap();
    let (bob, _rx2) = user(s.tcp, "bob", "").await;
    bob.subscribe("lobby", SubscribeOptions { be_quiet: true, ..Default::default() }).await.unwrap();

    let a = op(s.http, "GET", &path("users"), None).await;
    let j = a.json();
    let users: Vec<&str> = j["users"].as_array().unwrap().iter().map(|u| u["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["alice", "bob"]);
    let a = op(s.http, "GET", &path("users/alice"), None).await;
    let j = a.json();
    assert_eq!(j["online"], json!(true), "{j}");
    assert_eq!(j["channels"], json!([{"channel_name": "lobby", "channel_type": "MESSAGE"}]), "{j}");
    let a = op(s.http, "GET", &path("users/nobody"), None).await;
    assert_eq!((a.json()["online"].clone(), a.json()["channels"].clone()), (json!(false), json!([])));
    let a = op(s.http, "GET", &path("users/_bad"), None).await;
    assert_eq!((a.status, a.code()), (400, 10006), "{}", a.body);

    // Presence lists visible users (bob is quiet) with their states.
    let a = op(s.http, "GET", &path("channels/MESSAGE/lobby/users?states=true"), None).await;
    let j = a.json();
    assert_eq!(j["total_occupancy"], json!(1), "{j}");
    assert_eq!(j["users"], json!([{"user_id": "alice", "states": {"mood": "sunny"}}]), "{j}");
    let a = op(s.http, "GET", &path("channels/message/lobby/users"), None).await;
    assert_eq!(a.json()["users"], json!([{"user_id": "alice", "states": {}}]));
    let a = op(s.http, "GET", &path("channels/USER/lobby/users"), None).await;
    assert_eq!((a.status, a.code()), (400, 10019), "{}", a.body);

    // The channel list counts both subscribers and the one present.
    let a = op(s.http, "GET", &path("channels"), None).await;
    let lobby =
        a.json()["channels"].as_array().unwrap().iter().find(|c| c["channel_name"] == "lobby").cloned().unwrap();
    assert_eq!((lobby["subscribers"].clone(), lobby["occupancy"].clone()), (json!(2), json!(1)), "{lobby}");
    alice.logout().await.unwrap();
    bob.logout().await.unwrap();
}

#[tokio::test]
async fn metadata_is_read_and_written_with_the_sdks_revision_rules() {
    let s = setup().await;
    let (alice, mut rx) = user(s.tcp, "alice", "").await;
    alice.subscribe("room", SubscribeOptions { with_metadata: true, ..Default::default() }).await.unwrap();
    let m = path("metadata/channel/MESSAGE/room");
    let a = op(
        s.http,
        "PUT",
        &format!("{m}?user_id=backend"),
        Some(json!({"items": [{"key": "topic", "value": "rust"}], "record_author": true})),
    )
    .await;
    assert_eq!((a.status, a.json()["major_revision"].clone()), (200, json!(1)), "{}", a.body);
    // The subscriber sees the update, by the acting user.
    let ev = expect_event(
        &mut rx,
        "a metadata update",
        |e| matches!(e, Event::Storage(s) if s.event_type == StorageEventType::UPDATE),
    )
    .await;
    let Event::Storage(ev) = ev else { unreachable!() };
    assert_eq!((ev.publisher.as_str(), ev.data.get("topic").map(|i| i.value.as_str())), ("backend", Some("rust")));
    let a = op(s.http, "GET", &m, None).await;
    let j = a.json();
    assert_eq!(j["major_revision"], json!(1));
    assert_eq!(
        (j["items"][0]["key"].clone(), j["items"][0]["author_user_id"].clone()),
        (json!("topic"), json!("backend")),
        "{j}"
    );
    // A stale major revision: 409 and 12014, as in the SDK.
    let a =
        op(s.http, "PATCH", &m, Some(json!({"major_revision": 7, "items": [{"key": "topic", "value": "go"}]}))).await;
    assert_eq!((a.status, a.code()), (409, 12014), "{}", a.body);
    let a =
        op(s.http, "PATCH", &m, Some(json!({"major_revision": 1, "items": [{"key": "topic", "value": "go"}]}))).await;
    assert_eq!((a.status, a.json()["major_revision"].clone()), (200, json!(2)), "{}", a.body);
    // Updating a key that does not exist: the SDK's code.
    let a = op(s.http, "PATCH", &m, Some(json!({"items": [{"key": "nope", "value": "x"}]}))).await;
    assert_eq!(a.status / 100, 4, "{}", a.body);
    assert!(a.code() > 12000 && a.code() < 13000, "{}", a.body);
    // Malformed items: 400.
    let a = op(s.http, "PUT", &m, Some(json!({"items": "topic"}))).await;
    assert_eq!((a.status, a.code()), (400, 10014), "{}", a.body);
    // Remove all.
    let a = op(s.http, "DELETE", &m, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(op(s.http, "GET", &m, None).await.json()["items"], json!([]));

    // User metadata.
    let u = path("metadata/user/alice");
    let a = op(s.http, "PUT", &u, Some(json!({"items": [{"key": "bio", "value": "hi"}]}))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = alice.storage().get_user_metadata("alice").await.unwrap();
    assert_eq!(got.get("bio").map(|i| i.value.as_str()), Some("hi"));
    alice.logout().await.unwrap();
}

#[tokio::test]
async fn locks_are_listed_and_revoked_and_users_kicked() {
    let s = setup().await;
    let (alice, mut rx) = user(s.tcp, "alice", "").await;
    alice.subscribe("ops", SubscribeOptions { with_lock: true, ..Default::default() }).await.unwrap();
    alice.lock().set_lock("ops", ChannelType::MESSAGE, "leader", 30).await.unwrap();
    alice.lock().acquire_lock("ops", ChannelType::MESSAGE, "leader", false).await.unwrap();
    let l = path("locks/MESSAGE/ops");
    let a = op(s.http, "GET", &l, None).await;
    let lock = &a.json()["locks"][0];
    assert_eq!(
        (lock["lock_name"].clone(), lock["owner"].clone(), lock["ttl"].clone()),
        (json!("leader"), json!("alice"), json!(30)),
        "{}",
        a.body
    );
    // Revoked by the operator: alice's client hears it.
    let a = op(s.http, "DELETE", &format!("{l}/leader"), None).await;
    assert_eq!((a.status, a.json()["revoked_from"].clone()), (200, json!("alice")), "{}", a.body);
    expect_event(
        &mut rx,
        "the lock released",
        |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::RELEASED && l.lock_name == "leader"),
    )
    .await;
    // A free lock cannot be revoked: 409; an unknown lock: 404 or 409 with the lock code.
    let a = op(s.http, "DELETE", &format!("{l}/leader"), None).await;
    assert_eq!((a.status, a.code()), (409, 14006), "{}", a.body);
    let a = op(s.http, "DELETE", &format!("{l}/ghost?owner=alice"), None).await;
    assert_eq!((a.status, a.code()), (404, 14008), "{}", a.body);

    // Kicked: the client is told KICKED_OUT_BY_SERVER and is offline everywhere.
    let a = op(s.http, "POST", &path("users/alice/kick"), Some(json!({"reason": "maintenance"}))).await;
    assert_eq!((a.status, a.json()["kicked"].clone()), (200, json!(true)), "{}", a.body);
    let ev = expect_event(
        &mut rx,
        "kicked",
        |e| matches!(e, Event::LinkState(l) if l.reason == LinkStateChangeReason::KICKED_OUT_BY_SERVER),
    )
    .await;
    let Event::LinkState(ev) = ev else { unreachable!() };
    assert!(ev.reason_text.contains("maintenance"), "{}", ev.reason_text);
    // Final: the client does not log in again by itself.
    assert_eq!(ev.current, LinkState::FAILED);
    assert_eq!(op(s.http, "GET", &path("users/alice"), None).await.json()["online"], json!(false));
    let a = op(s.http, "POST", &path("users/alice/kick"), None).await;
    assert_eq!((a.status, a.code()), (404, 11033), "{}", a.body);
}

/// Parses the Prometheus text exposition: every sample line is `name{labels} value`.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(matches!(words.first(), Some(&"HELP") | Some(&"TYPE")), "comment line {line:?}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "metric name {name:?}");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line:?}"));
        out.insert(series.to_string(), v);
    }
    out
}

#[tokio::test]
async fn metrics_count_what_happened_and_health_tells_readiness() {
    let s = setup().await;
    let (alice, mut rx) = user(s.tcp, "alice", "").await;
    alice.subscribe("lobby", SubscribeOptions::default()).await.unwrap();
    let (bob, _brx) = user(s.tcp, "bob", "").await;
    for i in 0..20 {
        bob.publish("lobby", format!("m{i}"), PublishOptions::default()).await.unwrap();
    }
    for _ in 0..20 {
        expect_message(&mut rx, |m| m.channel == "lobby").await;
    }
    bob.publish("alice", "direct", PublishOptions::user()).await.unwrap();
    let _ = alice.presence().get_online_users("lobby", ChannelType::MESSAGE, Default::default()).await;
    let a = request(s.http, "GET", "/metrics", &[], None).await;
    assert_eq!(a.status, 200);
    assert!(a.headers["content-type"].starts_with("text/plain; version=0.0.4"), "{:?}", a.headers);
    let m = parse_metrics(&a.body);
    let v = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{}", a.body));
    assert_eq!(v("rtm2_logins_total{result=\"ok\"}"), 2.0);
    assert_eq!(v("rtm2_connections"), 2.0);
    assert_eq!(v("rtm2_sessions"), 2.0);
    assert_eq!(v("rtm2_messages_published_total{channel_type=\"message\"}"), 20.0);
    assert_eq!(v("rtm2_messages_delivered_total{channel_type=\"message\"}"), 20.0);
    assert_eq!(v("rtm2_messages_published_total{channel_type=\"user\"}"), 1.0);
    assert_eq!(v("rtm2_messages_delivered_total{channel_type=\"user\"}"), 1.0);
    assert!(v("rtm2_received_bytes_total") > 20.0 * 10.0 && v("rtm2_sent_bytes_total") > 20.0 * 10.0);
    assert_eq!(v("rtm2_request_duration_seconds_count{operation=\"subscribe\"}"), 1.0);
    assert_eq!(v("rtm2_request_duration_seconds_count{operation=\"get_online_users\"}"), 1.0);
    assert!(v("process_resident_memory_bytes") > 1e6);
    assert_eq!(v("rtm2_ready"), 1.0);
    assert_eq!(v("rtm2_slow_consumer_cuts_total"), 0.0);

    let a = request(s.http, "GET", "/readyz", &[], None).await;
    assert_eq!((a.status, a.json()["ready"].clone()), (200, json!(true)));
    assert_eq!(request(s.http, "POST", "/healthz", &[], None).await.status, 405);
    // Resumed and restored sessions are counted (the server cuts every connection: a resume).
    s.server.drop_all_connections();
    expect_event(&mut rx, "reconnected", |e| is_link(e, LinkState::CONNECTED)).await;
    let m = parse_metrics(&request(s.http, "GET", "/metrics", &[], None).await.body);
    assert!(m["rtm2_sessions_resumed_total"] >= 1.0, "{m:?}");
    // The HTTP side counts its own requests (the scrapes and health checks above).
    assert!(m["rtm2_http_requests_total{status=\"200\"}"] >= 2.0, "{m:?}");
    assert_eq!(m["rtm2_http_requests_total{status=\"405\"}"], 1.0, "{m:?}");
    assert!(m["rtm2_http_request_duration_seconds_count{route=\"metrics\"}"] >= 1.0, "{m:?}");
    alice.logout().await.unwrap();
    bob.logout().await.unwrap();
}

#[tokio::test]
async fn readiness_is_false_while_a_cluster_node_has_no_nats() {
    // A node whose NATS cannot be reached (port 1) does not accept logins: not ready.
    let config = ServerConfig {
        cluster: Some(rtm2_server::ClusterConfig { urls: vec!["nats://127.0.0.1:1".into()], node_id: "n1".into() }),
        ..dev_config()
    };
    let s = setup_with(config, HttpConfig::default()).await;
    let a = request(s.http, "GET", "/readyz", &[], None).await;
    assert_eq!((a.status, a.json()["ready"].clone(), a.json()["node_id"].clone()), (503, json!(false), json!("n1")));
    assert_eq!(request(s.http, "GET", "/healthz", &[], None).await.status, 200);
    // And its REST API says why instead of acting.
    let a = op(s.http, "GET", &path("users"), None).await;
    assert_eq!((a.status, a.code()), (503, 10010), "{}", a.body);
    s.server.shutdown();
}

#[tokio::test]
async fn the_console_streams_a_snapshot_and_a_channels_messages() {
    let s = setup().await;
    let page = op(s.http, "GET", "/console", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"].starts_with("text/html") && page.body.contains("<html"),
        "{}",
        &page.body[..200.min(page.body.len())]
    );

    let (alice, _rx) = user(s.tcp, "alice", "").await;
    alice.subscribe("lobby", SubscribeOptions::default()).await.unwrap();
    let snap = sse_until(s.http, "/console/events", "snapshot", |v| {
        v["apps"].as_array().is_some_and(|apps| {
            apps.iter().any(|a| a["users"].as_array().is_some_and(|u| u.iter().any(|u| u["user_id"] == "alice")))
        })
    })
    .await;
    assert_eq!(snap["ready"], json!(true));
    assert!(snap["connections"].as_u64().unwrap() >= 1);
    let app = snap["apps"].as_array().unwrap().iter().find(|a| a["app_id"] == APP_ID).unwrap();
    assert!(
        app["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["channel_name"] == "lobby" && c["subscribers"] == json!(1)),
        "{app}"
    );

    // The tail: messages published after it started, with their publisher; the console is not
    // present in the channel.
    let http = s.http;
    let tail = tokio::spawn(async move {
        sse_until(http, &format!("/console/tail?app={APP_ID}&channel=lobby"), "message", |m| {
            m["message"] == "to the tail"
        })
        .await
    });
    let deadline = Instant::now() + WAIT;
    while !tail.is_finished() && Instant::now() < deadline {
        alice.publish("lobby", "to the tail", PublishOptions::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = tail.await.unwrap();
    assert_eq!(
        (m["publisher"].clone(), m["channel_type"].clone(), m["message_type"].clone()),
        (json!("alice"), json!("MESSAGE"), json!("STRING"))
    );
    let who = alice.presence().get_online_users("lobby", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(who.occupants.iter().map(|o| o.user_id.as_str()).collect::<Vec<_>>(), ["alice"]);
    // Nor counted among the channel's subscribers (a tail may still be open: the page's
    // stream ends when the page goes).
    let a = op(s.http, "GET", &path("channels"), None).await;
    let lobby =
        a.json()["channels"].as_array().unwrap().iter().find(|c| c["channel_name"] == "lobby").cloned().unwrap();
    assert_eq!(lobby["subscribers"], json!(1), "{lobby}");
    // The tail's copies are not deliveries: alice (receiving her own messages) is the only
    // receiver of each.
    let metrics = request(s.http, "GET", "/metrics", &[], None).await.body;
    let sample = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
    let published = sample("rtm2_messages_published_total{channel_type=\"message\"}");
    assert!(published.as_deref().is_some_and(|p| p != "0"), "{metrics}");
    assert_eq!(sample("rtm2_messages_delivered_total{channel_type=\"message\"}"), published, "{metrics}");
    // A refused tail is a stream of one error event (a browser's EventSource cannot read the
    // body of an error status).
    let e = sse_until(s.http, &format!("/console/tail?app={APP_ID}&channel=_bad"), "error", |_| true).await;
    assert_eq!(e["code"], json!(10008), "{e}");
    alice.logout().await.unwrap();
}

/// Messages delivered 1→1 over TCP in `secs`, while `flood` HTTP connections hammer the HTTP
/// side from a thread of their own (as another process would).
async fn delivery_rate(s: &Setup, secs: f64, flood: usize) -> (f64, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flooder = (flood > 0).then(|| {
        let (stop, served, http) = (stop.clone(), served.clone(), s.http);
        std::thread::spawn(move || {
            // The flood's client runs as another process would: apart (on this machine it
            // cannot be on another; it yields the CPU as a remote client's machine would not
            // take it).
            // SAFETY: setpriority reads no memory of ours; `0` names the calling thread.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let tasks = (0..flood).map(|_| {
                    let (stop, served) = (stop.clone(), served.clone());
                    async move {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let a = op(http, "GET", &path("channels"), None).await;
                            assert!(a.status == 200 || a.status == 429, "{}", a.body);
                            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
                futures::future::join_all(tasks).await;
            });
        })
    });
    let (rx_client, _rx) = user(s.tcp, "rx", "").await;
    let mut sub = rx_client.subscribe("flood", SubscribeOptions::default()).await.unwrap();
    let (tx_client, _trx) = user(s.tcp, "tx", "").await;
    let payload = "p".repeat(128);
    let start = Instant::now();
    let mut received = 0u64;
    let window = 200u64;
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        // A window of publishes in flight at once (pipelined, as a busy publisher sends).
        let publishes = (0..window).map(|_| tx_client.publish("flood", payload.clone(), PublishOptions::default()));
        for r in futures::future::join_all(publishes).await {
            r.unwrap();
        }
        sent += window;
        while received + window / 2 < sent {
            next_message(&mut sub).await;
            received += 1;
        }
    }
    while received < sent {
        next_message(&mut sub).await;
        received += 1;
    }
    let rate = received as f64 / start.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(f) = flooder {
        f.join().unwrap();
    }
    rx_client.logout().await.unwrap();
    tx_client.logout().await.unwrap();
    (rate, served.load(std::sync::atomic::Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_flood_does_not_slow_message_delivery() {
    let s = setup_with(dev_config(), HttpConfig { requests_per_s: 0, ..Default::default() }).await;
    let secs: f64 = std::env::var("RTM2_FLOOD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0);
    let (quiet, _) = delivery_rate(&s, secs, 0).await;
    let (flooded, served) = delivery_rate(&s, secs, 32).await;
    let (quiet2, _) = delivery_rate(&s, secs, 0).await;
    let quiet = quiet.max(quiet2);
    eprintln!(
        "delivery 1→1: {quiet:.0} msg/s quiet, {flooded:.0} msg/s during an HTTP flood of {:.0} requests/s ({:.0} %)",
        served as f64 / secs,
        100.0 * flooded / quiet
    );
    assert!(served > 100, "the flood ran ({served} requests)");
    // The HTTP side has a thread of its own; the flood and the messages share the machine's
    // cores (and the test's own clients), so some slowdown is the CPU's, not a block.
    assert!(flooded > quiet * 0.4, "{flooded:.0} msg/s flooded vs {quiet:.0} quiet");
}

#[tokio::test]
async fn a_development_server_without_a_key_has_an_open_http_side() {
    let server = Server::start(dev_config());
    let http = server.listen_http("127.0.0.1:0", HttpConfig::default()).unwrap();
    // With or without credentials: open, as its messaging side is.
    assert_eq!(request(http, "GET", &path("users"), &[], None).await.status, 200);
    assert_eq!(op(http, "GET", &path("users"), None).await.status, 200);
    assert_eq!(request(http, "GET", "/console", &[("Authorization", "Basic eDp5")], None).await.status, 200);
    // A server with apps (tokens checked) and no key: only tokens.
    let config = ServerConfig {
        apps: vec![rtm2_server::AppCredentials { app_id: APP_ID.into(), certificates: vec![CERT.into()] }],
        ..dev_config()
    };
    let server = Server::start(config);
    let http = server.listen_http("127.0.0.1:0", HttpConfig::default()).unwrap();
    assert_eq!(request(http, "GET", &path("users"), &[], None).await.status, 401);
    assert_eq!(op(http, "GET", &path("users"), None).await.status, 401);
    let t = rtm_token("bob", 600);
    let a = request(http, "GET", &path("users"), &[("x-agora-token", t.as_str()), ("x-agora-uid", "bob")], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn the_listener_limits_slow_bodies_and_connections() {
    let limits = HttpConfig { request_timeout: Duration::from_millis(300), max_connections: 2, ..Default::default() };
    let s = setup_with(dev_config(), limits).await;
    // A body announced but not sent in time: 408.
    let mut slow = tokio::net::TcpStream::connect(s.http).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"chan",
        messages_path("bob", "channel_messages"),
        basic()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut slow, &mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(slow);
    // Two connections held open: a third is closed without an answer, and counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _a = tokio::net::TcpStream::connect(s.http).await.unwrap();
    let _b = tokio::net::TcpStream::connect(s.http).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(s.http).await.unwrap();
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut third, &mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the third connection was served: {}", String::from_utf8_lossy(&buf[..n]));
    drop((_a, _b));
    // Slots come back: the idle connections end (their head timeout), and a new one is served.
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        // (A connection refused while the slots are still taken is reset: try again.)
        let attempt = async {
            let mut c = tokio::net::TcpStream::connect(s.http).await.ok()?;
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
            let mut raw = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut c, &mut raw).await.ok()?;
            let raw = String::from_utf8_lossy(&raw).into_owned();
            raw.starts_with("HTTP/1.1 200").then_some(raw)
        };
        if let Ok(Some(raw)) = tokio::time::timeout(Duration::from_secs(1), attempt).await {
            break raw;
        }
        assert!(Instant::now() < deadline, "no connection slot came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rtm2_http_rejected_total{limit=\"connections\"} ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l == "rtm2_http_rejected_total{limit=\"timeout\"} 1"), "{metrics}");
    // User metadata is read over REST as it was written.
    let u = path("metadata/user/carol");
    assert_eq!(op(s.http, "PUT", &u, Some(json!({"items": [{"key": "k", "value": "v"}]}))).await.status, 200);
    let got = op(s.http, "GET", &u, None).await.json();
    assert_eq!((got["major_revision"].clone(), got["items"][0]["value"].clone()), (json!(1), json!("v")), "{got}");
}
