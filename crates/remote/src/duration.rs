//! Durations as Go writes them (`time.ParseDuration`): containerd's
//! `hosts.toml` uses them, and so do hoist's config files and flags, so one
//! parser serves them all.

use std::time::Duration;

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?} (expected e.g. \"250ms\", \"30s\", \"5m\", \"1h30m\", \"2d\")")]
pub struct InvalidDuration {
    /// The text as given.
    pub text: String,
}

/// Parses one or more `<number><unit>` (`"1h30m"`, `"1.5s"`), with Go's
/// units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h` and also `d` for days; a bare
/// number is seconds (`"90"`, `"0"`).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration {
        text: text.to_string(),
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = rest.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_end..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_days_and_bare_seconds() {
        let ok = |text| parse_duration(text).unwrap();
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("2d"), Duration::from_secs(172_800));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok(" 90 "), Duration::from_secs(90));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        for bad in ["", " ", "m", "5x", "h", "-1s", "1.2.3s", "s5", "1e3s"] {
            let error = parse_duration(bad).unwrap_err();
            assert_eq!(error.text, bad);
            assert!(error.to_string().contains("invalid duration"), "{error}");
        }
    }
}
