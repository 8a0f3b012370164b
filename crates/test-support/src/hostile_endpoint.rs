//! Local HTTP endpoints that misbehave the way a hostile or broken `apiUrl` could: a body that
//! never ends, a huge announced length, a redirect, a stall after the headers, an error message
//! quoting the caller's token, and a listener that only counts who connects. Raw tokio, on 127.0.0.1, bounded: each answer sends at most
//! [`MAX_STREAM_BYTES`], every connection ends after [`CONNECTION_LIFETIME`], and the server stops
//! when dropped.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most one answer ever sends.
pub const MAX_STREAM_BYTES: u64 = 1024 * 1024 * 1024;
/// No connection is kept longer than this.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// How the endpoint answers every request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `200` with no Content-Length, then `bytes` of JSON-ish filler until done or the peer leaves.
    EndlessBody { bytes: u64 },
    /// `200` announcing `length` bytes, then a few bytes and silence.
    AnnouncedLength { length: u64 },
    /// `307` to `location`, with a small body.
    Redirect { location: String },
    /// `200` announcing 100 bytes, then silence (for read timeouts).
    StallAfterHeaders,
    /// Accept and close at once, sending nothing: a host that must receive no request.
    CountOnly,
    /// `401` whose Dfns-style error message quotes the request's bearer token glued to other
    /// text (`…token=<token>;…`), as a careless or hostile server might.
    EchoBearer,
}

/// A running endpoint; stops when dropped.
pub struct HostileEndpoint {
    pub address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

impl HostileEndpoint {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a local port");
        let address = listener.local_addr().expect("local address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let bytes_sent = Arc::new(AtomicU64::new(0));
        let server = tokio::spawn(serve(
            listener,
            behaviour,
            accepted.clone(),
            bytes_sent.clone(),
        ));
        Self {
            address,
            accepted,
            bytes_sent,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// TCP connections accepted so far (a request needs one).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Body bytes written so far, over all connections.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::SeqCst)
    }
}

impl Drop for HostileEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(
    listener: TcpListener,
    behaviour: Behaviour,
    accepted: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicU64>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let behaviour = behaviour.clone();
        let bytes_sent = bytes_sent.clone();
        connections.spawn(async move {
            // Errors only mean the peer went away, which is what a capped client does.
            let _ =
                tokio::time::timeout(CONNECTION_LIFETIME, answer(stream, &behaviour, &bytes_sent))
                    .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    mut stream: TcpStream,
    behaviour: &Behaviour,
    bytes_sent: &AtomicU64,
) -> std::io::Result<()> {
    if matches!(behaviour, Behaviour::CountOnly) {
        return Ok(());
    }
    let head = read_request_head(&mut stream).await?;
    match behaviour {
        Behaviour::EndlessBody { bytes } => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
                )
                .await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = (*bytes).min(MAX_STREAM_BYTES);
            while left > 0 {
                let size = left.min(chunk.len() as u64) as usize;
                stream.write_all(&chunk[..size]).await?;
                bytes_sent.fetch_add(size as u64, Ordering::SeqCst);
                left -= size as u64;
            }
            stream.shutdown().await
        }
        Behaviour::AnnouncedLength { length } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{\"items\":["
            );
            stream.write_all(head.as_bytes()).await?;
            bytes_sent.fetch_add(10, Ordering::SeqCst);
            hold(&mut stream).await
        }
        Behaviour::Redirect { location } => {
            let body = "{}";
            let head = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.shutdown().await
        }
        Behaviour::StallAfterHeaders => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                .await?;
            hold(&mut stream).await
        }
        Behaviour::EchoBearer => {
            let head = String::from_utf8_lossy(&head);
            let bearer = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().trim_start_matches("Bearer ").to_owned())
                })
                .unwrap_or_default();
            let body = serde_json::json!({
                "error": { "status": 401, "message": format!("rejected credential token={bearer};retry") }
            })
            .to_string();
            let response = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        }
        Behaviour::CountOnly => Ok(()),
    }
}

/// Reads up to the end of the request head (bounded), ignoring any body.
async fn read_request_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(head)
}

/// Keeps the connection open, reading (and dropping) whatever comes, until the peer leaves.
async fn hold(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 4096];
    while stream.read(&mut buffer).await? > 0 {}
    Ok(())
}
