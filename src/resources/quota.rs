//! Optional namespace guards for a foundry: a ResourceQuota capping running pods (concurrent
//! renders) and GPUs, and a LimitRange giving containers the foundry's default requests and
//! limits. Both apply to the whole namespace, so they fit a namespace dedicated to one foundry;
//! the operator's own concurrency limit (`workers.maxConcurrentRenders`) does not depend on them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::worker_job::GPU_RESOURCE;
use super::{BuildError, controller_owner_ref, labels, names, namespace_of};
use crate::crd::VideoFoundry;

/// What the quota allows besides the foundry's workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaOptions {
    /// Most GPUs the namespace's pods may request at once; no GPU cap when `None`.
    pub gpu_cap: Option<u32>,
    /// Running pods allowed beyond `workers.maxConcurrentRenders` (e.g. the platform backend).
    pub other_pods: u32,
}

impl QuotaOptions {
    /// The options the foundry asks for in `spec.quota`; `None` when it asks for no quota.
    pub fn of(foundry: &VideoFoundry) -> Option<Self> {
        foundry.spec.quota.as_ref().map(|quota| Self {
            gpu_cap: quota.gpus,
            other_pods: quota.other_pods,
        })
    }
}

/// The namespace's ResourceQuota: `pods` = concurrent renders + `other_pods` (only pods that
/// have not finished count), and `requests.nvidia.com/gpu` when capped.
pub fn build_resource_quota(
    foundry: &VideoFoundry,
    options: &QuotaOptions,
) -> Result<ResourceQuota, BuildError> {
    let pods =
        u64::from(foundry.spec.workers.max_concurrent_renders) + u64::from(options.other_pods);
    let mut hard = BTreeMap::from([("pods".to_owned(), Quantity(pods.to_string()))]);
    if let Some(cap) = options.gpu_cap {
        hard.insert(
            format!("requests.{GPU_RESOURCE}"),
            Quantity(cap.to_string()),
        );
    }
    Ok(ResourceQuota {
        metadata: metadata(foundry)?,
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            scope_selector: None,
            scopes: None,
        }),
        status: None,
    })
}

/// The namespace's LimitRange: containers that set no requests or limits get the foundry's
/// `workers.resources`. `None` when the foundry sets no worker resources.
pub fn build_limit_range(foundry: &VideoFoundry) -> Result<Option<LimitRange>, BuildError> {
    let Some(resources) = &foundry.spec.workers.resources else {
        return Ok(None);
    };
    if resources.requests.is_none() && resources.limits.is_none() {
        return Ok(None);
    }
    Ok(Some(LimitRange {
        metadata: metadata(foundry)?,
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default: resources.limits.clone(),
                default_request: resources.requests.clone(),
                ..LimitRangeItem::default()
            }],
        }),
    }))
}

fn metadata(foundry: &VideoFoundry) -> Result<ObjectMeta, BuildError> {
    Ok(ObjectMeta {
        name: Some(names::worker_quota(&foundry.name_any())),
        namespace: Some(namespace_of(foundry, "VideoFoundry")?),
        labels: Some(labels::foundry_labels(&foundry.name_any())),
        owner_references: Some(vec![controller_owner_ref(foundry, "VideoFoundry")?]),
        ..ObjectMeta::default()
    })
}
