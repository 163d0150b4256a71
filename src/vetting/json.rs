//! A strict JSON reader: the tree it returns is the one ComfyUI would see, or an error.
//!
//! serde_json keeps the last of two equal keys, so `{"a":1,"a":2}` would be vetted as one thing
//! and run as another. Here a duplicate key is an error, and so is any input beyond the limits
//! (nesting depth, string length, number of values), checked while parsing so that hostile input
//! never allocates more than a bounded multiple of its size.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Limits on the JSON itself; the byte limit is checked before parsing starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonLimits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects.
    pub max_depth: usize,
    /// Longest accepted string (keys included), in bytes.
    pub max_string_bytes: usize,
    /// Most values (scalars, arrays, objects) in the document.
    pub max_values: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1_572_864,
            max_depth: 32,
            max_string_bytes: 256 * 1024,
            max_values: 400_000,
        }
    }
}

/// A string of the document: borrowed when it has no escapes, so parsing copies little.
pub type Str<'a> = Cow<'a, str>;

/// A JSON value whose objects keep their keys in document order and hold no duplicates.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, kept in the form it was written in.
    Number(Number),
    /// A string.
    String(Str<'a>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object, in document order, keys unique.
    Object(Vec<(Str<'a>, Json<'a>)>),
}

/// A JSON number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    /// Anything with a fraction or an exponent.
    Float(f64),
}

impl<'a> Json<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[(Str<'a>, Json<'a>)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The value as a non-negative integer, if it is one.
    pub fn as_index(&self) -> Option<u64> {
        match self {
            Json::Number(Number::Unsigned(n)) => Some(*n),
            _ => None,
        }
    }

    /// A short name of the value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Why a document was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Larger than `max_bytes`.
    #[error("the workflow is {size} bytes; at most {limit} are accepted")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than `max_depth`.
    #[error("the workflow nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A string longer than `max_string_bytes`.
    #[error("a string is longer than {limit} bytes")]
    StringTooLong {
        /// The limit.
        limit: usize,
    },
    /// More than `max_values` values.
    #[error("the workflow holds more than {limit} JSON values")]
    TooManyValues {
        /// The limit.
        limit: usize,
    },
    /// An object names the same key twice.
    #[error(
        "the key {key:?} appears twice in one object; ComfyUI would silently keep only the last"
    )]
    DuplicateKey {
        /// The key (truncated for display).
        key: String,
    },
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
}

impl JsonError {
    /// True for the errors that are limits rather than malformed input.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            JsonError::TooLarge { .. }
                | JsonError::TooDeep { .. }
                | JsonError::StringTooLong { .. }
                | JsonError::TooManyValues { .. }
        )
    }
}

/// Parses `bytes` strictly under `limits`.
pub fn parse<'a>(bytes: &'a [u8], limits: &JsonLimits) -> Result<Json<'a>, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let mut state = State {
        limits: *limits,
        values: 0,
        failure: None,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = ValueSeed {
        state: &mut state,
        depth: 0,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (result, state.failure) {
        (_, Some(failure)) => Err(failure),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(JsonError::Syntax(error.to_string())),
    }
}

struct State {
    limits: JsonLimits,
    values: usize,
    failure: Option<JsonError>,
}

impl State {
    /// Records a failure and returns the serde error that stops the parser.
    fn fail<E: de::Error>(&mut self, failure: JsonError) -> E {
        let message = failure.to_string();
        self.failure.get_or_insert(failure);
        E::custom(message)
    }

    fn count_value<E: de::Error>(&mut self) -> Result<(), E> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(self.fail(JsonError::TooManyValues {
                limit: self.limits.max_values,
            }));
        }
        Ok(())
    }

    fn check_string<E: de::Error>(&mut self, s: &str) -> Result<(), E> {
        if s.len() > self.limits.max_string_bytes {
            return Err(self.fail(JsonError::StringTooLong {
                limit: self.limits.max_string_bytes,
            }));
        }
        Ok(())
    }

    fn enter<E: de::Error>(&mut self, depth: usize) -> Result<usize, E> {
        let depth = depth + 1;
        if depth > self.limits.max_depth {
            return Err(self.fail(JsonError::TooDeep {
                limit: self.limits.max_depth,
            }));
        }
        Ok(depth)
    }
}

/// Objects up to this size are checked for duplicate keys by a linear scan.
const SMALL_OBJECT: usize = 16;

fn duplicate(key: &str) -> JsonError {
    JsonError::DuplicateKey {
        key: key.chars().take(64).collect(),
    }
}

struct ValueSeed<'s> {
    state: &'s mut State,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Json<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        Ok(Json::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        Ok(Json::Number(Number::Unsigned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        Ok(Json::Number(if v >= 0 {
            Number::Unsigned(v.unsigned_abs())
        } else {
            Number::Signed(v)
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        Ok(Json::Number(Number::Float(v)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        self.state.check_string(v)?;
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        self.state.check_string(v)?;
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json<'de>, E> {
        self.state.count_value()?;
        self.state.check_string(&v)?;
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        self.state.count_value()?;
        let depth = self.state.enter(self.depth)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            state: &mut *self.state,
            depth,
        })? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        self.state.count_value()?;
        let depth = self.state.enter(self.depth)?;
        let mut members: Vec<(Str<'de>, Json<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            self.state.check_string(&key)?;
            // Small objects (almost all of them) are checked as they grow; large ones once,
            // sorted, below. Either way no key is copied.
            if members.len() < SMALL_OBJECT && members.iter().any(|(k, _)| *k == key) {
                return Err(self.state.fail(duplicate(&key)));
            }
            let value = map.next_value_seed(ValueSeed {
                state: &mut *self.state,
                depth,
            })?;
            members.push((key, value));
        }
        if members.len() > SMALL_OBJECT {
            let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                let failure = duplicate(pair[0]);
                return Err(self.state.fail(failure));
            }
        }
        Ok(Json::Object(members))
    }
}

/// Reads an object key, borrowing it when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Str<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Str<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(text: &str) -> Result<Json<'_>, JsonError> {
        parse(text.as_bytes(), &JsonLimits::default())
    }

    #[test]
    fn duplicate_keys_are_refused_even_when_escaped_differently() {
        assert!(matches!(
            strict(r#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey { .. })
        ));
        assert!(matches!(
            strict(r#"{"x":{"ckpt_name":"a","ckpt\u005fname":"b"}}"#),
            Err(JsonError::DuplicateKey { .. })
        ));
        assert!(strict(r#"{"a":1,"A":2}"#).is_ok());
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(strict(&format!("{{{}}}", many.join(","))).is_ok());
        assert!(matches!(
            strict(&format!("{{{},\"k3\":0}}", many.join(","))),
            Err(JsonError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn limits_are_enforced_with_their_reason() {
        let limits = JsonLimits {
            max_bytes: 100,
            max_depth: 3,
            max_string_bytes: 4,
            max_values: 5,
        };
        assert!(matches!(
            parse(&[b' '; 101], &limits),
            Err(JsonError::TooLarge { .. })
        ));
        assert!(matches!(
            parse(b"[[[[1]]]]", &limits),
            Err(JsonError::TooDeep { .. })
        ));
        assert!(matches!(
            parse(br#"["abcde"]"#, &limits),
            Err(JsonError::StringTooLong { .. })
        ));
        assert!(matches!(
            parse(br#"{"abcde":1}"#, &limits),
            Err(JsonError::StringTooLong { .. })
        ));
        assert!(matches!(
            parse(b"[1,2,3,4,5]", &limits),
            Err(JsonError::TooManyValues { .. })
        ));
    }

    #[test]
    fn deep_nesting_beyond_serde_limits_is_a_limit_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(strict(&deep), Err(JsonError::TooDeep { .. })));
    }

    #[test]
    fn trailing_garbage_and_bad_utf8_are_syntax_errors() {
        assert!(matches!(strict("{} {}"), Err(JsonError::Syntax(_))));
        assert!(matches!(
            parse(b"{\"a\":\"\xff\"}", &JsonLimits::default()),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn order_and_numbers_are_kept() {
        let value = strict(r#"{"b":-1,"a":[2,1.5]}"#).unwrap();
        let members = value.as_object().unwrap();
        assert_eq!(members[0].0, "b");
        assert_eq!(members[0].1, Json::Number(Number::Signed(-1)));
        assert_eq!(
            members[1].1,
            Json::Array(vec![
                Json::Number(Number::Unsigned(2)),
                Json::Number(Number::Float(1.5))
            ])
        );
    }
}
