//! TEMPORARY stand-in until the PHP codec lands: JSON only.

use std::fmt;
use std::str::FromStr;

/// A session's data: its `$_SESSION`, as a JSON object.
pub type Data = serde_json::Map<String, serde_json::Value>;

/// How a session's `data` attribute is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// A JSON object.
    Json,
    /// PHP's default session serializer.
    Php,
    /// PHP's `php_serialize` session serializer.
    PhpSerialize,
}

impl FromStr for DataFormat {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(DataFormat::Json),
            "php" => Ok(DataFormat::Php),
            "php_serialize" => Ok(DataFormat::PhpSerialize),
            _ => Err("must be json, php or php_serialize".into()),
        }
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataFormat::Json => "json",
            DataFormat::Php => "php",
            DataFormat::PhpSerialize => "php_serialize",
        })
    }
}

impl DataFormat {
    /// The format of stored bytes.
    pub fn detect(stored: &[u8]) -> Option<DataFormat> {
        serde_json::from_slice::<Data>(stored).ok().map(|_| DataFormat::Json)
    }
}

/// Why data could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// Not in the format.
    #[error("{0}")]
    Invalid(String),
}

/// Decodes stored bytes.
pub fn decode(format: DataFormat, stored: &[u8]) -> Result<Data, CodecError> {
    if stored.is_empty() {
        return Ok(Data::new());
    }
    match format {
        DataFormat::Json => serde_json::from_slice(stored).map_err(|_| CodecError::Invalid("not a JSON object".into())),
        _ => Err(CodecError::Invalid("PHP formats are not supported yet".into())),
    }
}

/// Encodes data.
pub fn encode(format: DataFormat, data: &Data) -> Result<Vec<u8>, CodecError> {
    match format {
        DataFormat::Json => Ok(serde_json::to_vec(data).expect("a JSON map serializes")),
        _ => Err(CodecError::Invalid("PHP formats are not supported yet".into())),
    }
}
