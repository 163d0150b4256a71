//! The first bytes of a tunnel must be a TLS ClientHello whose SNI is the CONNECT host: this
//! stops a worker from opening a tunnel to an approved CDN address and then asking the CDN for
//! another customer's site (domain fronting by SNI). The hello is parsed by rustls' `Acceptor`
//! (the gateway never terminates TLS: the parser only reads a copy of the bytes, which are then
//! forwarded unchanged).

use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes read while waiting for a complete ClientHello (a hello with post-quantum key
/// shares is ~2 KB; TLS allows one of up to 16 KB per record, over several records).
pub const MAX_HELLO_BYTES: usize = 32 * 1024;

/// The TLS record content type of a handshake message.
const HANDSHAKE_RECORD: u8 = 22;

/// Why the first bytes of a tunnel were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The bytes are not a TLS ClientHello (plain text, another protocol, garbage).
    #[error("the tunnel did not start with a TLS ClientHello")]
    NotTls,
    /// A ClientHello without a server name (or with an IP address as its name).
    #[error("the ClientHello names no server")]
    NoServerName,
    /// The ClientHello names another server than the CONNECT target.
    #[error("the ClientHello names {sni}, not the CONNECT host")]
    Mismatch {
        /// The name in the hello (a DNS name, checked by rustls).
        sni: String,
    },
    /// More than [`MAX_HELLO_BYTES`] without a complete hello.
    #[error("the ClientHello is too large")]
    TooLarge,
    /// The client closed before a complete hello.
    #[error("the client closed the tunnel before a complete ClientHello")]
    Closed,
}

/// Reads the ClientHello (starting with `already`, bytes read with the request head) and checks
/// its SNI against `host` (lowercase). Returns every byte read, to forward upstream as it was.
pub async fn read_client_hello<R: AsyncRead + Unpin>(
    client: &mut R,
    already: Vec<u8>,
    host: &str,
) -> Result<Vec<u8>, HelloError> {
    let mut acceptor = Acceptor::default();
    let mut seen = already;
    let mut fed = 0;
    let mut chunk = [0_u8; 4096];
    loop {
        // A TLS record of type handshake (22) must come first; anything else is refused at once
        // rather than waited on as a record whose length is made of plain-text bytes.
        if seen.first().is_some_and(|&byte| byte != HANDSHAKE_RECORD) {
            return Err(HelloError::NotTls);
        }
        while fed < seen.len() {
            let mut pending = &seen[fed..];
            match acceptor.read_tls(&mut pending) {
                Ok(0) | Err(_) => return Err(HelloError::NotTls),
                Ok(read) => fed += read,
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted
                    .client_hello()
                    .server_name()
                    .map(str::to_ascii_lowercase)
                    .ok_or(HelloError::NoServerName)?;
                return if sni == host {
                    Ok(seen)
                } else {
                    Err(HelloError::Mismatch { sni })
                };
            }
            Ok(None) => {}
            Err(_) => return Err(HelloError::NotTls),
        }
        if seen.len() >= MAX_HELLO_BYTES {
            return Err(HelloError::TooLarge);
        }
        let read = client
            .read(&mut chunk)
            .await
            .map_err(|_| HelloError::Closed)?;
        if read == 0 {
            return Err(HelloError::Closed);
        }
        seen.extend_from_slice(&chunk[..read]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real ClientHello from rustls' client for `name`.
    fn hello(name: &str) -> Vec<u8> {
        crate::install_crypto_provider();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut client =
            rustls::ClientConnection::new(Arc::new(config), name.to_owned().try_into().unwrap())
                .unwrap();
        let mut bytes = Vec::new();
        client.write_tls(&mut bytes).unwrap();
        bytes
    }

    #[tokio::test]
    async fn the_hello_is_returned_unchanged_when_its_sni_is_the_connect_host() {
        let bytes = hello("approved.test");
        // Split across the request read and the tunnel, as a pipelining client would.
        let (first, rest) = bytes.split_at(7);
        let mut reader = rest;
        let seen = read_client_hello(&mut reader, first.to_vec(), "approved.test")
            .await
            .unwrap();
        assert_eq!(seen, bytes);
    }

    #[tokio::test]
    async fn another_name_no_name_plain_text_and_truncation_are_refused() {
        let bytes = hello("other.test");
        let mut reader = bytes.as_slice();
        assert_eq!(
            read_client_hello(&mut reader, Vec::new(), "approved.test").await,
            Err(HelloError::Mismatch {
                sni: "other.test".to_owned()
            })
        );
        let bytes = hello("127.0.0.1");
        let mut reader = bytes.as_slice();
        assert_eq!(
            read_client_hello(&mut reader, Vec::new(), "approved.test").await,
            Err(HelloError::NoServerName)
        );
        let mut reader: &[u8] = b"GET / HTTP/1.1\r\nHost: approved.test\r\n\r\n";
        assert_eq!(
            read_client_hello(&mut reader, Vec::new(), "approved.test").await,
            Err(HelloError::NotTls)
        );
        let bytes = hello("approved.test");
        let mut reader = &bytes[..bytes.len() / 2];
        assert_eq!(
            read_client_hello(&mut reader, Vec::new(), "approved.test").await,
            Err(HelloError::Closed)
        );
    }
}
