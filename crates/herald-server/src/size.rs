//! Sizes as people write them: `1048576`, `64MiB`, `512 KiB`, `32mb`.
//! Units follow Redis's config (case does not matter): `k`, `m`, `g` are
//! powers of 1000, `kb`, `mb`, `gb` powers of 1024; and the IEC `KiB`,
//! `MiB`, `GiB` are powers of 1024. Used by the config file (a number or a
//! string) and by flags.

use serde::{Deserialize, Deserializer};

/// Parses a size; the error says what is accepted.
pub fn parse(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{text:?}: a whole number of bytes or units (1536KiB, not 1.5MiB)"
        ));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1048576, 64MiB, 512KiB)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {:?} (KiB, MiB, GiB; or Redis's k, kb, m, mb, g, gb)",
                unit.trim()
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
        assert_eq!(parse("32mb"), Ok(32 << 20), "as Redis reads it");
        assert_eq!(parse("1MB"), Ok(1 << 20), "case does not matter");
        assert_eq!(parse("4k"), Ok(4_000), "Redis: k is 1000");
        assert_eq!(parse("2mib"), Ok(2 << 20));
        assert!(parse("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse("1.5MiB").unwrap_err().contains("whole number"));
        assert!(parse("MiB").is_err());
        assert!(parse("99999999999GiB").is_err());
    }
}
