#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every workflow of the shared corpus (`../shared/corpus/`) is classified, and its verdict and
//! rules under the documented test policy match `tests/fixtures/vetting/corpus-expectations.tsv`.
//!
//! The test policy (docs/vetting.md): strict mode, egress blocked, ComfyUI core nodes included,
//! no custom nodes, every model name inside the model folders approved (`pattern: "**"`).
//! So a core-only workflow with local models must pass, and anything using a custom node, a URL,
//! an absolute path or an API node must not.
//!
//! Regenerate the expectation file after a deliberate change with
//! `VF_UPDATE_EXPECTATIONS=1 cargo test --test corpus` and review the diff.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, vet};

const EXPECTATIONS: &str = "tests/fixtures/vetting/corpus-expectations.tsv";

fn test_policy() -> Policy {
    let spec: ApprovedNodeListSpec = serde_yaml::from_str(
        r#"
reviewedBy: corpus-test
models:
  - pattern: "**"
"#,
    )
    .unwrap();
    Policy::new(
        &[("corpus-test".into(), spec)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    )
    .unwrap()
}

fn classify_corpus() -> Option<String> {
    let corpus = common::corpus_dir()?;
    let policy = test_policy();
    let mut files = Vec::new();
    for format in ["api", "ui"] {
        for entry in std::fs::read_dir(corpus.join(format)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(format!(
                    "{format}/{}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    files.sort();
    let mut out = String::from("# file\tformat\tverdict\tnodes\trules\n");
    for file in files {
        let bytes = std::fs::read(corpus.join(&file)).unwrap();
        let report = vet(&bytes, &policy);
        let again = vet(&bytes, &policy);
        assert_eq!(report, again, "{file}: vetting is not deterministic");
        let rules: BTreeSet<&str> = report.violations.iter().map(|v| v.rule.as_str()).collect();
        let format = report
            .format
            .map_or("none".to_owned(), |f| format!("{f:?}").to_lowercase());
        let rules = if rules.is_empty() {
            "-".to_owned()
        } else {
            rules.into_iter().collect::<Vec<_>>().join(",")
        };
        writeln!(
            out,
            "{file}\t{format}\t{:?}\t{}\t{rules}",
            report.verdict, report.checked_nodes
        )
        .unwrap();
    }
    Some(out)
}

#[test]
fn corpus_verdicts_match_the_expectations() {
    let Some(actual) = classify_corpus() else {
        eprintln!("skipping: ../shared/corpus is not present");
        return;
    };
    if std::env::var_os("VF_UPDATE_EXPECTATIONS").is_some() {
        std::fs::write(EXPECTATIONS, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(EXPECTATIONS).unwrap();
    assert_eq!(
        actual, expected,
        "corpus verdicts changed; review and regenerate with VF_UPDATE_EXPECTATIONS=1"
    );
}
