//! Environment access behind a trait, so tests pass a map instead of mutating the process
//! environment (which is shared by every test thread).

use std::collections::HashMap;

/// A source of environment variables.
pub trait Env {
    /// The raw value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;

    /// The value of `name`, or the trimmed contents of the file named by `name_FILE`.
    ///
    /// The `_FILE` form lets orchestrators (Docker/ECS secrets, systemd credentials) hand over
    /// secrets without putting them in the environment. A set but unreadable file is an error,
    /// never a silent fallback.
    fn lookup(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(v) = self.var(name) {
            return Ok(Some(v));
        }
        let file_var = format!("{name}_FILE");
        match self.var(&file_var) {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(&path)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| format!("{file_var}: cannot read {path}: {e}")),
        }
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed map of variables, for tests and for callers that build config programmatically.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// Builds a map from `(name, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
