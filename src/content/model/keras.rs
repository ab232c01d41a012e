//! Keras: `Lambda` layers in a model config (the `config.json` of a `.keras` archive, the
//! `model_config` attribute of a `.h5` file, the JSON metadata of a SavedModel's
//! `keras_metadata.pb`), which carry Python code.

/// Length of the `"Lambda"` token that [`keras_lambda_offsets`] reports.
pub const LAMBDA_TOKEN_LEN: usize = 8;

/// Offsets of the `"Lambda"` class names in a Keras `config.json` (a `"class_name"` key shortly
/// before each); empty unless `member` names a `config.json`.
pub fn keras_lambda_offsets(data: &[u8], member: Option<&str>) -> Vec<usize> {
    let is_config = member.is_some_and(|m| m.rsplit(['!', '/']).next() == Some("config.json"));
    if !is_config {
        return Vec::new();
    }
    lambda_class_offsets(data)
}

/// Offsets of the `"Lambda"` class names in Keras JSON (a `"class_name"` key shortly before
/// each), wherever the JSON came from (a `config.json`, an `.h5` attribute, a
/// `keras_metadata.pb` node).
pub fn lambda_class_offsets(data: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(data, b"\"Lambda\"")
        .filter(|&at| {
            let before = &data[at.saturating_sub(48)..at];
            memchr::memmem::find(before, b"\"class_name\"").is_some()
        })
        .collect()
}
