//! The per-foundry egress gateway (`videofoundry-operator egress-gateway`, docs/egress.md): an
//! HTTP CONNECT proxy that lets `restricted` workers reach the foundry's approved hosts and
//! nothing else. For each connection it
//!
//! 1. reads one CONNECT request (bounded; plain HTTP proxying is refused with 405);
//! 2. checks the host and port against `network.allowedHosts` (403 otherwise; IP literals are
//!    never approved);
//! 3. resolves the name itself and refuses (403) when any address is private, loopback,
//!    link-local, CGNAT, unique-local or cloud metadata, unless the host's entry approves that
//!    range; it then connects to an address it checked, so a second DNS answer cannot steer the
//!    tunnel elsewhere (DNS rebinding);
//! 4. answers 200, reads the TLS ClientHello and closes the tunnel unless its SNI is the CONNECT
//!    host (TLS is never terminated: the hello is forwarded byte for byte);
//! 5. relays bytes both ways within idle, total-time and byte limits;
//!
//! and logs one structured event per connection (foundry, render, client, host, port, address,
//! bytes up and down, verdict, how it ended) and counts it in metrics.

pub mod gateway;
pub mod metrics;
pub mod policy;
pub mod request;
pub mod sni;

pub use gateway::{Gateway, Limits};
pub use policy::Policy;

/// What the gateway decided about a connection (a metric label: bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A tunnel was opened.
    Allowed,
    /// The host is not approved.
    DeniedHost,
    /// The host is approved on other ports.
    DeniedPort,
    /// The name resolved to an address that is not allowed.
    DeniedAddress,
    /// The tunnel did not start with a ClientHello for the CONNECT host.
    DeniedTls,
    /// Not a well-formed CONNECT request (or not in time).
    BadRequest,
    /// Too many connections at once.
    Overloaded,
    /// The name did not resolve.
    ResolveFailed,
    /// No checked address accepted the connection.
    ConnectFailed,
}

impl Verdict {
    /// Every verdict, for metrics that start at zero.
    pub const ALL: [Self; 9] = [
        Self::Allowed,
        Self::DeniedHost,
        Self::DeniedPort,
        Self::DeniedAddress,
        Self::DeniedTls,
        Self::BadRequest,
        Self::Overloaded,
        Self::ResolveFailed,
        Self::ConnectFailed,
    ];

    /// The metric label and log value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::DeniedHost => "denied_host",
            Self::DeniedPort => "denied_port",
            Self::DeniedAddress => "denied_address",
            Self::DeniedTls => "denied_tls",
            Self::BadRequest => "bad_request",
            Self::Overloaded => "overloaded",
            Self::ResolveFailed => "resolve_failed",
            Self::ConnectFailed => "connect_failed",
        }
    }
}

/// How an allowed tunnel ended (a metric label: bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed.
    Closed,
    /// No byte either way for the idle timeout.
    IdleTimeout,
    /// The tunnel reached its maximum lifetime.
    MaxDuration,
    /// The tunnel reached its byte limit.
    ByteLimit,
    /// A read or write failed.
    Error,
}

impl CloseReason {
    /// Every reason, for metrics that start at zero.
    pub const ALL: [Self; 5] = [
        Self::Closed,
        Self::IdleTimeout,
        Self::MaxDuration,
        Self::ByteLimit,
        Self::Error,
    ];

    /// The metric label and log value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::IdleTimeout => "idle_timeout",
            Self::MaxDuration => "max_duration",
            Self::ByteLimit => "byte_limit",
            Self::Error => "error",
        }
    }
}
