//! What a render's Job says about the render, read from the Job's status and its pods. Pure:
//! the controller fetches the Job and lists its pods, this module decides.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::render_job::RenderPhase;
use crate::resources::worker_job::{EXIT_INVALID_INPUT, EXIT_REJECTED, WORKER_CONTAINER};

/// Longest worker termination message carried into status and the database.
const MAX_WORKER_MESSAGE: usize = 512;

/// What the Job says.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `Queued` (pod not running yet), `Running`, `Succeeded` or `Failed`.
    pub phase: RenderPhase,
    /// PascalCase reason for the conditions.
    pub reason: &'static str,
    /// What happened, for people.
    pub message: String,
    /// When the render finished (the Job's completion or failure time).
    pub finished_at: Option<Time>,
}

impl Observation {
    /// Phases only move forward: between a pod that stopped being ready and the Job's terminal
    /// condition (or while a retry's pod waits), a render that ran stays `Running`.
    pub fn after(mut self, previous: RenderPhase) -> Self {
        if previous == RenderPhase::Running && self.phase == RenderPhase::Queued {
            self.phase = RenderPhase::Running;
        }
        self
    }
}

/// Reads the Job and its pods.
pub fn observe(job: &Job, pods: &[Pod]) -> Observation {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let terminal = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    let evicted = pods.iter().filter(|pod| was_disrupted(pod)).count();
    let retried = status.failed.unwrap_or(0);
    let history = attempt_history(retried, evicted);

    if let Some(complete) = terminal("Complete") {
        return Observation {
            phase: RenderPhase::Succeeded,
            reason: "RenderSucceeded",
            message: format!("the worker finished{history}"),
            finished_at: status
                .completion_time
                .or_else(|| complete.last_transition_time.clone()),
        };
    }
    if let Some(failed) = terminal("Failed") {
        let worker = last_worker_exit(pods);
        let (reason, what) = failure_reason(failed.reason.as_deref(), worker.as_ref());
        let detail = worker
            .as_ref()
            .and_then(|exit| exit.message.clone())
            .filter(|message| !message.is_empty())
            .map(|message| format!(": {message}"))
            .unwrap_or_default();
        return Observation {
            phase: RenderPhase::Failed,
            reason,
            message: format!("{what}{detail}{history}"),
            finished_at: failed.last_transition_time.clone(),
        };
    }
    if status.ready.unwrap_or(0) > 0 || pods.iter().any(is_running) {
        return Observation {
            phase: RenderPhase::Running,
            reason: "WorkerRunning",
            message: format!("the worker pod is running{history}"),
            finished_at: None,
        };
    }
    Observation {
        phase: RenderPhase::Queued,
        reason: if retried > 0 || evicted > 0 {
            "Retrying"
        } else {
            "JobCreated"
        },
        message: format!("the Job exists; waiting for its pod to start{history}"),
        finished_at: None,
    }
}

/// The worker's last exit, when a pod of the Job terminated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerExit {
    /// The container's exit code.
    pub exit_code: i32,
    /// Its termination message (first line, bounded).
    pub message: Option<String>,
}

fn last_worker_exit(pods: &[Pod]) -> Option<WorkerExit> {
    pods.iter()
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let worker = statuses.iter().find(|s| s.name == WORKER_CONTAINER)?;
            let terminated = worker.state.as_ref()?.terminated.as_ref()?;
            let finished = terminated.finished_at.clone();
            Some((
                finished,
                WorkerExit {
                    exit_code: terminated.exit_code,
                    message: terminated.message.as_deref().map(first_line),
                },
            ))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, exit)| exit)
}

/// Reason of a render whose worker refused its inputs (exit 42).
pub const REASON_WORKER_REJECTED: &str = "WorkerRejectedInputs";
/// Reason of a render whose worker found its inputs unusable (exit 43).
pub const REASON_INPUTS_UNUSABLE: &str = "InputsUnusable";

fn failure_reason(job_reason: Option<&str>, worker: Option<&WorkerExit>) -> (&'static str, String) {
    match (job_reason, worker.map(|w| w.exit_code)) {
        (Some("DeadlineExceeded"), _) => (
            "DeadlineExceeded",
            "the render ran past its timeout (spec.timeout) and was stopped".to_owned(),
        ),
        (_, Some(EXIT_REJECTED)) => (
            REASON_WORKER_REJECTED,
            format!(
                "the worker refused its inputs (exit {EXIT_REJECTED}: digest or model pin mismatch); not retried"
            ),
        ),
        (_, Some(EXIT_INVALID_INPUT)) => (
            REASON_INPUTS_UNUSABLE,
            format!(
                "the worker found its inputs unusable (exit {EXIT_INVALID_INPUT}); not retried"
            ),
        ),
        (Some("BackoffLimitExceeded"), code) => (
            "RetriesExhausted",
            match code {
                Some(code) => format!("the worker failed (exit {code}) and no retries are left"),
                None => "the worker failed and no retries are left".to_owned(),
            },
        ),
        (Some(other), _) => ("JobFailed", format!("the Job failed ({other})")),
        (None, _) => ("JobFailed", "the Job failed".to_owned()),
    }
}

fn attempt_history(retried: i32, evicted: usize) -> String {
    let mut parts = Vec::new();
    if retried > 0 {
        parts.push(format!("{retried} failed attempt(s) retried"));
    }
    if evicted > 0 {
        parts.push(format!(
            "{evicted} pod(s) evicted or preempted and retried without counting against retries"
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

fn was_disrupted(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        })
}

fn is_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Running")
        && !was_disrupted(pod)
}

/// The first line of a worker's message, cut to a bounded length.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim().to_owned();
    crate::controller::events::truncate(line, MAX_WORKER_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "r-render"}, "status": status})).unwrap()
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn terminated(code: i32, message: &str) -> Pod {
        pod(json!({
            "phase": "Failed",
            "containerStatuses": [{
                "name": "worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "message": message,
                                         "finishedAt": "2026-01-01T00:00:00Z"}}
            }]
        }))
    }

    fn failed(reason: &str) -> Job {
        job(
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
            "reason": reason, "lastTransitionTime": "2026-01-01T00:00:05Z"}]}),
        )
    }

    #[test]
    fn a_job_without_a_running_pod_is_queued() {
        let seen = observe(&job(json!({"active": 1})), &[]);
        assert_eq!(
            (seen.phase, seen.reason),
            (RenderPhase::Queued, "JobCreated")
        );
    }

    #[test]
    fn a_running_render_never_goes_back_to_queued() {
        let between = observe(&job(json!({"active": 1})), &[]);
        assert_eq!(
            between.clone().after(RenderPhase::Running).phase,
            RenderPhase::Running
        );
        assert_eq!(
            between.after(RenderPhase::Queued).phase,
            RenderPhase::Queued
        );
    }

    #[test]
    fn a_ready_pod_means_running() {
        let seen = observe(&job(json!({"active": 1, "ready": 1})), &[]);
        assert_eq!(seen.phase, RenderPhase::Running);
    }

    #[test]
    fn completion_is_success_with_its_time() {
        let seen = observe(
            &job(
                json!({"succeeded": 1, "completionTime": "2026-01-01T00:01:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]}),
            ),
            &[],
        );
        assert_eq!(seen.phase, RenderPhase::Succeeded);
        assert_eq!(
            seen.finished_at.unwrap().0.to_string(),
            "2026-01-01T00:01:00Z"
        );
    }

    #[test]
    fn worker_exit_codes_name_the_failure_and_carry_the_workers_reason() {
        let seen = observe(
            &failed("PodFailurePolicy"),
            &[terminated(42, "workflow digest mismatch\nmore")],
        );
        assert_eq!(
            (seen.phase, seen.reason),
            (RenderPhase::Failed, "WorkerRejectedInputs")
        );
        // The worker's first line only, then what the Job went through.
        assert!(
            seen.message
                .contains("not retried: workflow digest mismatch (")
                && !seen.message.contains("\nmore"),
            "{}",
            seen.message
        );

        let seen = observe(
            &failed("PodFailurePolicy"),
            &[terminated(43, "input 0 missing")],
        );
        assert_eq!(seen.reason, "InputsUnusable");

        let seen = observe(&failed("BackoffLimitExceeded"), &[terminated(1, "oom")]);
        assert_eq!(seen.reason, "RetriesExhausted");
        assert!(seen.message.contains("exit 1"));

        let seen = observe(&failed("DeadlineExceeded"), &[]);
        assert_eq!(seen.reason, "DeadlineExceeded");
    }

    #[test]
    fn evictions_are_reported_as_retried() {
        let evicted = pod(json!({"phase": "Failed", "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]}));
        let seen = observe(&job(json!({"active": 1})), &[evicted]);
        assert_eq!(seen.phase, RenderPhase::Queued);
        assert_eq!(seen.reason, "Retrying");
        assert!(seen.message.contains("evicted"), "{}", seen.message);
    }

    #[test]
    fn long_worker_messages_are_bounded() {
        let seen = observe(
            &failed("BackoffLimitExceeded"),
            &[terminated(1, &"x".repeat(5000))],
        );
        assert!(seen.message.len() < 700, "{}", seen.message.len());
    }
}
