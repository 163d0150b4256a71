//! The one HTTP request a gateway connection carries: `CONNECT host:port HTTP/1.1`, read with
//! httparse under a size limit. Plain HTTP requests (`GET http://...`) are refused: every
//! approved host is reached over TLS through a tunnel, so the gateway never reads or forwards a
//! request body it would have to trust.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest request head the gateway reads.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The most headers a request may carry.
const MAX_HEADERS: usize = 32;

/// A parsed CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The host as the client wrote it.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The render the client says it is (the user name of `Proxy-Authorization: Basic`); a
    /// label for the log, not an authentication.
    pub render: Option<String>,
    /// Bytes the client sent after the head (normally none; the start of the tunnel otherwise).
    pub rest: Vec<u8>,
}

/// Why a request was refused before any tunnel; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The head is not HTTP/1.x or the target is not `host:port`.
    #[error("malformed request")]
    Malformed,
    /// The head exceeds [`MAX_HEAD_BYTES`].
    #[error("request head too large")]
    TooLarge,
    /// Not a CONNECT: the gateway only tunnels.
    #[error("only CONNECT is supported")]
    NotConnect,
    /// The client closed the connection before a complete head.
    #[error("connection closed before a complete request")]
    Closed,
}

impl RequestError {
    /// The HTTP status line the gateway answers with.
    pub fn status_line(&self) -> &'static str {
        match self {
            Self::Malformed | Self::Closed => "400 Bad Request",
            Self::TooLarge => "431 Request Header Fields Too Large",
            Self::NotConnect => "405 Method Not Allowed",
        }
    }
}

/// Reads and parses one request head.
pub async fn read_connect<R: AsyncRead + Unpin>(
    client: &mut R,
) -> Result<ConnectRequest, RequestError> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    loop {
        let read = client
            .read(&mut chunk)
            .await
            .map_err(|_| RequestError::Closed)?;
        if read == 0 {
            return Err(RequestError::Closed);
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(request) = parse(&buffer)? {
            return Ok(request);
        }
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(RequestError::TooLarge);
        }
    }
}

/// Parses `buffer`: `None` while the head is incomplete.
fn parse(buffer: &[u8]) -> Result<Option<ConnectRequest>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooLarge),
        Err(_) => return Err(RequestError::Malformed),
    };
    if length > MAX_HEAD_BYTES {
        return Err(RequestError::TooLarge);
    }
    if request.method != Some("CONNECT") {
        return Err(RequestError::NotConnect);
    }
    let (host, port) = split_authority(request.path.unwrap_or_default())?;
    let render = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|h| basic_user(h.value));
    Ok(Some(ConnectRequest {
        host,
        port,
        render,
        rest: buffer[length..].to_vec(),
    }))
}

/// `host:port` (IPv6 literals in brackets are kept as written, and later refused by policy).
fn split_authority(authority: &str) -> Result<(String, u16), RequestError> {
    let (host, port) = authority.rsplit_once(':').ok_or(RequestError::Malformed)?;
    let port: u16 = port.parse().map_err(|_| RequestError::Malformed)?;
    if host.is_empty() || port == 0 {
        return Err(RequestError::Malformed);
    }
    Ok((host.to_owned(), port))
}

/// The user name of a `Basic` credential when it is a plausible render name (a DNS label of at
/// most 63 characters); anything else is dropped rather than logged. The password is ignored
/// and never kept.
fn basic_user(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let user = decoded.split(':').next()?;
    let plausible = !user.is_empty()
        && user.len() <= 63
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    plausible.then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<ConnectRequest, RequestError> {
        let mut reader = bytes;
        read_connect(&mut reader).await
    }

    #[tokio::test]
    async fn a_connect_request_names_host_port_and_render() {
        // "render-1:ignored" in Basic.
        let request = read(
            b"CONNECT huggingface.co:443 HTTP/1.1\r\nHost: huggingface.co:443\r\nProxy-Authorization: Basic cmVuZGVyLTE6aWdub3JlZA==\r\n\r\n\x16\x03",
        )
        .await
        .unwrap();
        assert_eq!(request.host, "huggingface.co");
        assert_eq!(request.port, 443);
        assert_eq!(request.render.as_deref(), Some("render-1"));
        assert_eq!(request.rest, b"\x16\x03");
    }

    #[tokio::test]
    async fn plain_http_oversized_and_malformed_requests_are_refused() {
        assert_eq!(
            read(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n").await,
            Err(RequestError::NotConnect)
        );
        assert_eq!(
            read(b"CONNECT example.com HTTP/1.1\r\n\r\n").await,
            Err(RequestError::Malformed)
        );
        assert_eq!(
            read(b"CONNECT example.com:0 HTTP/1.1\r\n\r\n").await,
            Err(RequestError::Malformed)
        );
        assert_eq!(
            read(b"\x16\x03\x01\x02\x00\x01\r\n\r\n").await,
            Err(RequestError::Malformed)
        );
        let mut huge = b"CONNECT a.co:443 HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        assert_eq!(read(&huge).await, Err(RequestError::TooLarge));
        assert_eq!(
            read(b"CONNECT a.co:443 HTTP/1.1\r\n").await,
            Err(RequestError::Closed)
        );
    }

    #[test]
    fn implausible_render_names_are_not_logged() {
        // "<script>:x"
        assert_eq!(basic_user(b"Basic PHNjcmlwdD46eA=="), None);
        assert_eq!(basic_user(b"Bearer abc"), None);
    }
}
