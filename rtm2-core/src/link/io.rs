//! The link's tasks: the batching writer, the reader that routes frames, the keepalive.

use super::*;

pub(super) async fn writer(wr: SharedWriter, link: Arc<Link>) {
    let mut local = BytesMut::new();
    let mut after_write = false;
    loop {
        let queued = link.out.lock().unwrap().buf.len();
        if queued < WRITER_COALESCE_BYTES {
            if after_write && queued >= WRITER_BURST_BYTES {
                hold_for_batch(&link).await;
            } else {
                // Let the tasks that are ready on this thread run before taking a small batch:
                // callers on other threads go on queueing meanwhile, so the next write is larger.
                tokio::task::yield_now().await;
            }
        }
        after_write = false;
        let room_wanted = {
            let mut q = link.out.lock().unwrap();
            if q.buf.is_empty() {
                q.writer_idle = true;
                false
            } else {
                // Take everything queued; callers go on filling the other buffer meanwhile.
                q.writer_idle = false;
                std::mem::swap(&mut q.buf, &mut local);
                std::mem::take(&mut q.room_wanted)
            }
        };
        if local.is_empty() {
            // `notify_one` keeps a permit if it comes before this wait: no lost wake-up.
            if local.capacity() > WRITER_KEEP_BYTES || holds_burst_memory(&link) {
                if tokio::time::timeout(WRITER_RELEASE_AFTER, link.out_ready.notified()).await.is_err() {
                    // Idle since the burst that grew them: give the memory back.
                    local = BytesMut::new();
                    {
                        let mut q = link.out.lock().unwrap();
                        if q.buf.is_empty() && q.buf.capacity() > WRITER_KEEP_BYTES {
                            q.buf = BytesMut::new();
                        }
                    }
                    link.session.pending.lock().unwrap().replay.spare = Vec::new();
                }
            } else {
                link.out_ready.notified().await;
            }
            continue;
        }
        if room_wanted {
            link.out_room.notify_waiters();
        }
        // Locked while writing: a caller may write itself only while the writer is asleep.
        let written = wr.lock().await.write_all(&local).await;
        if let Err(e) = written {
            link.finish(LinkEnd { goodbye: None, detail: format!("write failed: {e}"), keepalive_timeout: false });
            link.out_room.notify_waiters();
            return;
        }
        local.clear();
        after_write = true;
    }
}

/// In a burst: waits until `WRITER_COALESCE_BYTES` are queued, a caller waits for the reply to
/// a publish (`SessionState::flush_wanted`), or `WRITER_HOLD_MAX` has passed.
pub(super) async fn hold_for_batch(link: &Link) {
    let session = &link.session;
    {
        let q = link.out.lock().unwrap();
        if q.buf.len() >= WRITER_COALESCE_BYTES {
            return;
        }
        session.writer_holding.store(true, Ordering::SeqCst);
    }
    let end_hold = || {
        let _q = link.out.lock().unwrap();
        session.writer_holding.store(false, Ordering::SeqCst);
    };
    // A caller that began waiting for a publish before the flag was up saw no hold to end.
    if !session.pending.lock().unwrap().waiters.is_empty() {
        end_hold();
        return;
    }
    // A wake-up that came before these waits is kept as a permit by `notify_one`: not lost.
    tokio::select! {
        _ = link.out_ready.notified() => {}
        _ = session.flush_wanted.notified() => {}
        _ = tokio::time::sleep(link.hold_max) => {}
        _ = link.ended() => {}
    }
    end_hold();
}

/// Whether the link keeps memory a burst grew: a large queue buffer, or spare replay blocks.
pub(super) fn holds_burst_memory(link: &Link) -> bool {
    link.out.lock().unwrap().buf.capacity() > WRITER_KEEP_BYTES
        || link.session.pending.lock().unwrap().replay.spare.len() > 1
}

pub(super) async fn reader<R: AsyncRead + Unpin>(
    mut rd: R,
    mut buf: BytesMut,
    dec: FrameDecoder,
    link: Arc<Link>,
    inbound: OnInbound,
    last_rx: Arc<AtomicU64>,
) {
    // Messages that arrived together are handed over as one batch: it goes out before anything
    // else is handled, and before the reader waits for more bytes.
    let mut batch: Vec<crate::Event> = Vec::new();
    let mut last_strings = crate::types::LastStrings::default();
    let end = loop {
        if !batch.is_empty() && (batch.len() >= MESSAGE_BATCH || !dec.has_frame(&buf)) {
            flush_messages(&inbound, &mut batch);
        }
        // A message is read where it lies; only its payload is split off the read buffer (one
        // reference count update, not one for the frame and one for the payload).
        if let Ok(Some(len)) = dec.peek(&buf)
            && let Some((seq, m)) =
                rtm2_proto::fastpath_client::decode_message_frame(&buf[frame::LEN_PREFIX..frame::LEN_PREFIX + len])
        {
            let frame_len = frame::LEN_PREFIX + len;
            if !link.session.accept_seq(seq) {
                buf.advance(frame_len);
                continue;
            }
            let (start, payload_len) = (m.payload.as_ptr() as usize - buf.as_ptr() as usize, m.payload.len());
            let mut ev = crate::types::MessageEvent::from_ref(m, &mut last_strings);
            if payload_len > 0 {
                buf.advance(start);
                ev.payload = buf.split_to(payload_len).freeze();
                buf.advance(frame_len - start - payload_len);
            } else {
                buf.advance(frame_len);
            }
            batch.push(crate::Event::Message(ev));
            continue;
        }
        // Any other frame is decoded; without a complete frame, more bytes are read (the batch
        // went out above).
        let closed = |e: &dyn std::fmt::Display| LinkEnd {
            goodbye: None,
            detail: format!("connection closed: {e}"),
            keepalive_timeout: false,
        };
        let body = match dec.decode(&mut buf) {
            Ok(Some(body)) => body,
            Ok(None) => {
                buf.reserve(64 * 1024);
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break closed(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                    Ok(_) => {
                        // Bytes arrived: the connection is alive (for the keepalive; counted
                        // per read, not per frame).
                        last_rx.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => break closed(&e),
                }
            }
            Err(e) => break closed(&e),
        };
        flush_messages(&inbound, &mut batch);
        let f = match frame::decode_server(body) {
            Ok(f) => f,
            Err(e) => {
                break LinkEnd {
                    goodbye: None,
                    detail: format!("bad frame from server: {e}"),
                    keepalive_timeout: false,
                };
            }
        };
        if !link.session.accept_seq(f.seq) {
            continue; // already received before a resume
        }
        match f.body {
            Some(server_frame::Body::Response(r)) => link.session.complete(r),
            Some(server_frame::Body::PublishAck(a)) => link.session.ack_publishes(a.up_to, a.server_time_ms),
            Some(server_frame::Body::Message(m)) => {
                inbound(Inbound::Message(crate::types::MessageEvent::from_pb(m)));
            }
            Some(server_frame::Body::TopicEvent(t)) => {
                inbound(Inbound::Topic(t));
            }
            Some(server_frame::Body::TokenWillExpire(t)) => {
                inbound(Inbound::TokenWillExpire(t));
            }
            Some(server_frame::Body::StreamChannelClosed(c)) => {
                inbound(Inbound::StreamClosed(c));
            }
            Some(server_frame::Body::Presence(p)) => inbound(Inbound::Presence(p)),
            Some(server_frame::Body::Storage(e)) => inbound(Inbound::Storage(e)),
            Some(server_frame::Body::Lock(e)) => inbound(Inbound::Lock(e)),
            Some(server_frame::Body::Goodbye(g)) => {
                let reason = LinkStateChangeReason::from_u32(g.link_reason).unwrap_or(LinkStateChangeReason::UNKNOWN);
                break LinkEnd {
                    detail: g.reason.clone(),
                    goodbye: Some((g.code, reason, g.reason)),
                    keepalive_timeout: false,
                };
            }
            Some(server_frame::Body::Pong(_)) | Some(server_frame::Body::HelloAck(_)) | None => {}
        }
    };
    // What arrived before the end is delivered (it counts as received for a resume).
    flush_messages(&inbound, &mut batch);
    link.close_with(end);
}

/// Most messages handed over in one batch.
pub(super) const MESSAGE_BATCH: usize = 1024;

pub(super) fn flush_messages(inbound: &OnInbound, batch: &mut Vec<crate::Event>) {
    if !batch.is_empty() {
        // The batch is handed over whole (see `EventQueue::push_owned`); the next one starts
        // with room for as many events, so that it is not regrown (and copied) event by event.
        let room = batch.len();
        inbound(Inbound::Messages(std::mem::replace(batch, Vec::with_capacity(room))));
    }
}

pub(super) async fn keepalive(link: Arc<Link>, interval: Duration, pong_timeout: Duration, last_rx: Arc<AtomicU64>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(start) + interval, interval);
    let check = pong_timeout.min(interval).max(Duration::from_millis(50));
    let mut check_tick = tokio::time::interval(check);
    let (mut seen, mut heard_at) = (last_rx.load(Ordering::Relaxed), now_ms());
    loop {
        tokio::select! {
            _ = tick.tick() => link.send_nowait(client_frame::Body::Ping(pb::Ping { client_time_ms: now_ms() })),
            _ = check_tick.tick() => {
                let count = last_rx.load(Ordering::Relaxed);
                if count != seen {
                    (seen, heard_at) = (count, now_ms());
                }
                let silent = now_ms().saturating_sub(heard_at);
                if silent > pong_timeout.as_millis() as u64 + interval.as_millis() as u64 {
                    link.close_with(LinkEnd {
                        goodbye: None,
                        detail: format!("no frame from the server for {silent} ms"),
                        keepalive_timeout: true,
                    });
                    return;
                }
            }
        }
    }
}
