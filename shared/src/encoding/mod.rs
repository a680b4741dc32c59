//! Byte and text encodings of the wire contract: the three base64 forms and Python-exact
//! canonical JSON.

pub mod b64;
pub mod canonical_json;
