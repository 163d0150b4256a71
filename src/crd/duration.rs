//! Go-style durations (`30m`, `1h30m`, `2160h`) as the API spells them.

use std::time::Duration;

/// A duration string that does not follow [`super::DURATION_PATTERN`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {value:?}: use a number followed by h, m, s or ms, as in 1h30m")]
pub struct InvalidDuration {
    /// The rejected text.
    pub value: String,
}

/// Parses `1h30m`-style durations. Refuses empty strings, signs, fractions and unknown units, so
/// that what the API server accepted by pattern is exactly what the operator understands.
pub fn parse(value: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration {
        value: value.to_owned(),
    };
    if value.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 6 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(invalid());
        };
        rest = &rest[len..];
        let part = unit.checked_mul(u32::try_from(amount).map_err(|_| invalid())?);
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_style_durations() {
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2160h"), Ok(Duration::from_secs(2160 * 3600)));
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        for bad in [
            "", "h", "1", "1d", "-1h", "1.5h", "1h ", " 1h", "1H", "9999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn agrees_with_the_schema_pattern() {
        let pattern = regex::Regex::new(super::super::DURATION_PATTERN).unwrap();
        for sample in ["30m", "1h30m", "2160h", "45s", "100ms", "1h1m1s"] {
            assert!(pattern.is_match(sample));
            assert!(parse(sample).is_ok());
        }
        for sample in ["1d", "1.5h", "", "h1"] {
            assert!(!pattern.is_match(sample));
            assert!(parse(sample).is_err());
        }
    }
}
