//! The invalidation message on the pub/sub channel: `"<epoch> <json>"`, the epoch prefixed by the script that
//! bumped it. Keys travel whole (path, query and variant headers as bytes), so a receiver finds exactly the
//! page the sender meant.

use std::time::{Duration, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::cache::store::Invalidation;
use crate::cache::store::codec::generated_at_ms;
use crate::cache::{CacheKey, PathPrefix};

/// A message that does not parse (another version, or something else publishing on the channel).
#[derive(Debug, thiserror::Error)]
#[error("malformed invalidation message: {0}")]
pub(super) struct MessageError(&'static str);

#[derive(Serialize, Deserialize)]
struct Message {
    from: u64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Regenerated {
        key: WireKey,
        generated_at_ms: u64,
    },
    Purged {
        key: WireKey,
    },
    Tag {
        tag: String,
        purge: bool,
    },
    Prefix {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        path: String,
        purge: bool,
    },
    Everything,
}

#[derive(Serialize, Deserialize)]
struct WireKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    path_and_query: String,
    variant: Vec<(String, Vec<u8>)>,
}

impl WireKey {
    fn from_key(key: &CacheKey) -> Self {
        Self {
            host: key.host().map(str::to_owned),
            path_and_query: key.path_and_query().to_owned(),
            variant: key
                .variant()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn into_key(self) -> Result<CacheKey, MessageError> {
        let mut variant = Vec::with_capacity(self.variant.len());
        for (name, value) in self.variant {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| MessageError("variant name"))?;
            let value = HeaderValue::from_bytes(&value).map_err(|_| MessageError("variant value"))?;
            variant.push((name, value));
        }
        let (path, query) = match self.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.path_and_query.as_str(), None),
        };
        Ok(CacheKey::on_host(self.host.as_deref(), path, query, variant))
    }
}

/// The JSON part of the message announcing `invalidation` from instance `from` (the script prefixes the epoch).
pub(super) fn encode(from: u64, invalidation: &Invalidation) -> String {
    let op = match invalidation {
        Invalidation::Regenerated { key, generated_at } => Op::Regenerated {
            key: WireKey::from_key(key),
            generated_at_ms: generated_at_ms(*generated_at),
        },
        Invalidation::Purged { key } => Op::Purged {
            key: WireKey::from_key(key),
        },
        Invalidation::Tag { tag, purge } => Op::Tag {
            tag: tag.clone(),
            purge: *purge,
        },
        Invalidation::Prefix { prefix, purge } => Op::Prefix {
            host: prefix.host().map(str::to_owned),
            path: prefix.path().to_owned(),
            purge: *purge,
        },
        Invalidation::Everything => Op::Everything,
    };
    serde_json::to_string(&Message { from, op }).unwrap_or_default()
}

/// Reads a message off the channel: its epoch, its sender, and what to do.
pub(super) fn decode(payload: &[u8]) -> Result<(u64, u64, Invalidation), MessageError> {
    let space = payload
        .iter()
        .position(|b| *b == b' ')
        .ok_or(MessageError("no epoch"))?;
    let epoch = std::str::from_utf8(&payload[..space])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(MessageError("epoch"))?;
    let message: Message = serde_json::from_slice(&payload[space + 1..]).map_err(|_| MessageError("json"))?;
    let invalidation = match message.op {
        Op::Regenerated { key, generated_at_ms } => Invalidation::Regenerated {
            key: key.into_key()?,
            generated_at: UNIX_EPOCH + Duration::from_millis(generated_at_ms),
        },
        Op::Purged { key } => Invalidation::Purged { key: key.into_key()? },
        Op::Tag { tag, purge } => Invalidation::Tag { tag, purge },
        Op::Prefix { host, path, purge } => {
            if !path.starts_with('/') {
                return Err(MessageError("prefix"));
            }
            Invalidation::Prefix {
                prefix: PathPrefix::new(host.as_deref(), &path),
                purge,
            }
        }
        Op::Everything => Invalidation::Everything,
    };
    Ok((epoch, message.from, invalidation))
}

/// `generated_at` as it survives the trip (milliseconds).
#[cfg(test)]
fn truncated(time: std::time::SystemTime) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(generated_at_ms(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::SystemTime;

    #[test]
    fn messages_round_trip_with_their_keys() {
        let key = CacheKey::new(
            "/blog/a",
            Some("page=2"),
            vec![(
                HeaderName::from_static("next-router-state-tree"),
                HeaderValue::from_bytes(b"%5B\xe9%5D").expect("obs-text is a valid value"),
            )],
        );
        let now = SystemTime::now();
        let sent = Invalidation::Regenerated {
            key: key.clone(),
            generated_at: now,
        };
        let payload = format!("42 {}", encode(7, &sent));
        let (epoch, from, got) = decode(payload.as_bytes()).expect("decodes");
        assert_eq!((epoch, from), (42, 7));
        match got {
            Invalidation::Regenerated {
                key: got_key,
                generated_at,
            } => {
                assert_eq!(got_key, key, "the exact key, variant bytes included");
                assert_eq!(generated_at, truncated(now));
            }
            other => panic!("unexpected {other:?}"),
        }
        let tag = format!(
            "3 {}",
            encode(
                1,
                &Invalidation::Tag {
                    tag: "blog".into(),
                    purge: true
                }
            )
        );
        assert!(matches!(
            decode(tag.as_bytes()),
            Ok((3, 1, Invalidation::Tag { ref tag, purge: true })) if tag == "blog"
        ));
        let shop = PathPrefix::new(Some("shop.example.com"), "/blog");
        let sent = Invalidation::Prefix {
            prefix: shop.clone(),
            purge: false,
        };
        let prefix = format!("4 {}", encode(2, &sent));
        assert!(matches!(
            decode(prefix.as_bytes()),
            Ok((4, 2, Invalidation::Prefix { ref prefix, purge: false })) if *prefix == shop
        ));
    }

    #[test]
    fn foreign_payloads_are_errors() {
        for payload in [
            &b""[..],
            b"hello",
            b"x {}",
            b"1 {\"op\":\"nope\",\"from\":1}",
            b"1 not json",
            b"1 {\"op\":\"prefix\",\"from\":1,\"path\":\"blog\",\"purge\":false}",
        ] {
            assert!(decode(payload).is_err(), "{payload:?}");
        }
    }
}
