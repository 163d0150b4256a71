//! Start-up check: every CRD must be installed and queryable before the controllers start.

use kube::api::ListParams;
use kube::{Api, Client, CustomResourceExt, Resource};
use serde::de::DeserializeOwned;

use crate::crd::{ApprovedNodeList, RenderJob, VideoFoundry};

/// A CRD the operator needs is missing, or the API server cannot be asked.
#[derive(Debug, thiserror::Error)]
pub enum CrdCheckError {
    /// The CRD is not installed.
    #[error(
        "CustomResourceDefinition {crd} is not installed; install the CRDs with \
         `kubectl apply --server-side -f crds/` (or `videofoundry-operator crds | kubectl apply --server-side -f -`)"
    )]
    Missing {
        /// Name of the CRD, e.g. `renderjobs.videofoundry.dev`.
        crd: String,
    },
    /// The API server refused or could not be reached.
    #[error("cannot query {crd} on the Kubernetes API server: {source}")]
    Unreachable {
        /// Name of the CRD.
        crd: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// Checks each CRD with a one-item list; a 404 names the missing CRD.
pub async fn check_crds_installed(client: &Client) -> Result<(), CrdCheckError> {
    check::<VideoFoundry>(client).await?;
    check::<ApprovedNodeList>(client).await?;
    check::<RenderJob>(client).await?;
    Ok(())
}

async fn check<K>(client: &Client) -> Result<(), CrdCheckError>
where
    K: Resource<DynamicType = ()> + CustomResourceExt + Clone + DeserializeOwned + std::fmt::Debug,
{
    let crd = K::crd_name().to_owned();
    let api: Api<K> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(CrdCheckError::Missing { crd }),
        Err(source) => Err(CrdCheckError::Unreachable { crd, source }),
    }
}
