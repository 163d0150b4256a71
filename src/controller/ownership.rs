//! One owner per foundry: which installation of the operator reconciles a foundry. Pure, so the
//! VideoFoundry and RenderJob controllers decide the same way without a request.

use crate::config::OperatorConfig;
use crate::crd::VideoFoundry;

/// Whether the installation configured by `config` reconciles `foundry`.
///
/// - A foundry that names a class (`spec.className`) belongs to the installation of that class.
/// - A foundry without one belongs to the default-class installation, unless another
///   installation already recorded itself in `status.claimedBy`: two installations both
///   configured as default then never take turns (the first one to write keeps it).
pub fn claims(foundry: &VideoFoundry, config: &OperatorConfig) -> bool {
    let mine = config.installation.class_name.as_str();
    match foundry.spec.class_name.as_deref() {
        Some(class) => class == mine,
        None => {
            config.installation.default_class
                && foundry
                    .status
                    .as_ref()
                    .and_then(|status| status.claimed_by.as_deref())
                    .is_none_or(|owner| owner == mine)
        }
    }
}

/// Why `foundry` is left alone, for the log (nothing is written to a foundry this installation
/// does not claim, so two installations never fight over it).
pub fn not_claimed_reason(foundry: &VideoFoundry, config: &OperatorConfig) -> String {
    let mine = &config.installation.class_name;
    match (
        foundry.spec.class_name.as_deref(),
        foundry
            .status
            .as_ref()
            .and_then(|s| s.claimed_by.as_deref()),
    ) {
        (Some(class), _) => {
            format!("spec.className is {class:?}, this installation is {mine:?}")
        }
        (None, _) if !config.installation.default_class => {
            format!("no spec.className and installation {mine:?} is not the default class")
        }
        (None, Some(owner)) => {
            format!("no spec.className and status.claimedBy names installation {owner:?}")
        }
        (None, None) => "claimed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::video_foundry::VideoFoundryStatus;

    fn foundry(class: Option<&str>, claimed_by: Option<&str>) -> VideoFoundry {
        let mut foundry = VideoFoundry::new(
            "studio",
            crate::crd::test_support::example_spec("videofoundry-developer.yaml"),
        );
        foundry.spec.class_name = class.map(str::to_owned);
        foundry.status = claimed_by.map(|owner| VideoFoundryStatus {
            claimed_by: Some(owner.to_owned()),
            ..VideoFoundryStatus::default()
        });
        foundry
    }

    fn installation(class: &str, default_class: bool) -> OperatorConfig {
        let mut config = OperatorConfig::default();
        config.installation.class_name = class.to_owned();
        config.installation.default_class = default_class;
        config
    }

    #[test]
    fn a_named_class_belongs_to_that_installation_only() {
        let a = installation("team-a", true);
        let b = installation("team-b", false);
        let named_b = foundry(Some("team-b"), Some("team-a"));
        assert!(!claims(&named_b, &a));
        assert!(
            claims(&named_b, &b),
            "moving a foundry to class b hands it over"
        );
        assert!(not_claimed_reason(&named_b, &a).contains("\"team-b\""));
    }

    #[test]
    fn an_unnamed_foundry_goes_to_the_default_class_and_stays_with_its_first_claimant() {
        let a = installation("team-a", true);
        let b = installation("team-b", true);
        let c = installation("team-c", false);
        let fresh = foundry(None, None);
        assert!(claims(&fresh, &a) && claims(&fresh, &b));
        assert!(!claims(&fresh, &c));
        let claimed = foundry(None, Some("team-a"));
        assert!(claims(&claimed, &a));
        assert!(
            !claims(&claimed, &b),
            "a second default installation must not take over"
        );
        assert!(not_claimed_reason(&claimed, &b).contains("claimedBy"));
    }
}
