//! The Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
//! `baseline` and `restricted` checks, as Pod Security admission applies them at the `latest`
//! version for a cluster of our oldest supported release (1.28). Works on the JSON of a pod
//! template (`{metadata, spec}`) so that every container kind and volume type is seen, including
//! fields the builders never set.

use serde_json::Value;

/// Capabilities `baseline` allows adding.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
/// Sysctls `baseline` allows (1.28 list).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
];
/// SELinux types `baseline` allows (besides unset).
const SELINUX_TYPES: &[&str] = &["container_t", "container_init_t", "container_kvm_t"];
/// Volume sources `restricted` allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Every violation of `baseline` + `restricted` by a pod template, one line each.
pub fn restricted_violations(template: &Value) -> Vec<String> {
    let mut violations = baseline_violations(template);
    let spec = &template["spec"];
    let pod_sc = &spec["securityContext"];
    let containers = all_containers(spec);

    for volume in array(&spec["volumes"]) {
        for source in object_keys(volume).filter(|k| *k != "name") {
            if !RESTRICTED_VOLUMES.contains(&source) {
                violations.push(format!(
                    "volume {}: type {source} not allowed",
                    volume["name"]
                ));
            }
        }
    }
    for (name, container) in &containers {
        let sc = &container["securityContext"];
        if sc["allowPrivilegeEscalation"] != Value::Bool(false) {
            violations.push(format!("{name}: allowPrivilegeEscalation must be false"));
        }
        let drops = array(&sc["capabilities"]["drop"]);
        if !drops.iter().any(|d| d.as_str() == Some("ALL")) {
            violations.push(format!("{name}: capabilities must drop ALL"));
        }
        for added in array(&sc["capabilities"]["add"]) {
            if added.as_str() != Some("NET_BIND_SERVICE") {
                violations.push(format!(
                    "{name}: may only add NET_BIND_SERVICE, adds {added}"
                ));
            }
        }
        // runAsNonRoot: true at container level, or inherited from the pod and not overridden.
        match &sc["runAsNonRoot"] {
            Value::Bool(true) => {}
            Value::Null if pod_sc["runAsNonRoot"] == Value::Bool(true) => {}
            _ => violations.push(format!("{name}: runAsNonRoot must be true")),
        }
        if sc["runAsUser"] == 0 {
            violations.push(format!("{name}: runAsUser must not be 0"));
        }
        match sc["seccompProfile"]["type"].as_str() {
            Some("RuntimeDefault" | "Localhost") => {}
            None if matches!(
                pod_sc["seccompProfile"]["type"].as_str(),
                Some("RuntimeDefault" | "Localhost")
            ) => {}
            other => violations.push(format!(
                "{name}: seccompProfile must be RuntimeDefault or Localhost, is {other:?}"
            )),
        }
    }
    if pod_sc["runAsUser"] == 0 {
        violations.push("pod: runAsUser must not be 0".to_owned());
    }
    violations
}

/// Every violation of `baseline`.
pub fn baseline_violations(template: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let spec = &template["spec"];
    let pod_sc = &spec["securityContext"];

    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == Value::Bool(true) {
            violations.push(format!("pod: {field} must not be true"));
        }
    }
    if pod_sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        violations.push("pod: hostProcess".to_owned());
    }
    for volume in array(&spec["volumes"]) {
        if !volume["hostPath"].is_null() {
            violations.push(format!("volume {}: hostPath", volume["name"]));
        }
    }
    check_selinux("pod", &pod_sc["seLinuxOptions"], &mut violations);
    check_seccomp_not_unconfined("pod", &pod_sc["seccompProfile"], &mut violations);
    check_apparmor_field("pod", &pod_sc["appArmorProfile"], &mut violations);
    for sysctl in array(&pod_sc["sysctls"]) {
        let name = sysctl["name"].as_str().unwrap_or_default();
        if !SAFE_SYSCTLS.contains(&name) {
            violations.push(format!("pod: sysctl {name} not allowed"));
        }
    }
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        for (key, value) in annotations {
            let value = value.as_str().unwrap_or_default();
            if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && value != "runtime/default"
                && !value.starts_with("localhost/")
            {
                violations.push(format!(
                    "annotation {key}: AppArmor profile {value} not allowed"
                ));
            }
        }
    }
    for (name, container) in all_containers(spec) {
        let sc = &container["securityContext"];
        if sc["privileged"] == Value::Bool(true) {
            violations.push(format!("{name}: privileged"));
        }
        if sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
            violations.push(format!("{name}: hostProcess"));
        }
        for added in array(&sc["capabilities"]["add"]) {
            if !added
                .as_str()
                .is_some_and(|a| BASELINE_CAPABILITIES.contains(&a))
            {
                violations.push(format!("{name}: capability {added} not allowed"));
            }
        }
        for port in array(&container["ports"]) {
            if port["hostPort"].as_i64().unwrap_or(0) != 0 {
                violations.push(format!("{name}: hostPort {}", port["hostPort"]));
            }
        }
        if !matches!(sc["procMount"].as_str(), None | Some("Default")) {
            violations.push(format!("{name}: procMount {}", sc["procMount"]));
        }
        check_selinux(&name, &sc["seLinuxOptions"], &mut violations);
        check_seccomp_not_unconfined(&name, &sc["seccompProfile"], &mut violations);
        check_apparmor_field(&name, &sc["appArmorProfile"], &mut violations);
    }
    violations
}

fn check_selinux(at: &str, options: &Value, violations: &mut Vec<String>) {
    if let Some(kind) = options["type"].as_str()
        && !kind.is_empty()
        && !SELINUX_TYPES.contains(&kind)
    {
        violations.push(format!("{at}: SELinux type {kind} not allowed"));
    }
    for field in ["user", "role"] {
        if options[field].as_str().is_some_and(|v| !v.is_empty()) {
            violations.push(format!("{at}: SELinux {field} must not be set"));
        }
    }
}

fn check_seccomp_not_unconfined(at: &str, profile: &Value, violations: &mut Vec<String>) {
    if profile["type"].as_str() == Some("Unconfined") {
        violations.push(format!("{at}: seccomp Unconfined"));
    }
}

fn check_apparmor_field(at: &str, profile: &Value, violations: &mut Vec<String>) {
    if !matches!(
        profile["type"].as_str(),
        None | Some("RuntimeDefault" | "Localhost")
    ) {
        violations.push(format!("{at}: AppArmor profile {}", profile["type"]));
    }
}

fn all_containers(spec: &Value) -> Vec<(String, &Value)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|kind| {
            array(&spec[kind])
                .iter()
                .map(move |c| (format!("{kind}[{}]", c["name"].as_str().unwrap_or("?")), c))
        })
        .collect()
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn object_keys(value: &Value) -> impl Iterator<Item = &str> {
    value
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys().map(String::as_str))
}

#[cfg(test)]
mod tests {
    //! The checker itself: a compliant worker pod passes, and each published violation is caught.
    use super::*;
    use crate::fixtures;
    use serde_json::json;

    fn worker_template() -> Value {
        let objects = fixtures::render_objects(&fixtures::foundry(), &fixtures::cpu_render());
        serde_json::to_value(objects.job.spec.unwrap().template).unwrap()
    }

    #[test]
    fn the_fixture_worker_pod_is_restricted() {
        assert_eq!(
            restricted_violations(&worker_template()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_published_violation_is_caught() {
        type Mutation = fn(&mut Value);
        let mutations: Vec<(&str, Mutation)> = vec![
            ("hostNetwork", |t| t["spec"]["hostNetwork"] = json!(true)),
            ("hostPID", |t| t["spec"]["hostPID"] = json!(true)),
            ("hostIPC", |t| t["spec"]["hostIPC"] = json!(true)),
            ("privileged", |t| {
                t["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true)
            }),
            ("cap SYS_ADMIN", |t| {
                t["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] =
                    json!(["SYS_ADMIN"])
            }),
            ("cap CHOWN (baseline ok, restricted not)", |t| {
                t["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] =
                    json!(["CHOWN"])
            }),
            ("no drop ALL", |t| {
                t["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"] =
                    json!(["NET_RAW"])
            }),
            ("hostPath", |t| {
                t["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "host", "hostPath": {"path": "/"}}))
            }),
            ("nfs volume", |t| {
                t["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "nfs", "nfs": {"server": "x", "path": "/"}}))
            }),
            ("hostPort", |t| {
                t["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 80}])
            }),
            ("AppArmor annotation", |t| {
                t["metadata"]["annotations"] = json!({
                    "container.apparmor.security.beta.kubernetes.io/worker": "unconfined"
                })
            }),
            ("AppArmor field", |t| {
                t["spec"]["securityContext"]["appArmorProfile"] = json!({"type": "Unconfined"})
            }),
            ("SELinux type", |t| {
                t["spec"]["securityContext"]["seLinuxOptions"] = json!({"type": "spc_t"})
            }),
            ("SELinux user", |t| {
                t["spec"]["containers"][0]["securityContext"]["seLinuxOptions"] =
                    json!({"user": "system_u"})
            }),
            ("procMount", |t| {
                t["spec"]["containers"][0]["securityContext"]["procMount"] = json!("Unmasked")
            }),
            ("seccomp Unconfined", |t| {
                t["spec"]["containers"][0]["securityContext"]["seccompProfile"] =
                    json!({"type": "Unconfined"})
            }),
            ("seccomp unset everywhere", |t| {
                t["spec"]["securityContext"]["seccompProfile"] = Value::Null;
                t["spec"]["containers"][0]["securityContext"]["seccompProfile"] = Value::Null;
            }),
            ("unsafe sysctl", |t| {
                t["spec"]["securityContext"]["sysctls"] =
                    json!([{"name": "kernel.msgmax", "value": "1"}])
            }),
            ("allowPrivilegeEscalation true", |t| {
                t["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
                    json!(true)
            }),
            ("allowPrivilegeEscalation unset", |t| {
                t["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
                    Value::Null
            }),
            ("runAsNonRoot false in container", |t| {
                t["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = json!(false)
            }),
            ("runAsNonRoot unset everywhere", |t| {
                t["spec"]["securityContext"]["runAsNonRoot"] = Value::Null;
                t["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = Value::Null;
            }),
            ("runAsUser 0", |t| {
                t["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0)
            }),
            ("pod runAsUser 0", |t| {
                t["spec"]["securityContext"]["runAsUser"] = json!(0)
            }),
            ("privileged init container", |t| {
                t["spec"]["initContainers"] = json!([{
                    "name": "init", "image": "x",
                    "securityContext": {"privileged": true}
                }])
            }),
        ];
        for (what, mutate) in mutations {
            let mut template = worker_template();
            mutate(&mut template);
            assert!(
                !restricted_violations(&template).is_empty(),
                "{what} must violate restricted"
            );
        }
    }

    #[test]
    fn net_bind_service_alone_may_be_added() {
        let mut template = worker_template();
        template["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] =
            json!(["NET_BIND_SERVICE"]);
        assert_eq!(restricted_violations(&template), Vec::<String>::new());
    }
}
