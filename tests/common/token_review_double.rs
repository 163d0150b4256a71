//! TEST DOUBLE of the Kubernetes TokenReview API, for Vault's Kubernetes auth method: no real
//! API server installs here (DESIGN.md §6). It mints service-account JWTs and answers
//! `POST /apis/authentication.k8s.io/v1/tokenreviews` the way the API server does: a token it
//! minted is authenticated as its service account; any other token (a forged or edited one
//! included) is not. Served over plain HTTP on 127.0.0.1; OpenBao's `kubernetes_host` accepts
//! an `http://` URL, so no certificate is needed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::{Value, json};

/// A service account the double knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

type Registry = Arc<Mutex<BTreeMap<String, ServiceAccount>>>;

/// A running TokenReview double. Dropping it stops the server.
pub struct TokenReviewDouble {
    /// `http://127.0.0.1:<port>`, for Vault's `kubernetes_host`.
    pub url: String,
    tokens: Registry,
    reviews: Arc<Mutex<u32>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TokenReviewDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TokenReviewDouble {
    /// Starts the double on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let tokens: Registry = Arc::default();
        let reviews = Arc::new(Mutex::new(0));
        let app = Router::new()
            .route("/apis/authentication.k8s.io/v1/tokenreviews", post(review))
            .with_state((tokens.clone(), reviews.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            tokens,
            reviews,
            server,
        }
    }

    /// Mints a service-account JWT (legacy and projected claims, an unverifiable signature:
    /// Vault trusts the TokenReview answer, not the signature, when no `pem_keys` are set).
    pub fn mint(&self, namespace: &str, name: &str) -> String {
        let uid = uuid::Uuid::new_v4().to_string();
        let header = json!({"alg": "RS256", "kid": "token-review-double", "typ": "JWT"});
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "iat": now,
            "exp": now + 3600,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": uid,
            "kubernetes.io/serviceaccount/secret.name": format!("{name}-token"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        });
        let mut signature = [0u8; 256];
        rand::rng().fill(&mut signature[..]);
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        self.tokens.lock().unwrap().insert(
            token.clone(),
            ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid,
            },
        );
        token
    }

    /// How many reviews were answered (proves Vault asked the double).
    pub fn reviews(&self) -> u32 {
        *self.reviews.lock().unwrap()
    }
}

async fn review(
    State((tokens, reviews)): State<(Registry, Arc<Mutex<u32>>)>,
    Json(request): Json<Value>,
) -> Json<Value> {
    *reviews.lock().unwrap() += 1;
    let token = request
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let audiences = request
        .pointer("/spec/audiences")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let known = tokens.lock().unwrap().get(token).cloned();
    let status = match known {
        Some(sa) => json!({
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
                "uid": sa.uid,
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", sa.namespace)],
            },
            "audiences": audiences,
        }),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    Json(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": status,
    }))
}
