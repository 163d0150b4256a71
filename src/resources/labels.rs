//! Labels of the objects the operator builds. The NetworkPolicies select worker pods by
//! [`worker_selector`], so every worker pod must carry exactly those labels; the
//! `app.kubernetes.io/*` set lets the orphan sweep find what the operator manages.

use std::collections::BTreeMap;

use super::names::label_value;

/// `app.kubernetes.io/name` of everything the operator builds.
pub const APP_NAME: &str = "videofoundry";
/// `app.kubernetes.io/managed-by` of everything the operator builds.
pub const MANAGED_BY: &str = "videofoundry-operator";
/// `app.kubernetes.io/component` of worker pods, Jobs and their Secrets.
pub const WORKER_COMPONENT: &str = "render-worker";
/// `app.kubernetes.io/component` of namespace-level objects (policies, quota, service account).
pub const FOUNDRY_COMPONENT: &str = "foundry";
/// Label naming the foundry an object belongs to.
pub const FOUNDRY_LABEL: &str = "videofoundry.dev/foundry";
/// Label naming the render an object belongs to.
pub const RENDER_LABEL: &str = "videofoundry.dev/render";
/// Label marking worker pods; NetworkPolicies select on it.
pub const ROLE_LABEL: &str = "videofoundry.dev/role";
/// Value of [`ROLE_LABEL`] on worker pods.
pub const WORKER_ROLE: &str = "worker";

/// Labels every object of a foundry carries.
pub fn foundry_labels(foundry_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            label_value(foundry_name),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            FOUNDRY_COMPONENT.to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        (FOUNDRY_LABEL.to_owned(), label_value(foundry_name)),
    ])
}

/// The selector of a foundry's worker pods, used by its NetworkPolicies.
pub fn worker_selector(foundry_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (FOUNDRY_LABEL.to_owned(), label_value(foundry_name)),
        (ROLE_LABEL.to_owned(), WORKER_ROLE.to_owned()),
    ])
}

/// Labels of a render's worker Job, pod template and Secret: the foundry's labels, the worker
/// selector and the render's name.
pub fn worker_labels(foundry_name: &str, render_name: &str) -> BTreeMap<String, String> {
    let mut labels = foundry_labels(foundry_name);
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        WORKER_COMPONENT.to_owned(),
    );
    labels.extend(worker_selector(foundry_name));
    labels.insert(RENDER_LABEL.to_owned(), label_value(render_name));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_labels_contain_the_policy_selector() {
        let labels = worker_labels("studio", "trailer");
        for (key, value) in worker_selector("studio") {
            assert_eq!(labels.get(&key), Some(&value), "{key}");
        }
        assert_eq!(labels["app.kubernetes.io/component"], WORKER_COMPONENT);
        assert_eq!(labels[RENDER_LABEL], "trailer");
    }

    #[test]
    fn foundry_objects_are_not_selected_as_workers() {
        assert!(!foundry_labels("studio").contains_key(ROLE_LABEL));
    }
}
