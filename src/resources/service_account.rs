//! The foundry's worker ServiceAccount. Workers never talk to the API server, so the account
//! has no RBAC bindings and no token is mounted (DESIGN.md §4.2).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::{BuildError, controller_owner_ref, labels, names, namespace_of};
use crate::crd::VideoFoundry;

/// The worker ServiceAccount, with `automountServiceAccountToken: false`.
pub fn build_worker_service_account(foundry: &VideoFoundry) -> Result<ServiceAccount, BuildError> {
    Ok(ServiceAccount {
        metadata: ObjectMeta {
            name: Some(names::worker_service_account(&foundry.name_any())),
            namespace: Some(namespace_of(foundry, "VideoFoundry")?),
            labels: Some(labels::foundry_labels(&foundry.name_any())),
            owner_references: Some(vec![controller_owner_ref(foundry, "VideoFoundry")?]),
            ..ObjectMeta::default()
        },
        automount_service_account_token: Some(false),
        image_pull_secrets: None,
        secrets: None,
    })
}
