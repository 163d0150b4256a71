//! Shared set-up for the tests against the real OpenBao server that
#![allow(dead_code)]
//! `scripts/services/openbao.sh` starts (VF_TEST_VAULT_ADDR, VF_TEST_VAULT_ROOT_TOKEN).
//! The root token plays the platform administrator: it mounts engines and auth methods and
//! writes the foundries' policies; the code under test then runs with the tokens those
//! policies give.

use secrecy::SecretString;
use vaultrs::api::token::requests::CreateTokenRequestBuilder;
use videofoundry::secrets::{FoundryLayout, VaultLogin, VaultSession};

/// The dev server and a root session on it.
pub struct Bao {
    /// Address, e.g. `http://127.0.0.1:18237`.
    pub addr: String,
    /// The root token (a throwaway dev server's).
    pub root_token: SecretString,
    /// A session holding the root token.
    pub root: VaultSession,
}

/// Connects to the test server, or skips (see `common::service_env`).
pub async fn bao() -> Option<Bao> {
    let addr = crate::common::service_env("VF_TEST_VAULT_ADDR")?;
    let root_token = SecretString::from(crate::common::service_env("VF_TEST_VAULT_ROOT_TOKEN")?);
    let root = VaultSession::login(&addr, None, &VaultLogin::Token(root_token.clone()))
        .await
        .unwrap();
    Some(Bao {
        addr,
        root_token,
        root,
    })
}

/// A foundry with a fresh name, so reruns against the same server never collide.
pub fn fresh_foundry(namespace: &str) -> FoundryLayout {
    let name = format!(
        "studio-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    FoundryLayout::for_foundry(namespace, &name, None).unwrap()
}

impl Bao {
    /// A session holding a new token with exactly `policies` (no `default` policy).
    pub async fn session_with_policies(&self, policies: &[String]) -> (VaultSession, SecretString) {
        let mut options = CreateTokenRequestBuilder::default();
        options
            .policies(policies.to_vec())
            .no_default_policy(true)
            .ttl("15m");
        let auth = vaultrs::token::new(self.root.client(), Some(&mut options))
            .await
            .unwrap();
        let token = SecretString::from(auth.client_token);
        let session = VaultSession::new(&self.addr, None, &token).unwrap();
        (session, token)
    }

    /// Enables an auth method at `path` unless something is mounted there already.
    pub async fn ensure_auth_method(&self, path: &str, kind: &str) {
        let mounted = vaultrs::sys::auth::list(self.root.client()).await.unwrap();
        if !mounted.contains_key(&format!("{path}/")) {
            vaultrs::sys::auth::enable(self.root.client(), path, kind, None)
                .await
                .unwrap();
        }
    }

    /// Enables a secrets engine at `path` unless something is mounted there already.
    pub async fn ensure_secrets_engine(&self, path: &str, kind: &str) {
        let mounted = vaultrs::sys::mount::list(self.root.client()).await.unwrap();
        if !mounted.contains_key(&format!("{path}/"))
            && vaultrs::sys::mount::enable(self.root.client(), path, kind, None)
                .await
                .is_err()
        {
            // Another test may have mounted it in the meantime.
            let mounted = vaultrs::sys::mount::list(self.root.client()).await.unwrap();
            assert!(
                mounted.contains_key(&format!("{path}/")),
                "cannot mount {kind} at {path}"
            );
        }
    }
}
