//! Pure validation of an ApprovedNodeList (every entry well-formed, conflicts named), shared by
//! the ApprovedNodeList controller, the vetting policy and the import CLI.

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::approved_node_list::{ApprovedNodeListCounts, ApprovedNodeListSpec};
use crate::vetting::CoreNodes;
use crate::vetting::patterns::{compile_model_glob, normalize_repository};
use crate::vetting::values::climbs;

/// What validation found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListReport {
    /// Problems that make the list unusable, one line each, in spec order.
    pub problems: Vec<String>,
    /// Node types that are both allowed and blocked (blocking wins), sorted.
    pub overridden_by_block: Vec<String>,
    /// Entry counts.
    pub counts: ApprovedNodeListCounts,
}

impl ListReport {
    /// True when the list can be used for vetting.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every entry: commit pins are 40 lowercase hex digits, checksums 64, model patterns
/// compile, each model names exactly one of `pattern` and `identifier`, repositories are
/// `host/owner/repo`, timestamps are RFC 3339, and a node type is not approved twice with
/// different pins, a custom node (not a ComfyUI core node) names its repository, and no model
/// entry climbs out with `..`. Entries both allowed and blocked are reported, not refused:
/// blocking wins.
pub fn validate(spec: &ApprovedNodeListSpec) -> ListReport {
    let core = CoreNodes::builtin();
    let mut problems = Vec::new();
    check_timestamp(&mut problems, "lastUpdated", spec.last_updated.as_deref());

    let mut pins: BTreeMap<&str, Pin<'_>> = BTreeMap::new();
    for (index, node) in spec.nodes.iter().enumerate() {
        let at = format!("nodes[{index}] ({})", node.class_type);
        check_name(&mut problems, &at, "classType", &node.class_type);
        match &node.repository {
            Some(repository) => check_repository(&mut problems, &at, repository),
            None if !core.is_core(&node.class_type) => problems.push(format!(
                "{at}: {:?} is not a ComfyUI core node ({}), so it must name its repository (host/owner/repo)",
                node.class_type, core.comfyui_version
            )),
            None => {}
        }
        check_commit(&mut problems, &at, node.commit.as_deref());
        check_timestamp(
            &mut problems,
            &format!("{at}.approvedAt"),
            node.approved_at.as_deref(),
        );
        let pin = (&node.repository, &node.commit, &node.version);
        if let Some(previous) = pins.insert(node.class_type.as_str(), pin)
            && previous != pin
        {
            problems.push(format!(
                "{at}: classType {:?} is approved twice with different repository, commit or version pins",
                node.class_type
            ));
        }
    }
    for (index, repository) in spec.repositories.iter().enumerate() {
        let at = format!("repositories[{index}] ({})", repository.url);
        check_repository(&mut problems, &at, &repository.url);
        check_commit(&mut problems, &at, repository.commit.as_deref());
        check_timestamp(
            &mut problems,
            &format!("{at}.approvedAt"),
            repository.approved_at.as_deref(),
        );
    }
    for (index, model) in spec.models.iter().enumerate() {
        let at = format!("models[{index}]");
        match (&model.pattern, &model.identifier) {
            (Some(pattern), None) => {
                if let Err(error) = compile_model_glob(pattern) {
                    problems.push(format!(
                        "{at}: pattern {pattern:?} does not compile: {error}"
                    ));
                }
                check_model_reference(&mut problems, &at, "pattern", pattern);
            }
            (None, Some(identifier)) => {
                check_name(&mut problems, &at, "identifier", identifier);
                check_model_reference(&mut problems, &at, "identifier", identifier);
            }
            _ => problems.push(format!("{at}: set exactly one of pattern and identifier")),
        }
        if let Some(sha256) = &model.sha256
            && !is_lower_hex(sha256, 64)
        {
            problems.push(format!(
                "{at}: sha256 must be 64 lowercase hex digits, got {sha256:?}"
            ));
        }
        check_timestamp(
            &mut problems,
            &format!("{at}.approvedAt"),
            model.approved_at.as_deref(),
        );
    }
    for (index, blocked) in spec.blocked_nodes.iter().enumerate() {
        check_name(
            &mut problems,
            &format!("blockedNodes[{index}]"),
            "node type",
            blocked,
        );
    }

    let blocked: BTreeSet<&str> = spec.blocked_nodes.iter().map(String::as_str).collect();
    let overridden_by_block = spec
        .nodes
        .iter()
        .map(|node| node.class_type.as_str())
        .filter(|class_type| blocked.contains(class_type))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();

    ListReport {
        problems,
        overridden_by_block,
        counts: ApprovedNodeListCounts {
            nodes: count(spec.nodes.len()),
            repositories: count(spec.repositories.len()),
            models: count(spec.models.len()),
            blocked: count(blocked.len()),
        },
    }
}

/// Repository, commit and version pins of one node approval.
type Pin<'a> = (&'a Option<String>, &'a Option<String>, &'a Option<String>);

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn is_lower_hex(value: &str, len: usize) -> bool {
    value.len() == len
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_name(problems: &mut Vec<String>, at: &str, what: &str, value: &str) {
    if value.trim().is_empty() {
        problems.push(format!("{at}: {what} must not be empty"));
    } else if value.chars().any(char::is_control) {
        problems.push(format!("{at}: {what} contains control characters"));
    }
}

fn check_commit(problems: &mut Vec<String>, at: &str, commit: Option<&str>) {
    if let Some(commit) = commit
        && !is_lower_hex(commit, 40)
    {
        problems.push(format!(
            "{at}: commit must be a full 40-digit lowercase hex SHA, got {commit:?}"
        ));
    }
}

fn check_timestamp(problems: &mut Vec<String>, at: &str, value: Option<&str>) {
    if let Some(value) = value
        && value.parse::<jiff::Timestamp>().is_err()
    {
        problems.push(format!("{at}: {value:?} is not an RFC 3339 timestamp"));
    }
}

/// Accepts `host/owner/repo`, optionally with `https://` and `.git`.
fn check_repository(problems: &mut Vec<String>, at: &str, url: &str) {
    if normalize_repository(url).is_none() {
        problems.push(format!(
            "{at}: repository {url:?} must look like host/owner/repo, e.g. github.com/owner/repo"
        ));
    }
}

/// A model entry may not climb out with `..` or hide part of itself behind a NUL.
fn check_model_reference(problems: &mut Vec<String>, at: &str, what: &str, value: &str) {
    if climbs(value) || value.contains('\0') {
        problems.push(format!(
            "{at}: {what} {value:?} climbs out of its folder with `..` or contains NUL"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::approved_node_list::{ModelApproval, NodeApproval, RepositoryApproval};

    fn minimal() -> ApprovedNodeListSpec {
        serde_yaml::from_str(
            r#"
reviewedBy: security-team
lastUpdated: "2025-01-13T00:00:00Z"
nodes:
  - classType: VHS_VideoCombine
    repository: github.com/Kosinkadink/ComfyUI-VideoHelperSuite
    commit: 0123456789abcdef0123456789abcdef01234567
repositories:
  - url: https://github.com/your-org/custom-nodes.git
    allowedRefs: [main]
models:
  - pattern: "huggingface.co/your-org/*"
  - identifier: sd_xl_base_1.0.safetensors
    sha256: 31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b
blockedNodes: [known-vulnerable-node]
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_well_formed_list_is_valid_and_counted() {
        let report = validate(&minimal());
        assert!(report.is_valid(), "{:?}", report.problems);
        assert_eq!(
            report.counts,
            ApprovedNodeListCounts {
                nodes: 1,
                repositories: 1,
                models: 2,
                blocked: 1
            }
        );
        assert!(report.overridden_by_block.is_empty());
    }

    #[test]
    fn malformed_pins_and_patterns_are_named() {
        let mut spec = minimal();
        spec.nodes[0].commit = Some("abc123".into());
        spec.repositories.push(RepositoryApproval {
            url: "not a repo".into(),
            commit: Some("0123456789ABCDEF0123456789ABCDEF01234567".into()),
            ..Default::default()
        });
        spec.models.push(ModelApproval {
            pattern: Some("models/[unclosed".into()),
            ..Default::default()
        });
        spec.models.push(ModelApproval {
            sha256: Some("abc123def456...".into()),
            identifier: Some("x.ckpt".into()),
            ..Default::default()
        });
        spec.models.push(ModelApproval::default());
        spec.last_updated = Some("yesterday".into());
        let report = validate(&spec);
        let text = report.problems.join("\n");
        for expected in [
            "nodes[0] (VHS_VideoCombine): commit must be a full 40-digit",
            "repositories[1] (not a repo): repository \"not a repo\" must look like host/owner/repo",
            "repositories[1] (not a repo): commit must be",
            "models[2]: pattern \"models/[unclosed\" does not compile",
            "models[3]: sha256 must be 64 lowercase hex digits",
            "models[4]: set exactly one of pattern and identifier",
            "lastUpdated: \"yesterday\" is not an RFC 3339 timestamp",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!report.is_valid());
    }

    #[test]
    fn allowed_and_blocked_is_reported_by_name_and_stays_valid() {
        let mut spec = minimal();
        spec.blocked_nodes.push("VHS_VideoCombine".into());
        let report = validate(&spec);
        assert!(report.is_valid());
        assert_eq!(report.overridden_by_block, ["VHS_VideoCombine"]);
    }

    #[test]
    fn conflicting_duplicate_approvals_are_refused() {
        let mut spec = minimal();
        spec.nodes.push(NodeApproval {
            class_type: "VHS_VideoCombine".into(),
            repository: Some("github.com/attacker/fork".into()),
            ..Default::default()
        });
        let report = validate(&spec);
        assert!(
            report.problems.iter().any(|p| p.contains("approved twice")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn custom_nodes_must_name_their_repository_but_core_nodes_need_not() {
        let mut spec = minimal();
        spec.nodes.push(NodeApproval {
            class_type: "KSampler".into(),
            ..Default::default()
        });
        assert!(validate(&spec).is_valid(), "{:?}", validate(&spec).problems);
        spec.nodes.push(NodeApproval {
            class_type: "CustomVideoGenerator".into(),
            ..Default::default()
        });
        let report = validate(&spec);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("CustomVideoGenerator")
                    && p.contains("must name its repository")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn model_entries_that_climb_are_refused() {
        let mut spec = minimal();
        spec.models.push(ModelApproval {
            identifier: Some("../../etc/passwd".into()),
            ..Default::default()
        });
        spec.models.push(ModelApproval {
            pattern: Some("loras/../**".into()),
            ..Default::default()
        });
        let report = validate(&spec);
        assert_eq!(
            report
                .problems
                .iter()
                .filter(|p| p.contains("climbs"))
                .count(),
            2,
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn repository_paths_that_climb_are_refused() {
        let mut spec = minimal();
        spec.repositories[0].url = "github.com/org/../other".into();
        assert!(!validate(&spec).is_valid());
    }
}
