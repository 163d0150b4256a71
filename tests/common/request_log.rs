//! Every request a client sends and the status it got, recorded by a tower layer on the
//! client's stack: the API server's audit log here records writes only, so reads (get, list,
//! watch) are seen from the client side.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use kube::client::{Body, DynBody};

/// The stack `kube::client::ClientBuilder::try_from(config)` starts with.
type GenericService =
    tower::util::BoxService<Request<Body>, Response<Box<DynBody>>, tower::BoxError>;

/// One request as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    /// API group (`""` for the core group).
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
    /// RBAC verb.
    pub verb: String,
    /// Namespace of the request, if any.
    pub namespace: Option<String>,
    /// HTTP status of the answer (0 when none came).
    pub status: u16,
}

/// The shared record; clone it into the layer.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Seen>>>);

impl RequestLog {
    /// What was seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

impl tower::Layer<GenericService> for RequestLog {
    type Service = Recording;
    fn layer(&self, inner: GenericService) -> Recording {
        Recording {
            inner,
            log: self.clone(),
        }
    }
}

/// The recording service.
pub struct Recording {
    inner: GenericService,
    log: RequestLog,
}

type Answer = Result<Response<Box<DynBody>>, tower::BoxError>;

impl tower::Service<Request<Body>> for Recording {
    type Response = Response<Box<DynBody>>;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let parsed = parse(request.method().as_str(), request.uri());
        let answer = self.inner.call(request);
        let log = self.log.clone();
        Box::pin(async move {
            let answer = answer.await;
            if let Some(mut seen) = parsed {
                seen.status = answer.as_ref().map_or(0, |r| r.status().as_u16());
                log.0.lock().unwrap().push(seen);
            }
            answer
        })
    }
}

/// The RBAC view of a request path: `/api/v1/...` or `/apis/<group>/<version>/...`, then
/// `namespaces/<ns>/` (unless the resource is `namespaces` itself), resource, name, subresource.
fn parse(method: &str, uri: &http::Uri) -> Option<Seen> {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method, name.is_some()) {
        ("GET", _) if watching => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some(Seen {
        group,
        resource: match sub {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_owned(),
        },
        verb: verb.to_owned(),
        namespace,
        status: 0,
    })
}
