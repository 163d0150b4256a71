//! Leader election on a `coordination.k8s.io` Lease, so two replicas never reconcile at once.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::OperatorConfig;

/// Leader election failed or was lost.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be created or read.
    #[error("leader election on Lease {lease} failed: {source}")]
    Lease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// Why.
        #[source]
        source: LeaseManagerError,
    },
    /// Another replica took the lease; this one stops reconciling and exits so it restarts as a
    /// standby.
    #[error("lost the leader lease {lease}; stopping so that only one replica reconciles")]
    Lost {
        /// `namespace/name` of the Lease.
        lease: String,
    },
}

/// A held lease.
pub struct Leadership {
    lease: String,
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Resolves when leadership is lost.
    pub async fn lost(&self) -> LeaderError {
        let mut state = self.state.clone();
        let _ = state.wait_for(|leading| !*leading).await;
        LeaderError::Lost {
            lease: self.lease.clone(),
        }
    }

    /// Gives the lease up (closing the channel makes the manager release it).
    pub async fn release(self) {
        drop(self.state);
        let _ = self.task.await;
    }
}

/// Waits until this replica holds the lease. Returns `None` when shutdown came first.
pub async fn acquire(
    client: &Client,
    config: &OperatorConfig,
    identity: String,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Leadership>, LeaderError> {
    let settings = &config.leader_election;
    let namespace = settings
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let lease = format!("{namespace}/{}", settings.lease_name);
    // The config was validated (0 < grace < duration), which the lease manager requires.
    let manager = LeaseManagerBuilder::new(client.clone(), settings.lease_name.clone())
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(settings.lease_duration_seconds)
        .with_grace(settings.renew_grace_seconds)
        .build()
        .await
        .map_err(|source| LeaderError::Lease {
            lease: lease.clone(),
            source,
        })?;
    let (mut state, task) = manager.watch().await;
    tracing::info!(%lease, "waiting for the leader lease");
    let acquired = tokio::select! {
        result = state.wait_for(|leading| *leading) => result.is_ok(),
        _ = shutdown.wait_for(|stop| *stop) => false,
    };
    if !acquired {
        drop(state);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        if *shutdown.borrow() {
            return Ok(None);
        }
        return Err(LeaderError::Lost { lease });
    }
    tracing::info!(%lease, "acquired the leader lease");
    Ok(Some(Leadership { lease, state, task }))
}
