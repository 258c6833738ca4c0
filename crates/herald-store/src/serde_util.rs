//! Serde helpers for JetStream's JSON conventions: `null` means "absent",
//! durations are integer nanoseconds, zero values are omitted.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Deserializes `null` as the type's default (Go clients and async-nats send
/// `null` for unset optional fields).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A `Duration` as integer nanoseconds (Go's `time.Duration`); negative or
/// null reads as zero.
pub(crate) mod nanos {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let n = Option::<i64>::deserialize(d)?.unwrap_or(0);
        Ok(Duration::from_nanos(u64::try_from(n).unwrap_or(0)))
    }
}

/// A list of `Duration`s as integer nanoseconds.
pub(crate) mod nanos_list {
    use serde::ser::SerializeSeq;

    use super::*;

    pub(crate) fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for d in list {
            seq.serialize_element(&u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let list = Option::<Vec<i64>>::deserialize(d)?.unwrap_or_default();
        Ok(list
            .into_iter()
            .map(|n| Duration::from_nanos(u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

pub(crate) fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

pub(crate) fn is_zero_duration(d: &Duration) -> bool {
    d.is_zero()
}
