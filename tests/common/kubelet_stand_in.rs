//! A **kubelet stand-in**: the test control plane has no kubelet, so its pods stay `Pending`.
//! This patches a pod's status the way a kubelet would (running and ready; then terminated with
//! an exit code and a termination message); kube-controller-manager's real Job controller then
//! moves the Job on. It never touches a Job's status.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The stand-in for one namespace.
pub struct KubeletStandIn {
    pods: Api<Pod>,
}

impl KubeletStandIn {
    /// The stand-in of `namespace`.
    pub fn new(client: &Client, namespace: &str) -> Self {
        Self {
            pods: Api::namespaced(client.clone(), namespace),
        }
    }

    /// The newest pod of Job `job` that has not terminated, once the Job controller made it.
    pub async fn pod_of(&self, job: &str) -> Pod {
        let selector = format!("batch.kubernetes.io/job-name={job}");
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            let mut ticker = tokio::time::interval(Duration::from_millis(200));
            loop {
                ticker.tick().await;
                let pods = self
                    .pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .unwrap();
                let live = pods.items.into_iter().find(|pod| {
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                    !matches!(phase.as_deref(), Some("Succeeded") | Some("Failed"))
                });
                if let Some(pod) = live {
                    return pod;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("Job {job} made no pod within 60 s"))
    }

    /// Marks the pod running and ready.
    pub async fn start(&self, pod: &Pod) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        self.patch(
            pod,
            json!({
                "phase": "Running",
                "startTime": now,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": [{
                    "name": "worker", "image": image(pod), "imageID": "", "ready": true,
                    "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}}
                }]
            }),
        )
        .await;
    }

    /// Ends the pod: exit 0 is `Succeeded`, anything else `Failed`, with `message` as the
    /// container's termination message.
    pub async fn finish(&self, pod: &Pod, exit_code: i32, message: &str) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let phase = if exit_code == 0 {
            "Succeeded"
        } else {
            "Failed"
        };
        self.patch(
            pod,
            json!({
                "phase": phase,
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
                "containerStatuses": [{
                    "name": "worker", "image": image(pod), "imageID": "", "ready": false,
                    "restartCount": 0, "started": false,
                    "state": {"terminated": {"exitCode": exit_code, "reason": if exit_code == 0 {"Completed"} else {"Error"},
                        "message": message, "startedAt": now, "finishedAt": now}}
                }]
            }),
        )
        .await;
    }

    async fn patch(&self, pod: &Pod, status: serde_json::Value) {
        self.pods
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }
}

fn image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}
