//! The value forms every section shares: durations (`"10s"` or seconds) and byte sizes (`"256MiB"` or bytes).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A duration written as `"10s"`, `"5m"`, `"1h 30m"` (humantime) or as whole seconds.
#[derive(Clone, Copy)]
pub(super) struct HumanDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"10s\", \"5m\" or \"1h\", or whole seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(|s| HumanDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `"10s"`, `"5m"`, ... with an error message that shows the accepted forms.
pub(super) fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|err| format!("bad duration {v:?} ({err}); use e.g. \"10s\", \"5m\", \"1h\""))
}

/// A byte size written as `"256MiB"`, `"8 MB"` or a plain number of bytes.
#[derive(Clone, Copy)]
pub(super) struct ByteCount(pub(super) u64);

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"256MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ByteCount)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse::<bytesize::ByteSize>()
                    .map(|b| ByteCount(b.as_u64()))
                    .map_err(|err| E::custom(format!("bad size {v:?} ({err}); use e.g. \"256MiB\"")))
            }
        }
        d.deserialize_any(V)
    }
}
