//! Byte and text encodings of the wire contract: the three base64 forms and Python-exact
//! canonical JSON, and the Python reference's `json.dumps` / `isoformat` text forms.

pub mod b64;
pub mod canonical_json;
pub mod python;
