//! Developer mode without Vault: the foundry's secrets in one Kubernetes Secret (a relaxation
//! reported in `SecurityRelaxed`). Pure builder; the same keys as the Vault layout, flattened to
//! `<key>.<field>` (`database.password`, `jwt.secret`, `aws.secret_access_key`,
//! `api-keys.<service>.key`), which Secret key syntax allows.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::ExposeSecret;

use super::kv::SecretFields;
use super::layout::{InvalidVaultPath, SecretKey};

/// The Secret `secret_name` in `namespace`, labelled as the foundry's, holding `entries`.
pub fn build_developer_secret(
    namespace: &str,
    foundry_name: &str,
    secret_name: &str,
    entries: &[(SecretKey, SecretFields)],
) -> Result<Secret, InvalidVaultPath> {
    let mut data = BTreeMap::new();
    for (key, fields) in entries {
        let base = key.relative_path().replace('/', ".");
        if let SecretKey::ApiKey(service) = key
            && (service.is_empty()
                || !service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')))
        {
            return Err(InvalidVaultPath {
                what: "api-keys service",
                value: service.clone(),
            });
        }
        for name in fields.names() {
            if let Some(value) = fields.get(name) {
                data.insert(
                    format!("{base}.{name}"),
                    ByteString(value.expose_secret().as_bytes().to_vec()),
                );
            }
        }
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(crate::resources::labels::foundry_labels(foundry_name)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn keys_follow_the_vault_layout_flattened() {
        let secret = build_developer_secret(
            "dev",
            "sandbox",
            "sandbox-secrets",
            &[
                (
                    SecretKey::Database,
                    SecretFields::new().with("password", SecretString::from("p")),
                ),
                (
                    SecretKey::ApiKey("openai".into()),
                    SecretFields::new().with("key", SecretString::from("k")),
                ),
            ],
        )
        .unwrap();
        let keys: Vec<_> = secret.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["api-keys.openai.key", "database.password"]);
        assert_eq!(secret.metadata.namespace.as_deref(), Some("dev"));
        assert!(
            secret
                .metadata
                .labels
                .unwrap()
                .values()
                .any(|v| v == "sandbox")
        );
        assert!(
            build_developer_secret(
                "dev",
                "s",
                "s",
                &[(SecretKey::ApiKey("a.b".into()), SecretFields::new())]
            )
            .is_err()
        );
    }
}
