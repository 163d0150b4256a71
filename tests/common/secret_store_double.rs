//! A test double of the Kubernetes Secrets API (no real API server installs here): answers GET,
//! POST and merge-PATCH (of `data`) of Secrets from memory over kube's tower-test mock, so the controller's backend
//! steps can read credentials while talking to the real Postgres, OpenBao and Ceph RGW.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// The Secrets the double holds, by name (one namespace).
#[derive(Clone, Default)]
pub struct SecretStoreDouble {
    secrets: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl SecretStoreDouble {
    /// Stores a Secret with `stringData`-style text values (kept as base64 `data`).
    pub fn put(&self, name: &str, values: &[(&str, &str)]) {
        use base64::Engine as _;
        let data: serde_json::Map<String, Value> = values
            .iter()
            .map(|(key, value)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                ((*key).to_owned(), Value::String(encoded))
            })
            .collect();
        let secret =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data});
        self.secrets.lock().unwrap().insert(name.to_owned(), secret);
    }

    /// The text value of `key` in Secret `name`, if both exist.
    pub fn get(&self, name: &str, key: &str) -> Option<String> {
        use base64::Engine as _;
        let secrets = self.secrets.lock().unwrap();
        let encoded = secrets.get(name)?["data"][key].as_str()?.to_owned();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        Some(String::from_utf8(bytes).unwrap())
    }

    /// A client whose Secret requests this double answers (other requests get 404).
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let store = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let body = request.into_body().collect_bytes().await.unwrap();
                let (status, answer) = store.answer(&method, &path, &body);
                send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                        .unwrap(),
                );
            }
        });
        Client::new(service, "default")
    }

    fn answer(&self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, Value) {
        let mut secrets = self.secrets.lock().unwrap();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["api", "v1", "namespaces", _, "secrets", name]) => {
                match secrets.get(*name) {
                    Some(secret) => (StatusCode::OK, secret.clone()),
                    None => not_found(name),
                }
            }
            (&Method::POST, ["api", "v1", "namespaces", _, "secrets"]) => {
                let secret: Value = serde_json::from_slice(body).unwrap();
                let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
                if secrets.contains_key(&name) {
                    return (
                        StatusCode::CONFLICT,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "already exists"}),
                    );
                }
                secrets.insert(name, secret.clone());
                (StatusCode::CREATED, secret)
            }
            (&Method::PATCH, ["api", "v1", "namespaces", _, "secrets", name]) => {
                let patch: Value = serde_json::from_slice(body).unwrap();
                let Some(secret) = secrets.get_mut(*name) else {
                    return not_found(name);
                };
                if let (Some(data), Some(added)) = (
                    secret["data"].as_object_mut(),
                    patch["data"].as_object().cloned(),
                ) {
                    data.extend(added);
                }
                (StatusCode::OK, secret.clone())
            }
            _ => not_found(path),
        }
    }
}

fn not_found(what: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{what} not found")}),
    )
}
