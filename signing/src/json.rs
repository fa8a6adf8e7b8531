//! Strict JSON reading shared by manifests and trust roots.

use crate::error::{Error, Result, malformed};
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use core::fmt;
use core::marker::PhantomData;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Largest manifest or trust root read (S10).
pub const MAX_DOCUMENT: usize = 64 * 1024;

/// Parses a capped JSON document after checking that each field in `allowed` (if present) has
/// one of the allowed values (S23), so that a newer format reads as unsupported, not malformed.
pub(crate) fn parse_document<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    allowed: &[(&'static str, &[&str])],
) -> Result<T> {
    if bytes.len() > MAX_DOCUMENT {
        return Err(Error::TooLarge {
            what,
            limit: MAX_DOCUMENT,
        });
    }
    let doc: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| malformed(what, e))?;
    for (field, values) in allowed {
        let value = match doc.get(*field) {
            None => continue,
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        if !values.contains(&value.as_str()) {
            return Err(Error::Unsupported { what: field, value });
        }
    }
    serde_json::from_slice(bytes).map_err(|e| malformed(what, e))
}

/// Deserializes a JSON object into a map, refusing duplicate keys (which serde would otherwise
/// resolve silently, last one wins).
pub(crate) fn unique_map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    struct UniqueMap<K, V>(PhantomData<(K, V)>);
    impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Visitor<'de> for UniqueMap<K, V> {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object without duplicate keys")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some((key, value)) = access.next_entry()? {
                if map.insert(key, value).is_some() {
                    return Err(de::Error::custom("duplicate key"));
                }
            }
            Ok(map)
        }
    }
    deserializer.deserialize_map(UniqueMap(PhantomData))
}
