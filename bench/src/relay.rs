//! `--system relay`: the machine's limit for this workload — a plain TCP relay with the same
//! sockets and batching as rtm2 and no protocol. A publisher connection sends length-prefixed
//! frames (`u32` little-endian length, then the payload); the relay forwards every complete
//! frame it read, as one chunk per read, to every subscriber connection; a subscriber's writer
//! sends what queued up for it in one write. No login, no channel names, no acknowledgements,
//! no sequence numbers, no copies beyond the socket buffers: what is left is the cost of moving
//! bytes between sockets on this machine, which every table shows beside rtm2's.

use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::clients::{BoxError, Delivery, Subscriber};

/// The first byte of a connection: what it is.
const ROLE_PUBLISHER: u8 = b'P';
const ROLE_SUBSCRIBER: u8 = b'S';
/// Sent to a subscriber once it is registered (so `subscriber` returns when it is live).
const READY: u8 = b'R';
/// Read and write sizes, as rtm2's connections use.
const CHUNK: usize = 64 * 1024;

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>;

/// Serves the relay on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener) {
    let subs: Subscribers = Arc::default();
    while let Ok((sock, _)) = listener.accept().await {
        let _ = sock.set_nodelay(true);
        tokio::spawn(connection(sock, subs.clone()));
    }
}

async fn connection(mut sock: TcpStream, subs: Subscribers) -> Option<()> {
    match sock.read_u8().await.ok()? {
        ROLE_SUBSCRIBER => {
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            subs.lock().unwrap().push(tx);
            sock.write_u8(READY).await.ok()?;
            let mut out = Vec::with_capacity(4 * CHUNK);
            while let Some(first) = rx.recv().await {
                out.extend_from_slice(&first);
                while out.len() < 4 * CHUNK {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                sock.write_all(&out).await.ok()?;
                out.clear();
            }
            None
        }
        ROLE_PUBLISHER => {
            let mut buf = BytesMut::with_capacity(CHUNK);
            loop {
                if buf.capacity() - buf.len() < CHUNK / 4 {
                    buf.reserve(CHUNK);
                }
                if sock.read_buf(&mut buf).await.ok()? == 0 {
                    return None;
                }
                let end = complete_frames(&buf);
                if end > 0 {
                    let chunk = buf.split_to(end).freeze();
                    for tx in subs.lock().unwrap().iter() {
                        let _ = tx.send(chunk.clone());
                    }
                }
            }
        }
        _ => None,
    }
}

/// The length of the longest prefix of `buf` made of whole frames.
fn complete_frames(buf: &[u8]) -> usize {
    let mut at = 0;
    while buf.len() - at >= 4 {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if buf.len() - at - 4 < len {
            break;
        }
        at += 4 + len;
    }
    at
}

/// A subscriber of the relay at `addr`: returns once the relay registered it.
pub async fn subscriber(addr: &str) -> Result<Subscriber, BoxError> {
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    sock.write_u8(ROLE_SUBSCRIBER).await?;
    if sock.read_u8().await? != READY {
        return Err("the relay did not register the subscriber".into());
    }
    let stream = futures::stream::unfold((sock, BytesMut::with_capacity(CHUNK)), |(mut sock, mut buf)| async move {
        loop {
            if buf.capacity() - buf.len() < CHUNK / 4 {
                buf.reserve(CHUNK);
            }
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let mut payloads = Vec::new();
            while buf.len() >= 4 {
                let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
                if buf.len() - 4 < len {
                    break;
                }
                buf.advance(4);
                payloads.push(buf.split_to(len).freeze());
            }
            if !payloads.is_empty() {
                return Some((Delivery { payloads, dropped: 0 }, (sock, buf)));
            }
        }
    });
    Ok(Subscriber { stream: stream.boxed(), keep: Box::new(()) })
}

/// The publishing side: frames go through a 64 KiB buffer, written when it fills and on
/// `flush` (before the publisher waits for its subscribers, and at the end).
pub struct RelayPublisher {
    w: tokio::sync::Mutex<BufWriter<TcpStream>>,
}

impl RelayPublisher {
    pub async fn connect(addr: &str) -> Result<RelayPublisher, BoxError> {
        let sock = TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let mut w = BufWriter::with_capacity(CHUNK, sock);
        w.write_u8(ROLE_PUBLISHER).await?;
        Ok(RelayPublisher { w: tokio::sync::Mutex::new(w) })
    }

    pub async fn publish(&self, payload: &[u8]) -> std::io::Result<()> {
        let mut w = self.w.lock().await;
        w.write_u32_le(payload.len() as u32).await?;
        w.write_all(payload).await
    }

    pub async fn flush(&self) -> std::io::Result<()> {
        self.w.lock().await.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_frames_are_forwarded() {
        let mut b = Vec::new();
        for p in [&b"ab"[..], b"", b"xyz"] {
            b.extend_from_slice(&(p.len() as u32).to_le_bytes());
            b.extend_from_slice(p);
        }
        let whole = b.len();
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(b"12");
        assert_eq!(complete_frames(&b), whole);
        assert_eq!(complete_frames(&b[..3]), 0);
    }
}
