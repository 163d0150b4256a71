//! Server-side apply of child objects only when they differ from what the API server holds, so
//! a reconcile with nothing to do writes nothing (the audit log stays quiet at rest).

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::FIELD_MANAGER;

/// What [`ensure_applied`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildChange {
    /// The object held every desired field already: no write.
    Unchanged,
    /// The object did not exist and was created.
    Created,
    /// The object differed (edited by hand, or an older operator's version) and was re-applied.
    Updated,
}

/// Reads the object named like `desired`, and server-side applies `desired` (forcing the
/// operator's field manager) only when it is missing or some desired field differs.
pub async fn ensure_applied<K>(api: &Api<K>, desired: &K) -> Result<ChildChange, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Serialize + DeserializeOwned,
{
    let name = desired.name_any();
    let change = match api.get_opt(&name).await? {
        None => ChildChange::Created,
        Some(current) if holds(desired, &current) => return Ok(ChildChange::Unchanged),
        Some(_) => ChildChange::Updated,
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(desired),
    )
    .await?;
    Ok(change)
}

/// Whether `current` holds every field `desired` sets (fields the API server defaults or other
/// managers add are ignored).
pub fn holds<K: Serialize>(desired: &K, current: &K) -> bool {
    match (serde_json::to_value(desired), serde_json::to_value(current)) {
        (Ok(desired), Ok(current)) => is_subset(&desired, &current),
        // Cannot compare: applying is always safe.
        _ => false,
    }
}

/// `desired ⊆ current`: objects key by key, arrays element by element (same length), scalars
/// equal. An empty or null desired value matches a missing one, since the API server drops
/// empty fields (Go's `omitempty`).
pub fn is_subset(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, value)| match have.get(key) {
                Some(found) => is_subset(value, found),
                None => is_empty(value),
            })
        }
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (want, Value::Null) => is_empty(want),
        (want, have) => want == have,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn defaulted_and_extra_fields_do_not_count_as_drift() {
        let desired = json!({"metadata": {"name": "deny", "labels": {"a": "1"}},
            "spec": {"podSelector": {"matchLabels": {"r": "w"}}, "ingress": [],
                     "egress": [{"ports": [{"port": 53}]}]}});
        let stored = json!({"metadata": {"name": "deny", "labels": {"a": "1", "b": "2"},
                "resourceVersion": "9", "managedFields": []},
            "spec": {"podSelector": {"matchLabels": {"r": "w"}},
                     "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}],
                     "policyTypes": ["Ingress", "Egress"]}});
        assert!(is_subset(&desired, &stored));
    }

    #[test]
    fn an_edited_or_missing_field_is_drift() {
        let desired = json!({"spec": {"egress": [{"ports": [{"port": 53}]}], "podSelector": {}}});
        let edited = json!({"spec": {"egress": [{"ports": [{"port": 54}]}]}});
        let widened = json!({"spec": {"egress": [{"ports": [{"port": 53}]}, {}]}});
        let relabelled = json!({"metadata": {"labels": {"a": "2"}}});
        assert!(!is_subset(&desired, &edited));
        assert!(!is_subset(&desired, &widened));
        assert!(!is_subset(
            &json!({"metadata": {"labels": {"a": "1"}}}),
            &relabelled
        ));
        assert!(!is_subset(&json!({"automount": false}), &json!({})));
    }
}
