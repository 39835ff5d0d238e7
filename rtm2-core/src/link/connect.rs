//! Opening a connection (TCP, TLS, in-memory), the handshake and login, and starting the
//! link's tasks.

use super::*;

pub(super) fn tls_connector(config: &ClientConfig) -> std::io::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &config.tls_ca_file {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("TLS CA file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls)))
}

/// Connects; also whether callers may write to the connection directly (not through TLS).
pub(super) async fn open(config: &ClientConfig, endpoint: &Endpoint) -> std::io::Result<(Pin<Box<dyn Io>>, bool)> {
    Ok(match endpoint {
        Endpoint::Tls(addr) => {
            let connector = tls_connector(config)?;
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).trim_matches(['[', ']']);
            let name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name {host:?}: {e}"))
            })?;
            let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            (Box::pin(connector.connect(name, s).await?), false)
        }
        // `Client::new` resolved the default; embedded is what it stands for without the variable.
        Endpoint::Embedded | Endpoint::Default => (Box::pin(crate::embedded::server().connect_in_memory()), true),
        Endpoint::Server(s) => (Box::pin(s.connect_in_memory()), true),
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            (Box::pin(s), true)
        }
    })
}

/// A login failure: `fatal` ones are not retried (bad token, version, ...).
pub(crate) struct ConnectError {
    pub error: Error,
    pub fatal: bool,
    pub reason: LinkStateChangeReason,
}

pub(super) fn transient(detail: String) -> ConnectError {
    ConnectError {
        error: Error::new(ErrorCode::LOGIN_TIMEOUT, "login", detail),
        fatal: false,
        reason: LinkStateChangeReason::CONNECTION_ERROR,
    }
}

pub(super) fn reason_for_code(code: ErrorCode) -> LinkStateChangeReason {
    match code {
        ErrorCode::TOKEN_EXPIRED => LinkStateChangeReason::TOKEN_EXPIRED,
        ErrorCode::INVALID_TOKEN => LinkStateChangeReason::INVALID_TOKEN,
        ErrorCode::INCONSISTENT_APPID | ErrorCode::INVALID_APP_ID => LinkStateChangeReason::INCONSISTENT_APP_ID,
        ErrorCode::INVALID_USER_ID => LinkStateChangeReason::INVALID_USER_ID,
        ErrorCode::SERVICE_NOT_SUPPORTED => LinkStateChangeReason::SERVICE_NOT_SUPPORTED,
        _ => LinkStateChangeReason::LOGIN_REJECTED,
    }
}

/// Connects to `endpoint` (one of `config.endpoints`), says Hello, logs in, and starts the
/// reader, writer and keepalive tasks. The session is resumed only if `may_resume` (the
/// endpoint is the one the session was made on: session ids are per node).
pub(crate) async fn establish(
    config: &ClientConfig,
    endpoint: &Endpoint,
    may_resume: bool,
    token: &str,
    inbound: OnInbound,
    session: Arc<SessionState>,
) -> std::result::Result<Arc<Link>, ConnectError> {
    let resume = match session.id.load(Ordering::Relaxed) {
        0 => None,
        _ if !may_resume => None,
        id => Some(pb::Resume { session_id: id, last_seq: session.last_seq.load(Ordering::Relaxed) }),
    };
    let (io, direct_ok) = open(config, endpoint).await.map_err(|e| match e.kind() {
        // A certificate that does not verify, or a bad TLS configuration, will not fix itself.
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => ConnectError {
            error: Error::new(
                ErrorCode::INIT_SERVICE_FAILED,
                "login",
                format!("secure connection to {endpoint:?} failed: {e}"),
            ),
            fatal: true,
            reason: LinkStateChangeReason::CONNECTION_ERROR,
        },
        _ => transient(format!("could not connect to {endpoint:?}: {e}")),
    })?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let dec = FrameDecoder::new(limits::MAX_SERVER_FRAME_LEN);
    let mut buf = BytesMut::with_capacity(16 * 1024);

    // Hello + Login are written together; the server answers HelloAck then the login reply.
    let mut hello = BytesMut::new();
    frame::write_client_frame(
        &mut hello,
        &pb::ClientFrame {
            request_id: 0,
            body: Some(client_frame::Body::Hello(pb::Hello {
                protocol_version: limits::PROTOCOL_VERSION,
                features: rtm2_proto::FEATURES,
                client_name: format!("rtm2-core/{}", env!("CARGO_PKG_VERSION")),
            })),
        },
    );
    frame::write_client_frame(
        &mut hello,
        &pb::ClientFrame {
            request_id: 1,
            body: Some(client_frame::Body::Login(pb::Login {
                app_id: config.app_id.clone(),
                user_id: config.user_id.clone(),
                token: token.to_string(),
                presence_timeout_s: config.presence_timeout_s,
                heartbeat_interval_s: config.heartbeat_interval_s,
                receive_own_messages: config.receive_own_messages,
                resume,
            })),
        },
    );
    wr.write_all(&hello).await.map_err(|e| transient(format!("connection failed during handshake: {e}")))?;

    let (login, login_time_ms) = loop {
        let body = read_frame(&mut rd, &mut buf, &dec)
            .await
            .map_err(|e| transient(format!("connection failed during handshake: {e}")))?;
        let f = frame::decode_server(body).map_err(|e| transient(format!("bad frame from server: {e}")))?;
        match f.body {
            Some(server_frame::Body::HelloAck(_)) => continue,
            Some(server_frame::Body::Goodbye(g)) => {
                let code = ErrorCode::from_u32(g.code).unwrap_or(ErrorCode::LOGIN_REJECTED);
                return Err(ConnectError {
                    error: Error::new(code, "login", g.reason),
                    fatal: true,
                    reason: reason_for_code(code),
                });
            }
            Some(server_frame::Body::Response(r)) if r.request_id == 1 => {
                if r.code != 0 {
                    let code = ErrorCode::from_u32(r.code).unwrap_or(ErrorCode::LOGIN_REJECTED);
                    return Err(ConnectError {
                        error: Error::new(code, "login", r.reason),
                        fatal: true,
                        reason: reason_for_code(code),
                    });
                }
                match r.result {
                    Some(pb::response::Result::Login(l)) => break (l, r.server_time_ms),
                    _ => return Err(transient("login reply without a result".into())),
                }
            }
            _ => continue,
        }
    };

    if !login.resumed {
        // A new server session: requests of an earlier one fail, numbering starts over.
        session.reset("the connection was lost and the session could not be resumed");
    }
    session.id.store(login.session_id, Ordering::Relaxed);
    let (end, _) = watch::channel(None);
    let wr: SharedWriter = Arc::new(tokio::sync::Mutex::new(wr));
    let link = Arc::new(Link {
        out: Mutex::new(OutQueue::default()),
        out_ready: Notify::new(),
        out_room: Notify::new(),
        direct: direct_ok.then(|| wr.clone()),
        session,
        end,
        ended: AtomicBool::new(false),
        login,
        login_time_ms,
        tasks: Mutex::new(Vec::new()),
        hold_max: WRITER_HOLD_MAX,
    });
    // Frames received so far; the keepalive watches it change (no clock read per frame).
    let last_rx = Arc::new(AtomicU64::new(0));
    let w = tokio::spawn(writer(wr, link.clone()));
    let r = tokio::spawn(reader(rd, buf, dec, link.clone(), inbound, last_rx.clone()));
    let k = tokio::spawn(keepalive(
        link.clone(),
        Duration::from_secs(config.heartbeat_interval_s.max(1) as u64),
        config.pong_timeout,
        last_rx,
    ));
    link.tasks.lock().unwrap().extend([w.abort_handle(), r.abort_handle(), k.abort_handle()]);
    Ok(link)
}

pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &FrameDecoder,
) -> std::io::Result<Bytes> {
    loop {
        if let Some(body) = dec.decode(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))? {
            return Ok(body);
        }
        buf.reserve(64 * 1024);
        if rd.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}
