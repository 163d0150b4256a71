//! The Vault backend against a real OpenBao server (scripts/services/openbao.sh): the KV layout,
//! check-and-set, per-foundry isolation through policies and Kubernetes auth, JWT rotation, the
//! `SecretsReady` reasons (unreachable, sealed, permission denied, missing mount), and no secret
//! in any log line at TRACE level, error or Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/token_review_double.rs"]
mod token_review_double;
#[path = "common/vault_harness.rs"]
mod vault_harness;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use token_review_double::TokenReviewDouble;
use vault_harness::{Bao, bao, fresh_foundry};
use vaultrs::api::auth::kubernetes::requests::ConfigureKubernetesAuthRequestBuilder;
use videofoundry::crd::conditions::ConditionStatus;
use videofoundry::secrets::access::{self, BackendIdentity};
use videofoundry::secrets::generate::{generate_jwt_secret, generate_password};
use videofoundry::secrets::kv::{self, SecretFields};
use videofoundry::secrets::plan::{SecretsPlan, secrets_ready};
use videofoundry::secrets::rotation::{self, RotationOutcome, RotationPolicy, fields};
use videofoundry::secrets::{FoundryLayout, SecretKey, SecretsError, VaultLogin, VaultSession};

const DAY: Duration = Duration::from_secs(86_400);

fn policy() -> RotationPolicy {
    RotationPolicy {
        period: 90 * DAY,
        grace: DAY,
    }
}

/// Writes every key of the layout the way the operator does (generated where the operator
/// generates, given where the platform supplies the value).
async fn write_layout(session: &VaultSession, layout: &FoundryLayout) -> Vec<SecretString> {
    let mount = &layout.kv_mount;
    let database = kv::ensure_generated(
        session,
        mount,
        &layout.path(&SecretKey::Database).unwrap(),
        || SecretFields::new().with("password", generate_password()),
    )
    .await
    .unwrap();
    rotation::reconcile_jwt_secret(session, layout, &policy(), None, Timestamp::now())
        .await
        .unwrap();
    let api_key = SecretString::from(format!("sk-{}", uuid::Uuid::new_v4().simple()));
    kv::write_cas(
        session,
        mount,
        &layout.path(&SecretKey::ApiKey("openai".into())).unwrap(),
        &SecretFields::new().with("key", api_key.clone()),
        0,
    )
    .await
    .unwrap();
    let aws_secret = generate_password();
    kv::write_cas(
        session,
        mount,
        &layout.path(&SecretKey::Aws).unwrap(),
        &SecretFields::new()
            .with("access_key_id", SecretString::from("AKIAVFTEST"))
            .with("secret_access_key", aws_secret.clone())
            .with("region", SecretString::from("us-east-1")),
        0,
    )
    .await
    .unwrap();
    vec![
        database.fields.get("password").unwrap().clone(),
        api_key,
        aws_secret,
    ]
}

async fn operator_session(bao: &Bao, layout: &FoundryLayout) -> (VaultSession, SecretString) {
    access::ensure_policies(&bao.root, layout).await.unwrap();
    bao.session_with_policies(&[layout.operator_policy_name()])
        .await
}

#[tokio::test]
async fn the_layout_is_written_under_the_prefix_with_the_key_names_backends_read() {
    let Some(bao) = bao().await else { return };
    let layout = fresh_foundry("media");
    let (operator, _) = operator_session(&bao, &layout).await;
    write_layout(&operator, &layout).await;

    // Read back as a plain Vault client would, at the documented paths and field names.
    let prefix = format!("videofoundry/media/{}", layout.name);
    let keys = vaultrs::kv2::list(bao.root.client(), "secret", &prefix)
        .await
        .unwrap();
    assert_eq!(keys, ["api-keys/", "aws", "database", "jwt"]);
    let database: serde_json::Value =
        vaultrs::kv2::read(bao.root.client(), "secret", &format!("{prefix}/database"))
            .await
            .unwrap();
    assert_eq!(database["password"].as_str().unwrap().len(), 40);
    let jwt: serde_json::Value =
        vaultrs::kv2::read(bao.root.client(), "secret", &format!("{prefix}/jwt"))
            .await
            .unwrap();
    assert_eq!(jwt["secret"].as_str().unwrap().len(), 128);
    let aws: serde_json::Value =
        vaultrs::kv2::read(bao.root.client(), "secret", &format!("{prefix}/aws"))
            .await
            .unwrap();
    for field in ["access_key_id", "secret_access_key", "region"] {
        assert!(aws[field].is_string(), "aws.{field}");
    }
    let api: serde_json::Value = vaultrs::kv2::read(
        bao.root.client(),
        "secret",
        &format!("{prefix}/api-keys/openai"),
    )
    .await
    .unwrap();
    assert!(api["key"].as_str().unwrap().starts_with("sk-"));

    // Re-running creates nothing new: the generated values stay.
    let again = kv::read_latest(&operator, "secret", &format!("{prefix}/database"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version, 1);
}

#[tokio::test]
async fn check_and_set_refuses_a_stale_writer_so_no_update_is_lost() {
    let Some(bao) = bao().await else { return };
    let layout = fresh_foundry("media");
    let (operator, _) = operator_session(&bao, &layout).await;
    let path = layout.path(&SecretKey::ApiKey("render".into())).unwrap();
    let v1 = kv::write_cas(
        &operator,
        "secret",
        &path,
        &SecretFields::new().with("key", "one".into()),
        0,
    )
    .await
    .unwrap();

    // Two writers both read version 1; the first wins, the second is refused.
    let first = SecretFields::new().with("key", "two".into());
    let second = SecretFields::new().with("key", "three".into());
    let won = kv::write_cas(&operator, "secret", &path, &first, v1)
        .await
        .unwrap();
    let lost = kv::write_cas(&operator, "secret", &path, &second, v1)
        .await
        .unwrap_err();
    assert!(
        matches!(&lost, SecretsError::WriteConflict { expected_version, .. } if *expected_version == v1),
        "{lost:?}"
    );
    assert_eq!(lost.reason(), "VaultWriteConflict");
    assert!(lost.is_transient());
    // The loser re-reads and sees the winner's value, then updates on top of it.
    let latest = kv::read_latest(&operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            latest.version,
            latest.fields.get("key").unwrap().expose_secret()
        ),
        (won, "two")
    );
    kv::write_cas(&operator, "secret", &path, &second, latest.version)
        .await
        .unwrap();
    // Creating what exists is a conflict too (cas=0).
    assert!(matches!(
        kv::write_cas(&operator, "secret", &path, &first, 0).await,
        Err(SecretsError::WriteConflict { .. })
    ));

    // Eight operators generating the same secret at once all end with the one winner's value.
    let jwt_path = layout.path(&SecretKey::Jwt).unwrap();
    let racers = (0..8).map(|_| {
        kv::ensure_generated(&operator, "secret", &jwt_path, || {
            SecretFields::new().with("secret", generate_jwt_secret())
        })
    });
    let results = futures::future::join_all(racers).await;
    let values: std::collections::BTreeSet<String> = results
        .into_iter()
        .map(|r| {
            r.unwrap()
                .fields
                .get("secret")
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    assert_eq!(values.len(), 1);
}

#[tokio::test]
async fn a_foundrys_tokens_cannot_read_or_write_another_foundrys_secrets() {
    let Some(bao) = bao().await else { return };
    let a = fresh_foundry("tenant-a");
    let b = fresh_foundry("tenant-b");
    let (operator_a, _) = operator_session(&bao, &a).await;
    let (operator_b, _) = operator_session(&bao, &b).await;
    write_layout(&operator_a, &a).await;
    write_layout(&operator_b, &b).await;
    let (backend_a, _) = bao.session_with_policies(&[a.backend_policy_name()]).await;

    // Own secrets: readable.
    for key in [
        SecretKey::Database,
        SecretKey::Jwt,
        SecretKey::Aws,
        SecretKey::ApiKey("openai".into()),
    ] {
        assert!(
            kv::read_latest(&backend_a, "secret", &a.path(&key).unwrap())
                .await
                .unwrap()
                .is_some(),
            "{key:?}"
        );
    }
    // Another foundry's: 403 for every key, for the backend and for the operator.
    for key in [
        SecretKey::Database,
        SecretKey::Jwt,
        SecretKey::Aws,
        SecretKey::ApiKey("openai".into()),
    ] {
        let path = b.path(&key).unwrap();
        for session in [&backend_a, &operator_a] {
            let denied = kv::read_latest(session, "secret", &path).await.unwrap_err();
            assert!(
                matches!(denied, SecretsError::PermissionDenied { .. }),
                "{denied:?}"
            );
            assert_eq!(denied.reason(), "VaultPermissionDenied");
        }
        let write = kv::write_cas(
            &operator_a,
            "secret",
            &path,
            &SecretFields::new().with("x", "y".into()),
            0,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(write, SecretsError::PermissionDenied { .. }),
            "{write:?}"
        );
    }
    // Nor the metadata, listing, deletion or destruction of another foundry's keys.
    let b_jwt = b.path(&SecretKey::Jwt).unwrap();
    assert!(
        vaultrs::kv2::read_metadata(operator_a.client(), "secret", &b_jwt)
            .await
            .is_err()
    );
    assert!(
        vaultrs::kv2::list(operator_a.client(), "secret", &b.prefix)
            .await
            .is_err()
    );
    assert!(
        vaultrs::kv2::delete_latest(operator_a.client(), "secret", &b_jwt)
            .await
            .is_err()
    );
    assert!(
        kv::destroy_versions(&operator_a, "secret", &b_jwt, vec![1])
            .await
            .is_err()
    );
    assert!(
        kv::read_latest(&operator_b, "secret", &b_jwt)
            .await
            .unwrap()
            .is_some()
    );
    // The backend cannot write even its own secrets, nor list the prefix.
    let own = a.path(&SecretKey::Jwt).unwrap();
    assert!(matches!(
        kv::write_cas(
            &backend_a,
            "secret",
            &own,
            &SecretFields::new().with("secret", "x".into()),
            1
        )
        .await,
        Err(SecretsError::PermissionDenied { .. })
    ));
    assert!(
        vaultrs::kv2::list(backend_a.client(), "secret", &a.prefix)
            .await
            .is_err()
    );
    // The raw HTTP status is 403, as the issue asks.
    let raw = reqwest_status(
        &bao.addr,
        &b.path(&SecretKey::Database).unwrap(),
        &backend_a,
    )
    .await;
    assert_eq!(raw, 403);
}

/// The HTTP status of a plain GET of a KV path with the session's token.
async fn reqwest_status(addr: &str, path: &str, session: &VaultSession) -> u16 {
    let token = session.client().settings.token.clone();
    session
        .client()
        .http
        .http
        .get(format!("{addr}/v1/secret/data/{path}"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn kubernetes_auth(bao: &Bao, double: &TokenReviewDouble) -> String {
    let mount = format!(
        "kubernetes-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    bao.ensure_auth_method(&mount, "kubernetes").await;
    let mut config = ConfigureKubernetesAuthRequestBuilder::default();
    // Outside a pod there is no mounted CA, and OpenBao then insists on one; the double serves
    // plain HTTP, so this certificate (no key kept) is required by the API but never used.
    config
        .disable_local_ca_jwt(true)
        .kubernetes_ca_cert(include_str!("fixtures/token-review-double-ca.pem").to_owned());
    vaultrs::auth::kubernetes::configure(bao.root.client(), &mount, &double.url, Some(&mut config))
        .await
        .unwrap();
    mount
}

#[tokio::test]
async fn kubernetes_auth_gives_each_service_account_only_its_foundrys_secrets() {
    let Some(bao) = bao().await else { return };
    let double = TokenReviewDouble::start().await;
    let mount = kubernetes_auth(&bao, &double).await;
    let a = fresh_foundry("tenant-a");
    let b = fresh_foundry("tenant-b");
    for layout in [&a, &b] {
        let (operator, _) = operator_session(&bao, layout).await;
        write_layout(&operator, layout).await;
        access::ensure_backend_auth_role(
            &bao.root,
            &mount,
            layout,
            &BackendIdentity {
                namespace: layout.namespace.clone(),
                service_account: "studio-backend".into(),
                token_ttl: "10m".into(),
            },
        )
        .await
        .unwrap();
    }
    // Idempotent: writing the role again changes nothing and fails nothing.
    access::ensure_policies(&bao.root, &a).await.unwrap();

    let jwt_a = SecretString::from(double.mint("tenant-a", "studio-backend"));
    let backend_a = VaultSession::login(
        &bao.addr,
        None,
        &VaultLogin::Kubernetes {
            mount: mount.clone(),
            role: a.backend_auth_role_name(),
            jwt: jwt_a.clone(),
        },
    )
    .await
    .unwrap();
    assert!(
        double.reviews() >= 1,
        "Vault never asked the TokenReview double"
    );
    assert!(
        kv::read_latest(&backend_a, "secret", &a.path(&SecretKey::Jwt).unwrap())
            .await
            .unwrap()
            .is_some()
    );
    let denied = kv::read_latest(&backend_a, "secret", &b.path(&SecretKey::Jwt).unwrap())
        .await
        .unwrap_err();
    assert_eq!(denied.reason(), "VaultPermissionDenied");

    // A's service account cannot log in as B's backend; nor can an account of another
    // namespace with the same name, nor a token the API server never issued.
    for (role, jwt) in [
        (b.backend_auth_role_name(), jwt_a.clone()),
        (
            a.backend_auth_role_name(),
            SecretString::from(double.mint("tenant-b", "studio-backend")),
        ),
        (
            a.backend_auth_role_name(),
            SecretString::from(double.mint("tenant-a", "other")),
        ),
        (
            a.backend_auth_role_name(),
            SecretString::from(forge(jwt_a.expose_secret())),
        ),
    ] {
        let refused = VaultSession::login(
            &bao.addr,
            None,
            &VaultLogin::Kubernetes {
                mount: mount.clone(),
                role: role.clone(),
                jwt,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(refused.reason(), "VaultLoginFailed", "{refused}");
    }
}

/// The same claims with a different signature: the API server never issued it.
fn forge(jwt: &str) -> String {
    let (unsigned, _) = jwt.rsplit_once('.').unwrap();
    format!("{unsigned}.Zm9yZ2Vk")
}

#[tokio::test]
async fn the_operator_logs_in_with_kubernetes_auth_and_is_confined_to_its_foundry() {
    let Some(bao) = bao().await else { return };
    let double = TokenReviewDouble::start().await;
    let mount = kubernetes_auth(&bao, &double).await;
    let a = fresh_foundry("tenant-a");
    let b = fresh_foundry("tenant-b");
    access::ensure_policies(&bao.root, &a).await.unwrap();
    access::ensure_policies(&bao.root, &b).await.unwrap();
    // The platform binds the operator's service account to the foundry's operator policy.
    let mut role =
        vaultrs::api::auth::kubernetes::requests::CreateKubernetesRoleRequestBuilder::default();
    role.bound_service_account_names(vec!["videofoundry-operator".into()])
        .bound_service_account_namespaces(vec!["videofoundry-system".into()])
        .token_policies(vec![a.operator_policy_name()])
        .token_no_default_policy(true);
    vaultrs::auth::kubernetes::role::create(
        bao.root.client(),
        &mount,
        "videofoundry-operator",
        Some(&mut role),
    )
    .await
    .unwrap();
    let operator = VaultSession::login(
        &bao.addr,
        None,
        &VaultLogin::Kubernetes {
            mount,
            role: "videofoundry-operator".into(),
            jwt: SecretString::from(double.mint("videofoundry-system", "videofoundry-operator")),
        },
    )
    .await
    .unwrap();
    write_layout(&operator, &a).await;
    let denied = kv::write_cas(
        &operator,
        "secret",
        &b.path(&SecretKey::Jwt).unwrap(),
        &SecretFields::new(),
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(denied.reason(), "VaultPermissionDenied");
    // The operator's foundry policy does not let it write policies (that is platform-level).
    assert!(access::ensure_policies(&operator, &b).await.is_err());
}

#[tokio::test]
async fn jwt_rotation_keeps_the_previous_secret_for_the_grace_period_then_destroys_it() {
    let Some(bao) = bao().await else { return };
    let layout = fresh_foundry("media");
    let (operator, _) = operator_session(&bao, &layout).await;
    let path = layout.path(&SecretKey::Jwt).unwrap();
    let t0 = Timestamp::now();
    let created = rotation::reconcile_jwt_secret(&operator, &layout, &policy(), None, t0)
        .await
        .unwrap();
    assert!(matches!(created, RotationOutcome::Unchanged { .. }));
    let original = kv::read_latest(&operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();

    // Not due: nothing changes; next is reported.
    let t1 = t0 + jiff::SignedDuration::from_hours(24);
    let RotationOutcome::Unchanged { next: Some(next) } =
        rotation::reconcile_jwt_secret(&operator, &layout, &policy(), None, t1)
            .await
            .unwrap()
    else {
        panic!("rotated early")
    };
    assert_eq!(next, rotation::next_rotation(t0, policy().period).unwrap());

    // The annotation rotates now, once.
    let rotated = rotation::reconcile_jwt_secret(&operator, &layout, &policy(), Some("now-1"), t1)
        .await
        .unwrap();
    assert!(matches!(rotated, RotationOutcome::Rotated { .. }));
    let after = kv::read_latest(&operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    let old = original
        .fields
        .get(fields::JWT_SECRET)
        .unwrap()
        .expose_secret();
    assert_ne!(
        after
            .fields
            .get(fields::JWT_SECRET)
            .unwrap()
            .expose_secret(),
        old
    );
    assert_eq!(
        after
            .fields
            .get(fields::JWT_PREVIOUS_SECRET)
            .unwrap()
            .expose_secret(),
        old
    );
    assert!(matches!(
        rotation::reconcile_jwt_secret(&operator, &layout, &policy(), Some("now-1"), t1)
            .await
            .unwrap(),
        RotationOutcome::Unchanged { .. }
    ));
    assert!(
        kv::read_version(&operator, "secret", &path, original.version)
            .await
            .unwrap()
            .is_some()
    );

    // After the grace period the previous secret is gone from Vault entirely.
    let t2 = t1 + jiff::SignedDuration::from_hours(25);
    rotation::reconcile_jwt_secret(&operator, &layout, &policy(), Some("now-1"), t2)
        .await
        .unwrap();
    let latest = kv::read_latest(&operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    assert!(latest.fields.get(fields::JWT_PREVIOUS_SECRET).is_none());
    for version in 1..latest.version {
        assert!(
            kv::read_version(&operator, "secret", &path, version)
                .await
                .unwrap()
                .is_none(),
            "v{version}"
        );
    }

    // The period rotates too.
    let t3 = t1 + jiff::SignedDuration::from_hours(24 * 91);
    assert!(matches!(
        rotation::reconcile_jwt_secret(&operator, &layout, &policy(), Some("now-1"), t3)
            .await
            .unwrap(),
        RotationOutcome::Rotated { .. }
    ));
}

#[tokio::test]
async fn failures_map_to_secrets_ready_false_reasons() {
    let Some(bao) = bao().await else { return };
    let layout = fresh_foundry("media");
    let (operator, _) = operator_session(&bao, &layout).await;
    let path = layout.path(&SecretKey::Jwt).unwrap();

    // Unreachable: nothing listens on port 1.
    let nowhere = VaultSession::new("http://127.0.0.1:1", None, &SecretString::from("t")).unwrap();
    let unreachable = kv::read_latest(&nowhere, "secret", &path)
        .await
        .unwrap_err();
    assert_eq!(unreachable.reason(), "VaultUnreachable");

    // Permission denied: another foundry's token.
    let other = fresh_foundry("media");
    let (other_operator, _) = operator_session(&bao, &other).await;
    let denied = kv::read_latest(&other_operator, "secret", &path)
        .await
        .unwrap_err();
    assert_eq!(denied.reason(), "VaultPermissionDenied");

    // Missing mount: as the operator (whose policy covers the prefix, so a 403 there means the
    // mount is not there) and as a privileged token (404 "no handler for route").
    let missing = FoundryLayout {
        kv_mount: format!(
            "no-such-kv-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        ),
        ..layout.clone()
    };
    access::ensure_policies(&bao.root, &missing).await.unwrap();
    let (missing_operator, _) = bao
        .session_with_policies(&[missing.operator_policy_name()])
        .await;
    for session in [&missing_operator, &bao.root] {
        let error = kv::read_latest(session, &missing.kv_mount, &path)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "VaultMountMissing", "{error}");
        let (status, reason, message) = secrets_ready(&Err(error));
        assert_eq!(
            (status, reason),
            (ConditionStatus::False, "VaultMountMissing")
        );
        assert!(message.contains(&missing.kv_mount));
    }

    // Bad login token.
    let bad = VaultSession::login(
        &bao.addr,
        None,
        &VaultLogin::Token(SecretString::from("not-a-token")),
    )
    .await
    .unwrap_err();
    assert_eq!(bad.reason(), "VaultLoginFailed");

    // Success reads True.
    let ok: Result<SecretsPlan, SecretsError> = Ok(SecretsPlan::Vault {
        address: bao.addr.clone(),
        layout: layout.clone(),
        login: videofoundry::secrets::plan::LoginPlan::Kubernetes {
            mount: "kubernetes".into(),
            role: "r".into(),
        },
    });
    assert_eq!(secrets_ready(&ok).0, ConditionStatus::True);
    drop(operator);
}

/// A dev server of this test's own, on a free port, so sealing it disturbs no other test.
struct ThrowawayServer {
    child: tokio::process::Child,
    addr: String,
    root_token: SecretString,
    /// With TLS: the directory holding the dev server's generated `vault-ca.pem`.
    tls_dir: Option<tempfile::TempDir>,
}

impl ThrowawayServer {
    async fn start(binary: &str) -> Self {
        Self::start_with(binary, false).await
    }

    /// `tls`: serve HTTPS with a certificate from a CA the dev server generates (`-dev-tls`).
    async fn start_with(binary: &str, tls: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root_token = SecretString::from(format!("vf-seal-{}", uuid::Uuid::new_v4().simple()));
        let tls_dir = tls.then(|| tempfile::tempdir().unwrap());
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-root-token-id={}", root_token.expose_secret()),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token".to_owned(),
        ];
        if let Some(dir) = &tls_dir {
            args.push("-dev-tls".to_owned());
            args.push(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = tokio::process::Command::new(binary)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let scheme = if tls { "https" } else { "http" };
        let addr = format!("{scheme}://127.0.0.1:{port}");
        // Poll until it answers, with a deadline (a start-up wait, not a timing assumption).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ca = tls_dir
                .as_ref()
                .and_then(|dir| std::fs::read(dir.path().join("vault-ca.pem")).ok());
            if tls && ca.is_none() {
                assert!(std::time::Instant::now() < deadline, "no CA was written");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let session = VaultSession::new(&addr, ca.as_deref(), &root_token).unwrap();
            let health = session
                .client()
                .http
                .http
                .get(format!("{addr}/v1/sys/health"))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the throwaway OpenBao did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            addr,
            root_token,
            tls_dir,
        }
    }
}

#[tokio::test]
async fn a_sealed_server_gives_secrets_ready_false_vault_sealed() {
    let Some(binary) = common::service_env("VF_TEST_OPENBAO_BIN") else {
        return;
    };
    let mut server = ThrowawayServer::start(&binary).await;
    let root = VaultSession::login(
        &server.addr,
        None,
        &VaultLogin::Token(server.root_token.clone()),
    )
    .await
    .unwrap();
    let layout = fresh_foundry("media");
    let path = layout.path(&SecretKey::Jwt).unwrap();
    kv::write_cas(
        &root,
        "secret",
        &path,
        &SecretFields::new().with("secret", generate_jwt_secret()),
        0,
    )
    .await
    .unwrap();
    vaultrs::sys::seal(root.client()).await.unwrap();

    for result in [
        kv::read_latest(&root, "secret", &path).await.map(|_| ()),
        kv::write_cas(&root, "secret", &path, &SecretFields::new(), 1)
            .await
            .map(|_| ()),
        access::ensure_policies(&root, &layout).await,
    ] {
        let error = result.unwrap_err();
        assert_eq!(error.reason(), "VaultSealed", "{error}");
        assert!(error.is_transient());
        let (status, reason, message) = secrets_ready(&Err(error));
        assert_eq!((status, reason), (ConditionStatus::False, "VaultSealed"));
        assert!(message.contains("sealed"));
        assert!(!message.contains(server.root_token.expose_secret()));
    }
    server.child.kill().await.unwrap();
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line_at_trace_or_in_errors_and_debug_output() {
    let Some(bao) = bao().await else { return };
    let captured = Captured::default();
    // Everything, from every crate (vaultrs, rustify, reqwest, hyper), at TRACE, with spans.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let double = TokenReviewDouble::start().await;
    let mount = kubernetes_auth(&bao, &double).await;
    let a = fresh_foundry("tenant-a");
    let b = fresh_foundry("tenant-b");
    let (operator, operator_token) = operator_session(&bao, &a).await;
    access::ensure_policies(&bao.root, &b).await.unwrap();
    let mut secrets = write_layout(&operator, &a).await;
    secrets.push(operator_token);
    secrets.push(bao.root_token.clone());
    let backend_identity = BackendIdentity {
        namespace: "tenant-a".into(),
        service_account: "studio-backend".into(),
        token_ttl: "10m".into(),
    };
    access::ensure_backend_auth_role(&bao.root, &mount, &a, &backend_identity)
        .await
        .unwrap();
    let jwt = SecretString::from(double.mint("tenant-a", "studio-backend"));
    secrets.push(jwt.clone());
    let backend = VaultSession::login(
        &bao.addr,
        None,
        &VaultLogin::Kubernetes {
            mount: mount.clone(),
            role: a.backend_auth_role_name(),
            jwt: jwt.clone(),
        },
    )
    .await
    .unwrap();
    secrets.push(SecretString::from(backend.client().settings.token.clone()));

    let mut outputs = Vec::new();
    // Reads, a rotation, a conflict, a denial, a failed login, an unreachable server.
    let jwt_path = a.path(&SecretKey::Jwt).unwrap();
    let read = kv::read_latest(&backend, "secret", &jwt_path)
        .await
        .unwrap()
        .unwrap();
    outputs.push(format!("{read:?}"));
    rotation::reconcile_jwt_secret(&operator, &a, &policy(), Some("rotate"), Timestamp::now())
        .await
        .unwrap();
    let rotated = kv::read_latest(&operator, "secret", &jwt_path)
        .await
        .unwrap()
        .unwrap();
    for field in [fields::JWT_SECRET, fields::JWT_PREVIOUS_SECRET] {
        secrets.push(rotated.fields.get(field).unwrap().clone());
    }
    outputs.push(format!("{rotated:?} {:?}", rotated.fields));
    let conflict = kv::write_cas(&operator, "secret", &jwt_path, &rotated.fields, 1)
        .await
        .unwrap_err();
    let denied = kv::read_latest(&backend, "secret", &b.path(&SecretKey::Jwt).unwrap())
        .await
        .unwrap_err();
    let bad_login = VaultSession::login(
        &bao.addr,
        None,
        &VaultLogin::Kubernetes {
            mount,
            role: b.backend_auth_role_name(),
            jwt: jwt.clone(),
        },
    )
    .await
    .unwrap_err();
    let nowhere = VaultSession::new("http://127.0.0.1:1", None, &bao.root_token).unwrap();
    let unreachable = kv::read_latest(&nowhere, "secret", &jwt_path)
        .await
        .unwrap_err();
    for error in [&conflict, &denied, &bad_login, &unreachable] {
        outputs.push(format!(
            "{error} {error:?} {}",
            secrets_ready(&Err(clone_error(error))).2
        ));
    }
    outputs.push(format!(
        "{backend:?} {operator:?} {:?}",
        VaultLogin::Token(bao.root_token.clone())
    ));

    tracing::trace!(target: "hyper", marker = "capture-works-7f3a", "the capture sees every crate");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("capture-works-7f3a") && log.contains("TRACE"));
    assert!(
        log.len() > 10_000,
        "suspiciously little was logged: {} bytes",
        log.len()
    );
    let everything = format!("{log}\n{}", outputs.join("\n"));
    eprintln!(
        "searched {} bytes of TRACE output ({} lines) and {} error/Debug texts for {} secret values",
        log.len(),
        log.lines().count(),
        outputs.len(),
        secrets.len()
    );
    for secret in &secrets {
        let value = secret.expose_secret();
        assert!(value.len() >= 8);
        assert!(
            !everything.contains(value),
            "a secret value leaked into the output"
        );
    }
}

/// `secrets_ready` takes a `Result`; errors are not `Clone`, so rebuild one with the same text.
fn clone_error(error: &SecretsError) -> SecretsError {
    SecretsError::Configuration(error.to_string())
}

#[tokio::test]
async fn the_provisioner_policy_writes_foundry_policies_and_roles_but_reads_no_secret() {
    let Some(bao) = bao().await else { return };
    let double = TokenReviewDouble::start().await;
    let mount = kubernetes_auth(&bao, &double).await;
    vaultrs::sys::policy::set(
        bao.root.client(),
        "videofoundry-provisioner-test",
        &access::build_provisioner_policy(&mount),
    )
    .await
    .unwrap();
    let (provisioner, _) = bao
        .session_with_policies(&["videofoundry-provisioner-test".to_owned()])
        .await;
    let layout = fresh_foundry("media");
    access::ensure_policies(&provisioner, &layout)
        .await
        .unwrap();
    let backend = BackendIdentity {
        namespace: "media".into(),
        service_account: "studio-backend".into(),
        token_ttl: "10m".into(),
    };
    access::ensure_backend_auth_role(&provisioner, &mount, &layout, &backend)
        .await
        .unwrap();
    let (operator, _) = bao
        .session_with_policies(&[layout.operator_policy_name()])
        .await;
    write_layout(&operator, &layout).await;
    let denied = kv::read_latest(
        &provisioner,
        "secret",
        &layout.path(&SecretKey::Jwt).unwrap(),
    )
    .await
    .unwrap_err();
    // No capability anywhere under the KV mount: Vault cannot tell it the mount exists either.
    assert!(
        matches!(
            denied.reason(),
            "VaultPermissionDenied" | "VaultMountMissing"
        ),
        "{denied}"
    );
    // Not a policy of another name.
    assert!(
        vaultrs::sys::policy::set(
            provisioner.client(),
            "admin",
            "path \"*\" { capabilities = [\"sudo\"] }"
        )
        .await
        .is_err()
    );
    access::delete_access(&provisioner, &mount, &layout)
        .await
        .unwrap();
    access::delete_access(&provisioner, &mount, &layout)
        .await
        .unwrap();
}

#[tokio::test]
async fn tls_is_verified_with_rustls_against_the_ca_from_the_foundry_spec() {
    let Some(binary) = common::service_env("VF_TEST_OPENBAO_BIN") else {
        return;
    };
    let mut server = ThrowawayServer::start_with(&binary, true).await;
    assert!(server.addr.starts_with("https://"));
    let ca = std::fs::read(server.tls_dir.as_ref().unwrap().path().join("vault-ca.pem")).unwrap();
    let login = VaultLogin::Token(server.root_token.clone());

    // With the CA (as caSecretRef supplies it): a verified TLS session that works.
    let session = VaultSession::login(&server.addr, Some(&ca), &login)
        .await
        .unwrap();
    let layout = fresh_foundry("media");
    rotation::reconcile_jwt_secret(&session, &layout, &policy(), None, Timestamp::now())
        .await
        .unwrap();

    // Without it the server's certificate is not trusted: no request goes through.
    let untrusted = VaultSession::login(&server.addr, None, &login)
        .await
        .unwrap_err();
    assert_eq!(untrusted.reason(), "VaultUnreachable", "{untrusted}");
    // Garbage instead of a CA is a configuration error, not a silent fallback.
    let garbage =
        VaultSession::new(&server.addr, Some(b"not a pem"), &server.root_token).unwrap_err();
    assert_eq!(garbage.reason(), "VaultConfigInvalid");
    server.child.kill().await.unwrap();
}
