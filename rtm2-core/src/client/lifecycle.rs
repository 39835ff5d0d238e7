//! The login state machine: login, the supervisor that connects, reconnects and restores
//! (deciding between DISCONNECTED and FAILED), logout and shutdown.

use super::*;

enum EndKind {
    Fatal(LinkStateChangeReason, String),
    Transient(LinkOperation, LinkStateChangeReason, String),
}

fn classify(end: LinkEnd) -> EndKind {
    match end.goodbye {
        Some((_, reason, text)) => match reason {
            LinkStateChangeReason::CONNECTION_ERROR
            | LinkStateChangeReason::KEEP_ALIVE_TIMEOUT
            | LinkStateChangeReason::UNKNOWN => EndKind::Transient(LinkOperation::SERVER_REJECT, reason, text),
            _ => EndKind::Fatal(reason, text),
        },
        None if end.keepalive_timeout => {
            EndKind::Transient(LinkOperation::HEARTBEAT_TIMEOUT, LinkStateChangeReason::KEEP_ALIVE_TIMEOUT, end.detail)
        }
        None => EndKind::Transient(LinkOperation::NETWORK_CHANGE, LinkStateChangeReason::CONNECTION_ERROR, end.detail),
    }
}

impl Inner {
    /// Starts a login at call time, so that operations issued right after `login()` wait for
    /// it instead of failing with NOT_LOGIN.
    pub(super) fn begin_login(self: &Arc<Self>, token: String) -> Result<(u64, oneshot::Receiver<Result<u64>>)> {
        let op = "login";
        if crate::runtime::forked() {
            return Err(crate::runtime::forked_error(op));
        }
        if token.len() > rtm2_proto::token::MAX_TOKEN_LEN {
            return Err(Error::new(ErrorCode::INVALID_TOKEN, op, "token is too long"));
        }
        let (tx, rx) = oneshot::channel();
        let generation = {
            let mut st = self.state.lock().unwrap();
            match st.link_state {
                LinkState::CONNECTED | LinkState::DISCONNECTED | LinkState::SUSPENDED => {
                    return Err(Error::new(
                        ErrorCode::DUPLICATE_OPERATION,
                        op,
                        "already logged in; call logout before logging in again",
                    ));
                }
                _ => {}
            }
            // A login in progress is cancelled (its caller gets LOGIN_CANCELED).
            if let Some(s) = st.supervisor.take() {
                s.abort();
            }
            if let Some(l) = st.link.take() {
                l.close("login cancelled");
            }
            st.generation += 1;
            st.token = token;
            st.cache = Cache::default();
            // A new login starts a new session: nothing of an earlier one is resumed.
            self.session.reset("a new login started");
            self.attempts.lock().unwrap().clear();
            st.generation
        };
        self.slot.send_replace(Slot::Connecting);
        self.emit_link_state(
            Some(generation),
            LinkState::CONNECTING,
            LinkOperation::LOGIN,
            LinkStateChangeReason::LOGIN,
            String::new(),
            vec![],
        );
        let mut st = self.state.lock().unwrap();
        if st.generation == generation {
            let handle = runtime().spawn(supervise(self.clone(), generation, tx));
            st.supervisor = Some(handle.abort_handle());
        }
        Ok((generation, rx))
    }

    pub(super) async fn finish_login(
        self: Arc<Self>,
        generation: u64,
        rx: oneshot::Receiver<Result<u64>>,
        timeout: Duration,
    ) -> Result<Ack> {
        let op = "login";
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r.map(Ack::at),
            Ok(Err(_)) => {
                Err(Error::new(ErrorCode::LOGIN_CANCELED, op, "a newer login or a logout cancelled this login"))
            }
            Err(_) => {
                let current = {
                    let mut st = self.state.lock().unwrap();
                    if st.generation == generation {
                        if let Some(s) = st.supervisor.take() {
                            s.abort();
                        }
                        true
                    } else {
                        false
                    }
                };
                let e = Error::timeout(
                    ErrorCode::LOGIN_TIMEOUT,
                    op,
                    format!("not connected within {} ms{}", timeout.as_millis(), self.attempts_text()),
                );
                if current {
                    self.fail(
                        Some(generation),
                        LinkStateChangeReason::LOGIN_TIMEOUT,
                        LinkOperation::LOGIN,
                        e.reason.clone(),
                    );
                }
                Err(e)
            }
        }
    }

    /// Enters FAILED for login `generation` (None: whatever login is current): no more
    /// reconnects; operations fail with NOT_LOGIN until the next login. Does nothing if a newer
    /// login began meanwhile. The check and the state change happen under one lock, so an old
    /// supervisor finishing late cannot fail a newer login.
    fn fail(&self, generation: Option<u64>, reason: LinkStateChangeReason, operation: LinkOperation, text: String) {
        let (previous, affected) = {
            let mut st = self.state.lock().unwrap();
            if generation.is_some_and(|g| g != st.generation) {
                return;
            }
            st.supervisor = None;
            if let Some(l) = st.link.take() {
                l.close("failed");
            }
            let previous = st.link_state;
            st.link_state = LinkState::FAILED;
            self.slot.send_replace(Slot::Down(Error::new(
                ErrorCode::NOT_LOGIN,
                "request",
                format!("the client is not logged in (link failed: {}: {text})", reason.name()),
            )));
            let affected = st.cache.channels.keys().chain(st.cache.streams.keys()).cloned().collect();
            (previous, affected)
        };
        self.session.reset("the client is not logged in");
        self.hub.emit(Event::LinkState(Arc::new(LinkStateEvent {
            current: LinkState::FAILED,
            previous,
            service_type: ServiceType::MESSAGE,
            operation,
            reason,
            reason_text: text,
            channel: String::new(),
            affected_channels: affected,
            unrestored_channels: Vec::new(),
            is_resumed: false,
            timestamp_ms: now_ms(),
        })));
        self.release();
        self.hub.close_all_channels();
    }

    pub(super) async fn logout(self: Arc<Self>) -> Result<Ack> {
        let (supervisor, link, was) = {
            let mut st = self.state.lock().unwrap();
            st.generation += 1;
            st.cache = Cache::default();
            (st.supervisor.take(), st.link.take(), st.link_state)
        };
        if let Some(s) = supervisor {
            s.abort();
        }
        self.slot.send_replace(Slot::Down(not_logged_in("logged out")));
        // The server's time of its answer; when it cannot answer (not connected), the local time.
        let mut at = None;
        if let Some(link) = link {
            at = link.logout().await;
        }
        self.session.reset("logged out");
        self.release();
        self.hub.close_all_channels();
        if was != LinkState::IDLE {
            self.emit_link_state(
                None,
                LinkState::IDLE,
                LinkOperation::LOGOUT,
                LinkStateChangeReason::LOGOUT,
                String::new(),
                vec![],
            );
        }
        Ok(Ack::at(at.unwrap_or_else(now_ms)))
    }

    pub(super) fn shutdown(&self) {
        let (supervisor, link) = {
            let mut st = self.state.lock().unwrap();
            st.generation += 1;
            (st.supervisor.take(), st.link.take())
        };
        if let Some(s) = supervisor {
            s.abort();
        }
        if let Some(l) = link {
            if crate::runtime::forked() {
                l.close("client dropped");
            } else {
                // A dropped client is gone for good: log out (briefly, in the background) so
                // the server ends the session now — others see it leave, its lock waits end —
                // instead of keeping it for a resume that will not come.
                // At process exit `logout_all` waits for it.
                super::exit::track_dropped(runtime().spawn(async move {
                    let _ = l.logout().await;
                }));
            }
        }
        self.slot.send_replace(Slot::Down(Error::new(
            ErrorCode::INSTANCE_ALREADY_RELEASED,
            "request",
            "the client was dropped",
        )));
        self.session.reset("the client was dropped");
        self.release();
        self.hub.close_all_channels();
        self.hub.close_listeners();
    }

    fn on_inbound(self: &Arc<Self>, ev: Inbound) {
        match ev {
            Inbound::Message(m) => {
                let mut one = vec![Event::Message(m)];
                self.note_stored(&one);
                self.e2ee.screen(&mut one);
                if let Some(ev) = one.pop() {
                    self.emit(ev);
                }
            }
            Inbound::Messages(mut evs) => {
                self.note_stored(&evs);
                self.e2ee.screen(&mut evs);
                if !evs.is_empty() {
                    self.emit_batch(evs);
                }
            }
            Inbound::Topic(t) => self.emit(Event::Topic(Arc::new(TopicEvent {
                event_type: TopicEventType::from_u32(t.event_type).unwrap_or(TopicEventType::NONE),
                channel: t.channel,
                publisher: t.publisher,
                topics: t.topics.into_iter().map(Into::into).collect(),
                timestamp_ms: t.timestamp_ms,
            }))),
            Inbound::Presence(mut p) => {
                self.e2ee.open_presence(&mut p);
                self.emit(Event::Presence(Arc::new(p.into())))
            }
            Inbound::Storage(e) => self.emit(Event::Storage(Arc::new(e.into()))),
            Inbound::Lock(e) => {
                self.note_lock_event(&e);
                self.emit(Event::Lock(Arc::new(e.into())))
            }
            Inbound::TokenWillExpire(t) => self.hub.emit(Event::TokenPrivilegeWillExpire(if t.channel.is_empty() {
                None
            } else {
                Some(t.channel)
            })),
            Inbound::StreamClosed(c) => {
                self.state.lock().unwrap().cache.streams.remove(&c.channel);
                let reason = LinkStateChangeReason::from_u32(c.link_reason).unwrap_or(LinkStateChangeReason::UNKNOWN);
                self.emit_stream_state(
                    &c.channel,
                    LinkState::FAILED,
                    LinkState::CONNECTED,
                    LinkOperation::SERVER_REJECT,
                    reason,
                    c.reason,
                );
            }
        }
    }

    /// Tries each endpoint once, in order from the one used last, and returns the first link
    /// made, with whether it is on another node than the previous one (a failover). Every
    /// failure is remembered (`attempts`) for the login's error; when all fail, the error names
    /// each endpoint and why. A server's refusal (bad token, ...) is final: not tried elsewhere.
    async fn connect_any(
        &self,
        config: &ClientConfig,
        token: &str,
        on_inbound: &link::OnInbound,
    ) -> std::result::Result<(Arc<Link>, bool), link::ConnectError> {
        let n = config.endpoints.len();
        let previous = self.connected.lock().unwrap().clone();
        let start = previous.as_ref().map_or(0, |(i, _)| *i % n);
        // With several endpoints, one that does not answer (a dead host, a black hole) must not
        // use up the whole login timeout: each attempt gets its share, at least a second.
        let attempt_timeout = (n > 1).then(|| (config.request_timeout / n as u32).max(Duration::from_secs(1)));
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let endpoint = &config.endpoints[i];
            let may_resume = previous.as_ref().is_some_and(|(p, _)| *p == i);
            let attempt =
                link::establish(config, endpoint, may_resume, token, on_inbound.clone(), self.session.clone());
            let result = match attempt_timeout {
                Some(t) => tokio::time::timeout(t, attempt).await.unwrap_or_else(|_| {
                    Err(link::ConnectError {
                        error: Error::new(
                            ErrorCode::LOGIN_TIMEOUT,
                            "login",
                            format!("no login reply within {} ms", t.as_millis()),
                        ),
                        fatal: false,
                        reason: LinkStateChangeReason::CONNECTION_ERROR,
                    })
                }),
                None => attempt.await,
            };
            match result {
                Ok(link) => {
                    let moved = previous
                        .as_ref()
                        .is_some_and(|(p, node)| *p != i || (!node.is_empty() && *node != link.login.node_id));
                    if moved {
                        tracing::info!(target: LOG_TARGET, endpoint = ?endpoint, node = %link.login.node_id,
                            "failed over to another endpoint");
                    }
                    *self.connected.lock().unwrap() = Some((i, link.login.node_id.clone()));
                    self.attempts.lock().unwrap().clear();
                    return Ok((link, moved));
                }
                Err(ce) => {
                    tracing::debug!(target: LOG_TARGET, endpoint = ?endpoint, error = %ce.error, "connect attempt failed");
                    let mut attempts = self.attempts.lock().unwrap();
                    attempts.retain(|(j, _)| *j != i);
                    attempts.push((i, ce.error.reason.clone()));
                    drop(attempts);
                    if ce.fatal {
                        return Err(ce);
                    }
                    last = Some(ce);
                }
            }
        }
        let mut ce = last.expect("at least one endpoint");
        if n > 1 {
            ce.error.reason = format!("no endpoint reachable{}", self.attempts_text());
        }
        Err(ce)
    }

    /// The endpoints tried and why each failed, for a login's error: ` (tried tcp://a:1:
    /// could not connect ...; tcp://b:2: ...)`; before any attempt failed, the endpoints
    /// given: ` (endpoints: tcp://a:1, tcp://b:2)`.
    fn attempts_text(&self) -> String {
        let endpoints = self.config.lock().unwrap().endpoints.clone();
        let attempts = self.attempts.lock().unwrap();
        if attempts.is_empty() {
            return format!(" (endpoints: {})", crate::config::describe(&endpoints));
        }
        let tried: Vec<String> = attempts
            .iter()
            .map(|(i, why)| match endpoints.get(*i) {
                Some(e) => format!("{e:?}: {why}"),
                None => why.clone(),
            })
            .collect();
        format!(" (tried {})", tried.join("; "))
    }

    /// Re-subscribes, re-joins and re-subscribes topics after a reconnect, and after a
    /// failover to another node (`moved`) re-acquires the locks this client held; returns what
    /// failed.
    pub(super) async fn restore(self: &Arc<Self>, link: &Link, moved: bool) -> Vec<String> {
        let timeout = self.request_timeout();
        let req = |op: &'static str, body| async move {
            match tokio::time::timeout(timeout, link.request(op, body)).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(ErrorCode::NOT_CONNECTED, op, "no reply while restoring")),
            }
        };
        let cache = self.state.lock().unwrap().cache.clone();
        let mut unrestored = Vec::new();
        for (ch, o) in &cache.channels {
            let states = cache.entry_states(&(ChannelType::MESSAGE, ch.clone()), o.with_presence, self);
            if let Err(e) = req("subscribe", subscribe_body(ch, o, states)).await {
                tracing::warn!(target: LOG_TARGET, channel = %ch, error = %e, "could not restore a subscription");
                unrestored.push(ch.clone());
                self.state.lock().unwrap().cache.channels.remove(ch);
                self.hub.close_channel(ch);
            }
        }
        for user in &cache.user_metadata {
            if let Err(e) = req("subscribe_user_metadata", crate::storage::subscribe_user_body(user)).await {
                tracing::warn!(target: LOG_TARGET, user = %user, error = %e, "could not restore a user-metadata subscription");
                unrestored.push(format!("user-metadata/{user}"));
                self.state.lock().unwrap().cache.user_metadata.remove(user);
            }
        }
        for (name, sc) in &cache.streams {
            let states = cache.entry_states(&(ChannelType::STREAM, name.clone()), sc.opts.with_presence, self);
            match req("join", join_body(name, &sc.opts, states)).await {
                Ok(resp) => {
                    if let Some(pb::response::Result::StreamJoin(j)) = resp.result {
                        self.emit_snapshot(name, j.topics);
                    }
                }
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, channel = %name, error = %e, "could not rejoin a stream channel");
                    unrestored.push(name.clone());
                    self.state.lock().unwrap().cache.streams.remove(name);
                    self.emit_stream_state(
                        name,
                        LinkState::FAILED,
                        LinkState::CONNECTED,
                        LinkOperation::AUTO_RECONNECT,
                        LinkStateChangeReason::JOIN_FAILED,
                        e.reason,
                    );
                    continue;
                }
            }
            for (topic, o) in &sc.topics {
                if req("join_topic", join_topic_body(name, topic, o)).await.is_err() {
                    unrestored.push(format!("{name}/{topic}"));
                    if let Some(s) = self.state.lock().unwrap().cache.streams.get_mut(name) {
                        s.topics.remove(topic);
                    }
                }
            }
            for (topic, users) in &sc.subscriptions {
                let body = subscribe_topic_body(name, topic, users.iter().cloned().collect());
                if req("subscribe_topic", body).await.is_err() {
                    unrestored.push(format!("{name}/{topic}"));
                    if let Some(s) = self.state.lock().unwrap().cache.streams.get_mut(name) {
                        s.subscriptions.remove(topic);
                    }
                }
            }
        }
        // On the same node the server keeps a disconnected owner's locks for their ttl (and
        // tells it EXPIRED after). After a move, take them again: a node of the same cluster
        // knows them (locks are cluster-wide: the owner, back within the ttl, gets its grant
        // and token back); another server does not, so a lock is defined first if it has not
        // got it.
        if moved {
            for key in &cache.locks {
                let (ct, channel, name) = key.clone();
                let acquire = || {
                    req(
                        "acquire_lock",
                        client_frame::Body::AcquireLock(pb::AcquireLock {
                            channel: channel.clone(),
                            channel_type: ct as u32,
                            name: name.clone(),
                            retry: false,
                        }),
                    )
                };
                let mut r = acquire().await;
                if r.as_ref().is_err_and(|e| e.code == ErrorCode::LOCK_NOT_EXIST) {
                    let ttl_s = cache.lock_ttls.get(key).copied().unwrap_or(0);
                    let set = client_frame::Body::SetLock(pb::SetLock {
                        channel: channel.clone(),
                        channel_type: ct as u32,
                        name: name.clone(),
                        ttl_s,
                    });
                    match req("set_lock", set).await {
                        Ok(_) => r = acquire().await,
                        Err(e) if e.code == ErrorCode::LOCK_ALREADY_EXIST => r = acquire().await,
                        Err(e) => r = Err(e),
                    }
                }
                if let Err(e) = r {
                    tracing::warn!(target: LOG_TARGET, channel = %channel, lock = %name, error = %e,
                        "could not take a held lock again on the new node");
                    unrestored.push(format!("lock/{channel}/{name}"));
                    self.state.lock().unwrap().cache.locks.remove(key);
                }
            }
        }
        unrestored
    }
}

/// The text of a RECONNECTED link-state event: why the server had closed the connection (if
/// it said, e.g. "slow consumer: ..."), and whether the session could not be resumed.
fn reconnected_text(resumed: bool, cut_reason: &str) -> String {
    match (resumed, cut_reason.is_empty()) {
        (true, true) => String::new(),
        (false, true) => "the session could not be resumed".into(),
        (true, false) => format!("the server had closed the connection: {cut_reason}"),
        (false, false) => {
            format!("the server had closed the connection: {cut_reason}; the session could not be resumed")
        }
    }
}

fn backoff(config: &ClientConfig, attempt: u32) -> Duration {
    let base = config.reconnect_initial_backoff.as_millis() as u64;
    let max = config.reconnect_max_backoff.as_millis() as u64;
    let ms = base.saturating_mul(1u64 << attempt.min(20)).min(max.max(base));
    // Up to 20% jitter so that many clients do not reconnect in lockstep.
    let jitter = (now_ms() % 1000) * ms / 5000;
    Duration::from_millis(ms + jitter)
}

/// Owns the connection of one login: connects, restores after reconnects, and decides
/// between DISCONNECTED (retry) and FAILED (stop).
async fn supervise(inner: Arc<Inner>, generation: u64, waiter: oneshot::Sender<Result<u64>>) {
    let mut waiter = Some(waiter);
    let mut attempt: u32 = 0;
    let mut reconnecting = false;
    let weak: Weak<Inner> = Arc::downgrade(&inner);
    let on_inbound: link::OnInbound = Arc::new(move |ev| {
        if let Some(inner) = weak.upgrade() {
            inner.on_inbound(ev);
        }
    });
    loop {
        let (config, token) = {
            let cfg = inner.config.lock().unwrap().clone();
            let st = inner.state.lock().unwrap();
            if st.generation != generation {
                return;
            }
            (cfg, st.token.clone())
        };
        if reconnecting {
            inner.hold();
        }
        match inner.connect_any(&config, &token, &on_inbound).await {
            Ok((link, moved)) => {
                {
                    let mut st = inner.state.lock().unwrap();
                    if st.generation != generation {
                        link.close("superseded");
                        return;
                    }
                    st.link = Some(link.clone());
                }
                tracing::debug!(target: LOG_TARGET,
                    session = link.login.session_id,
                    node = %link.login.node_id,
                    moved,
                    dev_mode = link.login.dev_mode,
                    reconnecting,
                    "logged in"
                );
                let resumed = reconnecting && link.login.resumed;
                let (unrestored, recovered) = if resumed {
                    // The server kept the session: resend what it may not have received (it
                    // runs each request once), then carry on where the stream stopped.
                    link.resend(inner.session.unanswered()).await;
                    (Vec::new(), Vec::new())
                } else if reconnecting {
                    inner.restore_and_recover(&link, moved).await
                } else {
                    inner
                        .state
                        .lock()
                        .unwrap()
                        .cache
                        .recover_after
                        .user
                        .get_or_insert(link.login_time_ms.saturating_sub(1));
                    (Vec::new(), Vec::new())
                };
                {
                    let st = inner.state.lock().unwrap();
                    if st.generation != generation {
                        link.close("superseded");
                        return;
                    }
                    inner.slot.send_replace(Slot::Up(link.clone()));
                }
                if reconnecting {
                    // When not resumed, this event says (before anything newer is delivered)
                    // that messages of `affected_channels` may have been missed. Why the server
                    // had cut the connection off (a slow consumer) is said here too: a client
                    // that was not reading may never have read the goodbye.
                    inner.emit_link_state_ex(
                        Some(generation),
                        LinkState::CONNECTED,
                        LinkOperation::RECONNECTED,
                        LinkStateChangeReason::RECONNECT_SUCCESS,
                        reconnected_text(resumed, &link.login.cut_reason),
                        unrestored,
                        resumed,
                        &recovered,
                    );
                    inner.release();
                } else {
                    inner.emit_link_state(
                        Some(generation),
                        LinkState::CONNECTED,
                        LinkOperation::LOGIN,
                        LinkStateChangeReason::LOGIN_SUCCESS,
                        String::new(),
                        unrestored,
                    );
                }
                if let Some(w) = waiter.take() {
                    let _ = w.send(Ok(link.login_time_ms));
                }
                attempt = 0;
                let end = link.ended().await;
                {
                    let mut st = inner.state.lock().unwrap();
                    if st.generation != generation {
                        return;
                    }
                    st.link = None;
                }
                inner.slot.send_replace(Slot::Connecting);
                match classify(end) {
                    EndKind::Fatal(reason, text) => {
                        tracing::info!(target: LOG_TARGET, ?reason, %text, "the server ended the session");
                        inner.fail(Some(generation), reason, LinkOperation::SERVER_REJECT, text);
                        return;
                    }
                    EndKind::Transient(op, reason, text) => {
                        tracing::info!(target: LOG_TARGET, ?reason, %text, "connection lost; reconnecting");
                        inner.emit_link_state(Some(generation), LinkState::DISCONNECTED, op, reason, text, vec![]);
                        reconnecting = true;
                    }
                }
            }
            Err(ce) if ce.fatal => {
                // FAILED first, then the login's answer: whoever reacts to the answer (e.g. by
                // logging in again) sees the state that answer left.
                inner.fail(Some(generation), ce.reason, LinkOperation::SERVER_REJECT, ce.error.reason.clone());
                if let Some(w) = waiter.take() {
                    let _ = w.send(Err(ce.error));
                }
                return;
            }
            Err(ce) => {
                tracing::debug!(target: LOG_TARGET, error = %ce.error, attempt, "connect attempt failed");
            }
        }
        tokio::time::sleep(backoff(&config, attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}
