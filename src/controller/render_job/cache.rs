//! What the controller keeps of each RenderJob in memory. An inline workflow may be 1.5 MiB and
//! `kubectl apply` copies the whole object into the last-applied annotation, so a thousand
//! renders would hold gigabytes; the cache keeps neither (nor the managed fields). The workflow
//! is read from the API server on the rare reconciles that need it (vetting and admission).

use kube::core::error_boundary::DeserializeGuard;

use crate::crd::RenderJob;

/// The annotation `kubectl apply` writes with a copy of the whole object.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the workflow body, the last-applied copy and the managed fields. An inline workflow
/// stays marked (an empty string), so the controller knows to read it from the API server.
pub fn strip_for_cache(guard: &mut DeserializeGuard<RenderJob>) {
    let metadata = match &mut guard.0 {
        Ok(render) => {
            if let Some(inline) = render.spec.workflow.inline.as_mut() {
                *inline = String::new();
            }
            &mut render.metadata
        }
        Err(invalid) => &mut invalid.metadata,
    };
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// True when the cached render's workflow was stripped and must be read from the API server.
pub fn workflow_stripped(render: &RenderJob) -> bool {
    render
        .spec
        .workflow
        .inline
        .as_deref()
        .is_some_and(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_no_workflow_and_no_applied_copy() {
        let body = format!(
            "{{\"1\": {{\"class_type\": \"X\", \"inputs\": {{\"t\": \"{}\"}}}}}}",
            "a".repeat(100_000)
        );
        let object = serde_json::json!({
            "apiVersion": "videofoundry.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {
                "name": "r", "namespace": "n", "uid": "u",
                "annotations": {LAST_APPLIED_ANNOTATION: body.clone(), "keep": "me"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {"foundryRef": {"name": "f"}, "userId": "7f1c0e1a-3b2d-4c5e-8f90-a1b2c3d4e5f6",
                     "workflow": {"inline": body}}
        });
        let mut guard: DeserializeGuard<RenderJob> = serde_json::from_value(object).unwrap();
        strip_for_cache(&mut guard);
        let render = guard.0.as_ref().unwrap();
        assert!(workflow_stripped(render));
        let kept = serde_json::to_string(render).unwrap();
        assert!(kept.len() < 1000, "{} bytes kept", kept.len());
        assert_eq!(render.metadata.annotations.as_ref().unwrap()["keep"], "me");
    }
}
