//! Sizes as people write them: `1048576`, `64MiB`, `512 KiB`, `1MB`, `4k`.
//! Binary units (`KiB`, `MiB`, `GiB`, and `k`/`K`, `m`/`M`, `g`/`G` as
//! Redis reads them) are powers of 1024; `KB`, `MB`, `GB` are powers of
//! 1000. Used by the config file (a number or a string) and by flags.

use serde::{Deserialize, Deserializer};

/// Parses a size; the error says what is accepted.
pub fn parse(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1048576, 64MiB, 512KiB)"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "KiB" | "k" | "K" | "kb" => 1 << 10,
        "MiB" | "m" | "M" | "mb" => 1 << 20,
        "GiB" | "g" | "G" | "gb" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `deserialize_with` for a size key: a number of bytes or a string with a unit.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(usize),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse("1048576"), Ok(1_048_576));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("512 KiB"), Ok(512 << 10));
        assert_eq!(parse("32mb"), Ok(32 << 20), "Redis's spelling");
        assert_eq!(parse("1MB"), Ok(1_000_000));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert!(parse("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse("MiB").is_err());
        assert!(parse("99999999999GiB").is_err());
    }
}
