//! The Rust runner of the language-neutral conformance scenarios in `tests/conformance/`
//! (format: tests/conformance/README.md). Every scenario runs against a fresh real server on
//! loopback TCP, through the public SDK API only (`conformance_scenarios`), and against a fresh
//! 3-node cluster (`conformance_scenarios_cluster`: a nats-server and three in-process nodes
//! joined to it, the i-th client or ghost of the scenario on node i mod 3) when a nats-server
//! is there (`RTM2_NATS_SERVER`, else `.venv-nats/bin/nats-server`; see "Cluster mode" in the
//! README). The scenarios of `CLUSTER_PENDING` are skipped in cluster mode, with their reason.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use rtm2_core::*;
use rtm2_proto::token;
use rtm2_server::{Server, ServerConfig};
use std::result::Result;

const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";
const WAIT: Duration = Duration::from_secs(10);
/// The nodes of cluster mode.
const CLUSTER_NODES: usize = 3;

/// The scenarios that do not pass against a cluster yet, each with the reason: skipped in
/// cluster mode (and logged as such), never counted as passing. The same list in every runner.
const CLUSTER_PENDING: &[(&str, &str)] = &[];

/// Splits a line into words; double quotes group, with \" \\ \n escapes.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => cur.push('\n'),
                            Some(e @ ('"' | '\\')) => cur.push(e),
                            other => return Err(format!("bad escape {other:?}")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn expand(v: &str) -> String {
    match v.strip_prefix("size:").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => "x".repeat(n),
        None => v.to_string(),
    }
}

/// One parsed step: positional words, `key=value` options and the expected outcome.
struct Step {
    line: usize,
    actor: String,
    op: String,
    args: Vec<String>,
    opts: BTreeMap<String, String>,
    expect_error: Option<u32>,
}

fn parse_step(line_no: usize, w: Vec<String>) -> Result<Step, String> {
    let mut w = w;
    let mut expect_error = None;
    if let Some(pos) = w.iter().position(|x| x == "->") {
        let tail: Vec<String> = w.drain(pos..).collect();
        match tail.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["->", "ok"] => {}
            ["->", "error", code] => expect_error = Some(code.parse().map_err(|_| format!("bad code {code}"))?),
            other => return Err(format!("bad outcome {other:?}")),
        }
    }
    if w.len() < 2 {
        return Err("a step needs an actor and an operation".into());
    }
    let actor = w.remove(0);
    let op = w.remove(0);
    let mut args = Vec::new();
    let mut opts = BTreeMap::new();
    for x in w {
        match x.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                opts.insert(k.to_string(), expand(v));
            }
            _ => args.push(expand(&x)),
        }
    }
    Ok(Step { line: line_no, actor, op, args, opts, expect_error })
}

struct Runner {
    /// The server, or the nodes of the cluster.
    nodes: Vec<Server>,
    /// The scenario's server configuration (without the cluster part).
    config: ServerConfig,
    /// The nodes' endpoints (one in single-server mode).
    endpoints: Vec<Endpoint>,
    /// The cluster's nats-server (cluster mode); stopped when dropped.
    nats: Option<common::cluster::Nats>,
    /// Where the next client or ghost goes: node `next_node % nodes`.
    next_node: usize,
    cert: bool,
    clients: HashMap<String, (Client, EventReceiver, String)>,
    /// Operations begun with `start`, by client.
    started: HashMap<String, tokio::task::JoinHandle<Result<(), Error>>>,
    /// Ghosts: a client behind a proxy that `kill` cuts and then refuses.
    ghosts: HashMap<String, (Client, common::Proxy)>,
}

/// `k:v,k2:v2` (or the generators `count=`, `big_key=`, `big_value=`) as pairs.
fn pairs(o: &BTreeMap<String, String>, list_key: &str) -> Vec<(String, String)> {
    if let Some(n) = o.get("count") {
        return (0..n.parse::<usize>().unwrap()).map(|i| (format!("k{i}"), "v".to_string())).collect();
    }
    if let Some(n) = o.get("big_key") {
        return vec![("x".repeat(n.parse().unwrap()), "v".to_string())];
    }
    if let Some(n) = o.get("big_value") {
        return vec![(format!("big{n}"), "x".repeat(n.parse().unwrap()))];
    }
    list(o.get(list_key))
        .into_iter()
        .map(|p| match p.split_once(':') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p, String::new()),
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn channel_type(o: &BTreeMap<String, String>) -> ChannelType {
    match o.get("channel_type").map(String::as_str) {
        None | Some("MESSAGE") => ChannelType::MESSAGE,
        Some("STREAM") => ChannelType::STREAM,
        Some("USER") => ChannelType::USER,
        Some(other) => panic!("unknown channel type {other}"),
    }
}

fn state_list(states: &States) -> String {
    sorted(states.iter().map(|(k, v)| format!("{k}:{v}")).collect()).join(",")
}

fn item_list(m: &Metadata) -> String {
    sorted(m.items.iter().map(|i| format!("{}:{}", i.key, i.value)).collect()).join(",")
}

fn want_list(v: &str) -> String {
    sorted(list(Some(&v.to_string()))).join(",")
}

fn metadata_options(o: &BTreeMap<String, String>) -> MetadataOptions {
    MetadataOptions {
        major_revision: o.get("major").map_or(-1, |v| v.parse().unwrap()),
        lock_name: o.get("lock").cloned().unwrap_or_default(),
        fencing_token: 0,
        record_ts: flag(o, "record_ts", false),
        record_author: flag(o, "record_author", false),
    }
}

fn metadata_items(o: &BTreeMap<String, String>) -> Vec<MetadataItem> {
    let revision = o.get("revision").map_or(-1, |v| v.parse().unwrap());
    let mut items: Vec<MetadataItem> =
        pairs(o, "items").into_iter().map(|(k, v)| MetadataItem::new(k, v).with_revision(revision)).collect();
    items.extend(list(o.get("keys")).into_iter().map(MetadataItem::key));
    items
}

fn check_write(line: usize, o: &BTreeMap<String, String>, w: MetadataWrite) {
    if let Some(m) = o.get("result_major") {
        assert_eq!(w.major_revision.to_string(), *m, "line {line}: major revision after the write");
    }
    if let Some(t) = o.get("total") {
        assert_eq!(w.total_count.to_string(), *t, "line {line}: item count after the write");
    }
}

fn check_metadata(line: usize, o: &BTreeMap<String, String>, m: &Metadata) {
    if let Some(want) = o.get("items") {
        assert_eq!(item_list(m), want_list(want), "line {line}: items");
    }
    if let Some(want) = o.get("major") {
        assert_eq!(m.major_revision.to_string(), *want, "line {line}: major revision");
    }
    for (k, author) in pairs(o, "authors") {
        assert_eq!(m.get(&k).map(|i| i.author.clone()), Some(author), "line {line}: author of {k}");
    }
    for k in list(o.get("stamped")) {
        assert!(m.get(&k).is_some_and(|i| i.updated_ms > 0), "line {line}: {k} has no update time");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn flag(opts: &BTreeMap<String, String>, k: &str, default: bool) -> bool {
    opts.get(k).map(|v| v == "true").unwrap_or(default)
}

fn list(v: Option<&String>) -> Vec<String> {
    match v {
        Some(s) if !s.is_empty() => s.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The comparable fields of an event if it is of `kind` (None for other kinds).
fn fields(ev: &Event, kind: &str, line: usize) -> Option<BTreeMap<&'static str, String>> {
    let mut got: BTreeMap<&'static str, String> = BTreeMap::new();
    match (ev, kind) {
        (Event::Message(m), "message") => {
            got.insert("channel_type", m.channel_type.name().into());
            got.insert("channel", m.channel.to_string());
            got.insert("topic", m.topic.to_string());
            got.insert("publisher", m.publisher.to_string());
            got.insert("text", m.text().unwrap_or_default().to_string());
            got.insert("hex", hex(&m.payload));
            got.insert("message_type", m.message_type.name().into());
            got.insert("custom_type", m.custom_type.to_string());
        }
        (Event::Topic(t), "topic_event") => {
            got.insert("type", t.event_type.name().into());
            got.insert("channel", t.channel.clone());
            let first = t.topics.first();
            got.insert("topic", first.map(|x| x.topic.clone()).unwrap_or_default());
            let p = first.and_then(|x| x.publishers.first());
            got.insert("meta", p.map(|p| p.meta.clone()).unwrap_or_default());
            // A snapshot has no publisher of its own: compare the first topic's first publisher.
            let publisher = if t.event_type == TopicEventType::SNAPSHOT {
                p.map(|p| p.user_id.clone()).unwrap_or_default()
            } else {
                t.publisher.clone()
            };
            got.insert("publisher", publisher);
        }
        (Event::LinkState(l), "link_state") => {
            got.insert("service", l.service_type.name().into());
            got.insert("state", l.current.name().into());
            got.insert("reason", l.reason.name().into());
            got.insert("channel", l.channel.clone());
        }
        (Event::TokenPrivilegeWillExpire(ch), "token_will_expire") => {
            got.insert("channel", ch.clone().unwrap_or_default());
        }
        (Event::Presence(p), "presence") => {
            got.insert("type", p.event_type.name().into());
            got.insert("channel", p.channel.clone());
            got.insert("channel_type", p.channel_type.name().into());
            got.insert("publisher", p.publisher.clone());
            got.insert("states", state_list(&p.states));
            got.insert("snapshot", sorted(p.snapshot.iter().map(|u| u.user_id.clone()).collect()).join(","));
            let i = p.interval.clone().unwrap_or_default();
            got.insert("joined", sorted(i.joined).join(","));
            got.insert("left", sorted(i.left).join(","));
            got.insert("timed_out", sorted(i.timed_out).join(","));
            got.insert("changed", sorted(i.states.iter().map(|u| u.user_id.clone()).collect()).join(","));
            got.insert("total", i.total_occupancy.to_string());
        }
        (Event::Storage(e), "storage") => {
            got.insert("type", e.event_type.name().into());
            got.insert("storage_type", e.storage_type.name().into());
            got.insert("channel_type", e.channel_type.name().into());
            got.insert("target", e.target.clone());
            got.insert("publisher", e.publisher.clone());
            got.insert("items", item_list(&e.data));
            got.insert("major", e.data.major_revision.to_string());
        }
        (Event::Lock(l), "lock") => {
            got.insert("type", l.event_type.name().into());
            got.insert("channel", l.channel.clone());
            got.insert("channel_type", l.channel_type.name().into());
            got.insert("lock", l.lock_name.clone());
            got.insert("owner", l.owner.clone());
            got.insert("publisher", l.publisher.clone());
            got.insert("ttl", l.ttl_s.to_string());
            got.insert(
                "snapshot",
                sorted(l.snapshot.iter().map(|d| format!("{}:{}", d.name, d.owner)).collect()).join(","),
            );
        }
        (Event::Overflow { .. }, _) => panic!("line {line}: event queue overflow"),
        _ => return None,
    }
    Some(got)
}

impl Runner {
    async fn start(words: &[String], nats_bin: Option<&str>) -> Runner {
        let mode = words.get(1).map(String::as_str).unwrap_or("dev");
        let mut config = ServerConfig::default();
        let cert = mode == "cert";
        if cert {
            config = ServerConfig::with_app(APP_ID, CERT);
        }
        config.rate_limits = rtm2_server::RateLimits::unlimited();
        for w in &words[2..] {
            if let Some(n) = w.strip_prefix("notice=") {
                config.token_will_expire_notice = Duration::from_secs(n.parse().unwrap());
            }
            if let Some(n) = w.strip_prefix("ttl_unit_ms=") {
                config.ttl_unit = Duration::from_millis(n.parse().unwrap());
            }
            if let Some(n) = w.strip_prefix("presence_announce_max=") {
                config.presence_announce_max = n.parse().unwrap();
            }
            if let Some(n) = w.strip_prefix("presence_interval_ms=") {
                config.presence_interval = Duration::from_millis(n.parse().unwrap());
            }
            match w.as_str() {
                "rate_limits=reference" => config.rate_limits = rtm2_server::RateLimits::reference(),
                "rate_limits=off" => {}
                other if other.starts_with("rate_limits=") => panic!("unknown {other}"),
                _ => {}
            }
        }
        let mut runner = Runner {
            nodes: Vec::new(),
            config,
            endpoints: Vec::new(),
            nats: None,
            next_node: 0,
            cert,
            clients: HashMap::new(),
            started: HashMap::new(),
            ghosts: HashMap::new(),
        };
        match nats_bin {
            None => runner.start_nodes(&["127.0.0.1:0".to_string()]).await,
            Some(bin) => {
                runner.nats = Some(common::cluster::start_nats_at(bin).await);
                runner.start_nodes(&vec!["127.0.0.1:0".to_string(); CLUSTER_NODES]).await;
            }
        }
        runner
    }

    /// Starts the server (or the nodes of the cluster, each listening once it has joined NATS)
    /// on these addresses.
    async fn start_nodes(&mut self, addrs: &[String]) {
        static GENERATION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.nodes.clear();
        self.endpoints.clear();
        for (i, addr) in addrs.iter().enumerate() {
            let mut config = self.config.clone();
            if let Some(nats) = &self.nats {
                let node_id = format!("conformance-{}-{generation}-{}", std::process::id(), i + 1);
                config.cluster = Some(rtm2_server::ClusterConfig { urls: vec![nats.url.clone()], node_id });
            }
            let server = Server::start(config);
            // A node listens once it has joined the cluster, as `rtm2 serve --cluster` does (a
            // client reconnecting to a restarted node meanwhile finds its port closed).
            let deadline = tokio::time::Instant::now() + WAIT;
            while self.nats.is_some() && !server.cluster_ready() {
                assert!(tokio::time::Instant::now() < deadline, "node {i} did not join the cluster within {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // A restarted node takes its old port again, which may not be free yet for a moment.
            let mut bound = None;
            for _ in 0..200 {
                match server.listen_tcp(addr.as_str()).await {
                    Ok(a) => {
                        bound = Some(a);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                }
            }
            let bound = bound.unwrap_or_else(|| panic!("could not listen on {addr}"));
            self.endpoints.push(Endpoint::Tcp(bound.to_string()));
            self.nodes.push(server);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.nodes.iter().all(Server::cluster_ready) {
            assert!(tokio::time::Instant::now() < deadline, "the nodes did not join the cluster within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server (every node) and starts it again with the same configuration on the
    /// same port(s) (and the same NATS).
    async fn restart(&mut self) {
        for node in &self.nodes {
            node.shutdown();
        }
        let addrs: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| match e {
                Endpoint::Tcp(a) => a.clone(),
                _ => unreachable!(),
            })
            .collect();
        self.start_nodes(&addrs).await;
    }

    /// The endpoint of the next client or ghost: node i mod N for the i-th of them.
    fn next_endpoint(&mut self) -> Endpoint {
        let e = self.endpoints[self.next_node % self.endpoints.len()].clone();
        self.next_node += 1;
        e
    }

    fn shutdown(&self) {
        for node in &self.nodes {
            node.shutdown();
        }
    }

    fn token(&self, kind: Option<&String>, user: &str, channel: Option<&str>) -> String {
        let kind = kind.map(String::as_str).unwrap_or("auto");
        let build = |u: &str, secs: u32| match channel {
            Some(ch) => token::build_stream_token(APP_ID, CERT, ch, u, secs).unwrap(),
            None => token::build_rtm_token(APP_ID, CERT, u, secs).unwrap(),
        };
        match kind {
            "auto" if self.cert => build(user, 3600),
            "auto" | "none" => String::new(),
            "bad" => "007garbage".into(),
            "expired" => build(user, 0),
            "other" => build("someone-else", 3600),
            k => match k.strip_prefix("short:") {
                Some(n) => build(user, n.parse().unwrap()),
                None => panic!("unknown token kind {k}"),
            },
        }
    }

    async fn op(&mut self, s: &Step) -> Result<(), Error> {
        let (client, _, user) = self.clients.get(&s.actor).unwrap_or_else(|| panic!("unknown client {}", s.actor));
        let (client, user) = (client.clone(), user.clone());
        let a = |i: usize| s.args.get(i).cloned().unwrap_or_else(|| panic!("line {}: missing argument {i}", s.line));
        let o = &s.opts;
        match s.op.as_str() {
            "login" => client.login(&self.token(o.get("token"), &user, None)).await.map(drop),
            "logout" => client.logout().await.map(drop),
            "renew_token" => match o.get("channel") {
                Some(ch) => {
                    let t = self.token(o.get("token"), &user, Some(ch));
                    client.stream_channel(ch)?.renew_token(&t).await.map(drop)
                }
                None => client.renew_token(&self.token(o.get("token"), &user, None)).await.map(drop),
            },
            "set_parameters" => client.set_parameters(&a(0)),
            "subscribe" => {
                let opts = SubscribeOptions {
                    with_message: flag(o, "with_message", true),
                    with_presence: flag(o, "with_presence", true),
                    with_metadata: flag(o, "with_metadata", false),
                    with_lock: flag(o, "with_lock", false),
                    be_quiet: flag(o, "be_quiet", false),
                };
                client.subscribe(&a(0), opts).await.map(|_| ())
            }
            "unsubscribe" => client.unsubscribe(&a(0)).await.map(drop),
            "publish" | "publish_binary" | "publish_size" => {
                let mut opts = if o.get("channel_type").map(String::as_str) == Some("USER") {
                    PublishOptions::user()
                } else {
                    PublishOptions::default()
                };
                opts.custom_type = o.get("custom_type").cloned().unwrap_or_default();
                let payload: Payload = match s.op.as_str() {
                    "publish" => a(1).into(),
                    "publish_binary" => unhex(&a(1)).into(),
                    _ => "x".repeat(a(1).parse().unwrap()).into(),
                };
                client.publish(&a(0), payload, opts).await.map(drop)
            }
            "join" => {
                let t = self.token(o.get("token"), &user, Some(&a(0)));
                let opts = JoinOptions {
                    token: t,
                    with_presence: flag(o, "with_presence", true),
                    with_metadata: flag(o, "with_metadata", false),
                    with_lock: flag(o, "with_lock", false),
                    be_quiet: flag(o, "be_quiet", false),
                };
                client.stream_channel(&a(0))?.join(opts).await.map(|_| ())
            }
            "leave" => client.stream_channel(&a(0))?.leave().await.map(drop),
            "join_topic" => {
                let opts = JoinTopicOptions { meta: o.get("meta").cloned().unwrap_or_default(), ..Default::default() };
                client.stream_channel(&a(0))?.join_topic(&a(1), opts).await.map(drop)
            }
            "leave_topic" => client.stream_channel(&a(0))?.leave_topic(&a(1)).await.map(drop),
            "publish_topic" => {
                let opts =
                    TopicMessageOptions { custom_type: o.get("custom_type").cloned().unwrap_or_default(), send_ts: 0 };
                client.stream_channel(&a(0))?.publish_topic(&a(1), a(2), opts).await.map(drop)
            }
            "subscribe_topic" => {
                let users = list(o.get("users"));
                let refs: Vec<&str> = users.iter().map(String::as_str).collect();
                let r = client.stream_channel(&a(0))?.subscribe_topic(&a(1), &refs).await?;
                if let Some(want) = o.get("succeeded") {
                    assert_eq!(r.succeeded, list(Some(want)), "line {}: succeeded users", s.line);
                }
                if let Some(want) = o.get("failed") {
                    let got: Vec<String> = r.failed.iter().map(|f| format!("{}:{}", f.user_id, f.code)).collect();
                    assert_eq!(got, list(Some(want)), "line {}: failed users", s.line);
                }
                Ok(())
            }
            "unsubscribe_topic" => {
                let users = list(o.get("users"));
                let refs: Vec<&str> = users.iter().map(String::as_str).collect();
                client.stream_channel(&a(0))?.unsubscribe_topic(&a(1), &refs).await.map(drop)
            }
            "subscribed_users" => {
                let got = client.stream_channel(&a(0))?.subscribed_users(&a(1))?;
                if let Some(want) = o.get("users") {
                    assert_eq!(got, list(Some(want)), "line {}: subscribed users", s.line);
                }
                Ok(())
            }
            "set_state" => client.presence().set_state(&a(0), channel_type(o), pairs(o, "states")).await.map(drop),
            "get_state" => {
                let got = client.presence().get_state(&a(0), channel_type(o), &a(1)).await?;
                if let Some(want) = o.get("states") {
                    assert_eq!(state_list(&got.states), want_list(want), "line {}: state", s.line);
                }
                Ok(())
            }
            "remove_state" => {
                client.presence().remove_state(&a(0), channel_type(o), list(o.get("keys"))).await.map(drop)
            }
            "who_now" => {
                let opts = GetOnlineUsersOptions {
                    include_user_id: flag(o, "include_user_id", true),
                    include_state: flag(o, "include_state", false),
                    page: String::new(),
                };
                let got = client.presence().who_now(&a(0), channel_type(o), opts).await?;
                if let Some(want) = o.get("users") {
                    let users = sorted(got.occupants.iter().map(|u| u.user_id.clone()).collect()).join(",");
                    assert_eq!(users, want_list(want), "line {}: users", s.line);
                }
                if let Some(want) = o.get("total") {
                    assert_eq!(got.total_occupancy.to_string(), *want, "line {}: total occupancy", s.line);
                }
                Ok(())
            }
            "where_now" => {
                let got = client.presence().where_now(&a(0)).await?;
                if let Some(want) = o.get("channels") {
                    let have = sorted(got.iter().map(|c| format!("{}:{}", c.channel_type.name(), c.channel)).collect());
                    assert_eq!(have.join(","), want_list(want), "line {}: channels", s.line);
                }
                Ok(())
            }
            "set_channel_metadata" | "update_channel_metadata" | "remove_channel_metadata" => {
                let st = client.storage();
                let (ch, t, items, opts) = (a(0), channel_type(o), metadata_items(o), metadata_options(o));
                let w = match s.op.as_str() {
                    "set_channel_metadata" => st.set_channel_metadata(&ch, t, items, opts).await?,
                    "update_channel_metadata" => st.update_channel_metadata(&ch, t, items, opts).await?,
                    _ => st.remove_channel_metadata(&ch, t, items, opts).await?,
                };
                check_write(s.line, o, w.into_inner());
                Ok(())
            }
            "set_user_metadata" | "update_user_metadata" | "remove_user_metadata" => {
                let st = client.storage();
                let (u, items, opts) = (a(0), metadata_items(o), metadata_options(o));
                let w = match s.op.as_str() {
                    "set_user_metadata" => st.set_user_metadata(&u, items, opts).await?,
                    "update_user_metadata" => st.update_user_metadata(&u, items, opts).await?,
                    _ => st.remove_user_metadata(&u, items, opts).await?,
                };
                check_write(s.line, o, w.into_inner());
                Ok(())
            }
            "get_channel_metadata" => {
                let m = client.storage().get_channel_metadata(&a(0), channel_type(o)).await?;
                check_metadata(s.line, o, &m);
                Ok(())
            }
            "get_user_metadata" => {
                let m = client.storage().get_user_metadata(&a(0)).await?;
                check_metadata(s.line, o, &m);
                Ok(())
            }
            "subscribe_user_metadata" => client.storage().subscribe_user_metadata(&a(0)).await.map(drop),
            "unsubscribe_user_metadata" => client.storage().unsubscribe_user_metadata(&a(0)).await.map(drop),
            "set_lock" => {
                let ttl = o.get("ttl").map_or(0, |v| v.parse().unwrap());
                client.lock().set_lock(&a(0), channel_type(o), &a(1), ttl).await.map(drop)
            }
            "remove_lock" => client.lock().remove_lock(&a(0), channel_type(o), &a(1)).await.map(drop),
            "acquire_lock" => {
                client.lock().acquire_lock(&a(0), channel_type(o), &a(1), flag(o, "retry", false)).await.map(|_| ())
            }
            "release_lock" => client.lock().release_lock(&a(0), channel_type(o), &a(1)).await.map(drop),
            "revoke_lock" => client.lock().revoke_lock(&a(0), channel_type(o), &a(1), &a(2)).await.map(drop),
            "get_locks" => {
                let got = client.lock().get_locks(&a(0), channel_type(o)).await?;
                if let Some(want) = o.get("locks") {
                    let have = sorted(got.iter().map(|l| format!("{}:{}", l.name, l.owner)).collect());
                    assert_eq!(have.join(","), want_list(want), "line {}: locks", s.line);
                }
                Ok(())
            }
            other => panic!("line {}: unknown operation {other}", s.line),
        }
    }

    /// A user in "another process": a client behind a proxy, subscribed (and holding a lock).
    async fn ghost(&mut self, name: &str, channel: &str, lock: Option<&str>) {
        let Endpoint::Tcp(addr) = &self.next_endpoint() else { unreachable!() };
        let proxy = common::Proxy::start(addr.parse().unwrap()).await;
        let mut cfg = ClientConfig::new(APP_ID, name).endpoint(Endpoint::Tcp(proxy.addr.to_string()));
        cfg.presence_timeout_s = 5;
        let c = Client::new(cfg).unwrap();
        c.login(&self.token(None, name, None)).await.unwrap();
        c.subscribe(channel, SubscribeOptions::default()).await.unwrap();
        if let Some(l) = lock {
            c.lock().acquire_lock(channel, ChannelType::MESSAGE, l, true).await.unwrap();
        }
        self.ghosts.insert(name.to_string(), (c, proxy));
    }

    fn kill(&mut self, name: &str) {
        let (_, proxy) = self.ghosts.get(name).unwrap_or_else(|| panic!("no ghost {name}"));
        proxy.refuse(true);
        proxy.cut_all();
    }

    async fn expect(&mut self, s: &Step) {
        let kind = s.args.first().cloned().unwrap_or_default();
        let (_, events, _) = self.clients.get_mut(&s.actor).unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => panic!("line {}: event stream ended", s.line),
                Err(_) => panic!("line {}: no matching {kind} event within {WAIT:?}", s.line),
            };
            let Some(got) = fields(&ev, &kind, s.line) else { continue };
            let list_fields = ["snapshot", "joined", "left", "timed_out", "changed", "states", "items"];
            let mismatch = s.opts.iter().find(|(k, want)| {
                let have = got.get(k.as_str()).unwrap_or_else(|| panic!("line {}: unknown field {k}", s.line));
                if list_fields.contains(&k.as_str()) { *have != want_list(want) } else { have != *want }
            });
            let login_notice =
                kind == "token_will_expire" && !s.opts.contains_key("channel") && !got["channel"].is_empty();
            match (mismatch, kind.as_str()) {
                (None, _) if !login_notice => return,
                // The next message must be the expected one: no extra, missing or reordered messages.
                (Some((k, want)), "message") => {
                    panic!("line {}: field {k} is {:?}, expected {want:?} in {ev:?}", s.line, got[k.as_str()])
                }
                _ => continue,
            }
        }
    }

    async fn run_step(&mut self, s: &Step) {
        if s.op == "expect" {
            return self.expect(s).await;
        }
        if s.op == "start" {
            let inner = Step {
                line: s.line,
                actor: s.actor.clone(),
                op: s.args[0].clone(),
                args: s.args[1..].to_vec(),
                opts: s.opts.clone(),
                expect_error: None,
            };
            // The operation is queued now (so it is sent before later steps); its answer is
            // awaited by `finish`.
            let mut runner = Runner {
                nodes: Vec::new(),
                config: self.config.clone(),
                endpoints: Vec::new(),
                nats: None,
                next_node: 0,
                cert: self.cert,
                clients: HashMap::new(),
                started: HashMap::new(),
                ghosts: HashMap::new(),
            };
            let (c, _, u) = &self.clients[&s.actor];
            runner.clients.insert(s.actor.clone(), (c.clone(), c.events(), u.clone()));
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                let fut = runner.op(&inner);
                tokio::pin!(fut);
                // Poll once so the request is queued before the next step runs.
                let first = futures::poll!(&mut fut);
                let _ = tx.send(());
                match first {
                    std::task::Poll::Ready(r) => r,
                    std::task::Poll::Pending => fut.await,
                }
            });
            let _ = rx.await;
            self.started.insert(s.actor.clone(), task);
            return;
        }
        let r = if s.op == "finish" {
            let task = self.started.remove(&s.actor).unwrap_or_else(|| panic!("line {}: nothing started", s.line));
            match tokio::time::timeout(WAIT, task).await {
                Ok(r) => r.unwrap(),
                Err(_) => panic!("line {}: the started operation did not finish within {WAIT:?}", s.line),
            }
        } else {
            self.op(s).await
        };
        match (s.expect_error, r) {
            (None, Ok(())) => {}
            (None, Err(e)) => panic!("line {}: {} {}: unexpected error {e}", s.line, s.actor, s.op),
            (Some(code), Ok(())) => panic!("line {}: {} {}: succeeded, expected error {code}", s.line, s.actor, s.op),
            (Some(code), Err(e)) => {
                assert_eq!(e.code.code(), code, "line {}: {} {}: wrong code ({e})", s.line, s.actor, s.op)
            }
        }
    }
}

/// Runs one scenario: against one server, or (`nats_bin`) against a fresh cluster.
async fn run_scenario(path: &Path, nats_bin: Option<&str>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut runner: Option<Runner> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w = words(line).unwrap_or_else(|e| panic!("{}:{line_no}: {e}", path.display()));
        match w[0].as_str() {
            "server" if w.get(1).map(String::as_str) == Some("restart") => {
                runner.as_mut().expect("server first").restart().await
            }
            "server" => runner = Some(Runner::start(&w, nats_bin).await),
            "client" => {
                let r = runner.as_mut().expect("server first");
                let name = w[1].clone();
                let user = w[2..].iter().find_map(|x| x.strip_prefix("user=")).unwrap_or(&name).to_string();
                let mut cfg = ClientConfig::new(APP_ID, &user).endpoint(r.next_endpoint());
                cfg.reconnect_initial_backoff = Duration::from_millis(20);
                let c = Client::new(cfg).unwrap();
                let events = c.events();
                r.clients.insert(name, (c, events, user));
            }
            "ghost" => {
                let r = runner.as_mut().expect("server first");
                let lock = w[3..].iter().find_map(|x| x.strip_prefix("lock="));
                r.ghost(&w[1], &w[2], lock).await;
            }
            "kill" => runner.as_mut().expect("server first").kill(&w[1]),
            "repeat" => {
                let n: usize = w[1].parse().unwrap();
                for k in 0..n {
                    let ws: Vec<String> = w[2..].iter().map(|x| x.replace("{i}", &k.to_string())).collect();
                    let step = parse_step(line_no, ws).unwrap();
                    runner.as_mut().unwrap().run_step(&step).await;
                }
            }
            _ => {
                let step = parse_step(line_no, w).unwrap_or_else(|e| panic!("{}:{line_no}: {e}", path.display()));
                runner.as_mut().expect("server first").run_step(&step).await;
            }
        }
    }
    if let Some(r) = runner {
        r.shutdown();
    }
}

fn scenarios() -> Vec<PathBuf> {
    // RTM2_CONFORMANCE_DIR: the scenarios of another directory (as the Go runner).
    let dir = match std::env::var_os("RTM2_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/scenarios"),
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_scenarios() {
    let all = scenarios();
    assert!(!all.is_empty(), "scenarios missing");
    for path in all {
        eprintln!("scenario {}", path.file_name().unwrap().to_string_lossy());
        run_scenario(&path, None).await;
    }
}

/// Every scenario against a fresh 3-node cluster (in-process nodes on one nats-server), its
/// clients spread over the nodes; skipped (and said so) without a nats-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_scenarios_cluster() {
    let Some(nats) = common::cluster::nats_server_bin() else {
        eprintln!(
            "cluster mode skipped: no nats-server (set RTM2_NATS_SERVER, or run scripts/install-nats to put one in .venv-nats)"
        );
        return;
    };
    let mut failed = Vec::new();
    for path in scenarios() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some((_, why)) = CLUSTER_PENDING.iter().find(|(f, _)| *f == file) {
            eprintln!("scenario {file} (cluster): skipped, pending: {why}");
            continue;
        }
        eprintln!("scenario {file} (cluster)");
        let (path, nats) = (path.clone(), nats.clone());
        // Each scenario in a task of its own, so that one failing scenario does not hide the
        // others' results.
        if let Err(e) = tokio::spawn(async move { run_scenario(&path, Some(&nats)).await }).await {
            eprintln!("scenario {file} (cluster): FAILED");
            failed.push(file);
            drop(e);
        }
    }
    assert!(failed.is_empty(), "scenarios failed in cluster mode: {failed:?}");
}

#[test]
fn the_line_syntax() {
    assert_eq!(words(r#"a "b c" d="e \"f\"" \n"#).unwrap(), vec!["a", "b c", "d=e \"f\"", "\\n"]);
    let s = parse_step(1, words("alice publish room \"hi there\" custom_type=size:3 -> error 11010").unwrap()).unwrap();
    assert_eq!((s.actor.as_str(), s.op.as_str()), ("alice", "publish"));
    assert_eq!(s.args, vec!["room", "hi there"]);
    assert_eq!(s.opts["custom_type"], "xxx");
    assert_eq!(s.expect_error, Some(11010));
    assert!(words("\"open").is_err());
}
