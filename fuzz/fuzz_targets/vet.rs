//! Fuzzes parsing and vetting: any bytes, as a workflow, against a fixed policy. The vetter
//! must never panic, and must give the same report twice.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, vet};

static POLICY: LazyLock<Option<Policy>> = LazyLock::new(|| {
    let spec: ApprovedNodeListSpec = serde_json::from_str(
        r#"{"nodes": [{"classType": "VHS_VideoCombine", "repository": "github.com/Kosinkadink/ComfyUI-VideoHelperSuite", "commit": "0123456789abcdef0123456789abcdef01234567"},
                      {"classType": "VHS_LoadVideoPath", "repository": "github.com/Kosinkadink/ComfyUI-VideoHelperSuite"}],
            "repositories": [{"url": "github.com/your-org/custom-nodes"}],
            "models": [{"identifier": "sd_xl_base_1.0.safetensors"}, {"pattern": "loras/**"}, {"identifier": "EasyNegative.safetensors"}, {"pattern": "https://huggingface.co/your-org/*"}],
            "blockedNodes": ["SaveImage"]}"#,
    )
    .ok()?;
    Policy::new(&[("fuzz".into(), spec)], CoreNodes::builtin(), Mode::Strict, Egress::Blocked).ok()
});

fuzz_target!(|data: &[u8]| {
    let Some(policy) = POLICY.as_ref() else {
        return;
    };
    let first = vet(data, policy);
    let second = vet(data, policy);
    assert_eq!(first, second, "vetting is not deterministic");
    if first.violations.is_empty() {
        assert!(first.is_allowed());
    }
});
