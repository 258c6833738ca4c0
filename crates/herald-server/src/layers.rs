//! Where the configuration comes from, and which source wins. One rule:
//!
//! **flag > `HERALD_*` variable > config file > default**
//!
//! - A flag's own variable (`--max-payload` ↔ `HERALD_MAX_PAYLOAD`, listed
//!   in `--help`) counts as the flag.
//! - Every key of the file has a variable: `HERALD_` and its path in upper
//!   case, tables joined by `__` (`limits.max_payload` ↔
//!   `HERALD_LIMITS__MAX_PAYLOAD`, `tls.cert` ↔ `HERALD_TLS__CERT`); a
//!   top-level key needs none (`HERALD_DATA_DIR`). Values are read as TOML
//!   values where they parse as one (`20`, `[...]`), else as text.
//! - `RUST_LOG` stands for `log` below `HERALD_LOG`.
//!
//! The layering is figment's; the file is parsed strictly first, so a
//! mistake there is reported with its line.

use std::path::Path;

use figment::value::{Dict, Map, Value};
use figment::{Error, Figment, Metadata, Profile, Provider};

use crate::config::Config;

/// Top-level keys that are values, not tables: their variables have no `__`
/// (`HERALD_USERS` takes an array of inline tables, as the file would).
const TOP_LEVEL_VALUES: &[&str] = &["data_dir", "log", "log_format", "threads", "users"];

/// Settings from one source, by key path (`limits.max_payload`).
#[derive(Debug, Default)]
pub struct Layer {
    name: &'static str,
    /// Its keys come from `HERALD_*` variables (errors name the variable).
    variables: bool,
    values: Vec<(String, Value)>,
}

impl Layer {
    /// The command-line flags' layer.
    pub fn flags() -> Self {
        Self {
            name: "command-line flag",
            variables: false,
            values: Vec::new(),
        }
    }

    /// The `HERALD_*` variables among `vars` that name a configuration key
    /// (others, such as the flags' own variables or `HERALD_SERVER`, are
    /// not this layer's).
    pub fn variables(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let values = vars
            .into_iter()
            .filter_map(|(name, raw)| {
                let key = name.strip_prefix("HERALD_")?.to_ascii_lowercase();
                let path = if key.contains("__") {
                    key.replace("__", ".")
                } else if TOP_LEVEL_VALUES.contains(&key.as_str()) {
                    key
                } else {
                    return None;
                };
                // Secrets stay text, whatever they look like (and never
                // show in a type error).
                let secret = ["secret", "token", "password"]
                    .iter()
                    .any(|word| path.ends_with(word));
                let value = if secret {
                    Value::from(raw)
                } else {
                    parse_value(&raw)
                };
                Some((path, value))
            })
            .collect();
        Self {
            name: "environment variable",
            variables: true,
            values,
        }
    }

    /// `RUST_LOG`, as the `log` key.
    fn rust_log(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            name: "RUST_LOG",
            variables: false,
            values: vars
                .into_iter()
                .filter(|(name, _)| name == "RUST_LOG")
                .map(|(_, filter)| ("log".to_owned(), Value::from(filter)))
                .collect(),
        }
    }

    /// Sets `path` (`limits.max_payload`) to `value`.
    pub fn set(&mut self, path: &str, value: impl Into<Value>) {
        self.values.push((path.to_owned(), value.into()));
    }
}

fn parse_value(raw: &str) -> Value {
    match raw.parse::<Value>() {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named(self.name);
        if self.variables {
            // Errors name the variable, not the key.
            metadata.interpolater(|_: &Profile, keys: &[&str]| {
                let path: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
                format!("HERALD_{}", path.join("__"))
            })
        } else {
            metadata
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (path, value) in &self.values {
            insert(&mut dict, path, value.clone());
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Puts `value` at `path` in `dict`, making the tables on the way.
fn insert(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((table, rest)) => {
            let entry = dict
                .entry(table.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// The configuration from the defaults, the file at `file` (if any), the
/// variables among `vars` and `flags`, in that order of precedence (the
/// last wins).
///
/// # Errors
/// The file cannot be read or parsed (with its line), or a variable or flag
/// does not fit its key (naming the variable).
pub fn layered(
    file: Option<&Path>,
    vars: &[(String, String)],
    flags: Layer,
) -> anyhow::Result<Config> {
    let base = match file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    Figment::from(figment::providers::Serialized::defaults(base))
        .merge(Layer::rust_log(vars.iter().cloned()))
        .merge(Layer::variables(vars.iter().cloned()))
        .merge(flags)
        .extract()
        .map_err(|error| anyhow::anyhow!("{}", describe(&error)))
}

/// The process's environment (variables whose name or value is not UTF-8
/// are no setting of ours and are skipped, where `std::env::vars` panics).
pub fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// figment's error, without its `default.` profile prefix on key names.
fn describe(error: &Error) -> String {
    error.to_string().replace("\"default.", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn flags_beat_variables_beat_the_file_beats_defaults() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "log = \"warn\"\n[nats]\nlisten = \"127.0.0.1:1\"\n[limits]\nmax_payload = \"2MiB\"\nmax_pings_out = 7\n",
        )?;
        let env = vars(&[
            ("HERALD_NATS__LISTEN", "127.0.0.1:2"),
            ("HERALD_LIMITS__MAX_PAYLOAD", "3MiB"),
            ("HERALD_MQTT__MAX_INFLIGHT", "5"),
            ("HERALD_THREADS", "3"),
            ("RUST_LOG", "debug"),
            // A flag's variable or a client setting: not a key path.
            ("HERALD_NATS", "127.0.0.1:9"),
            ("HERALD_SERVER", "nats://elsewhere:4222"),
        ]);
        let mut flags = Layer::flags();
        flags.set("limits.max_payload", "4MiB");
        let config = layered(Some(&file), &env, flags)?;
        assert_eq!(config.nats.listen, "127.0.0.1:2", "variable over file");
        assert_eq!(config.limits.max_payload, 4 << 20, "flag over variable");
        assert_eq!(config.limits.max_pings_out, 7, "file over default");
        assert_eq!(config.mqtt.max_inflight, 5);
        assert_eq!(config.threads, 3);
        assert_eq!(config.log, "debug", "RUST_LOG over the file");
        assert_eq!(config.redis.listen, "0.0.0.0:6379", "default");
        let mut env = env;
        env.push(("HERALD_LOG".into(), "error".into()));
        let config = layered(Some(&file), &env, Layer::flags())?;
        assert_eq!(config.log, "error", "HERALD_LOG over RUST_LOG");
        assert_eq!(config.limits.max_payload, 3 << 20);
        Ok(())
    }

    #[test]
    fn a_bad_variable_is_named() {
        let err = layered(
            None,
            &vars(&[("HERALD_LIMITS__MAX_PAYLAOD", "1")]),
            Layer::flags(),
        )
        .expect_err("unknown key")
        .to_string();
        assert!(err.contains("max_paylaod"), "{err}");
        let err = layered(
            None,
            &vars(&[("HERALD_LIMITS__MAX_PINGS_OUT", "many")]),
            Layer::flags(),
        )
        .expect_err("not a number")
        .to_string();
        assert!(err.contains("HERALD_LIMITS__MAX_PINGS_OUT"), "{err}");
    }

    #[test]
    fn a_secret_that_looks_like_a_number_stays_text() -> anyhow::Result<()> {
        let config = layered(
            None,
            &vars(&[("HERALD_CLUSTER__SECRET", "12345678")]),
            Layer::flags(),
        )?;
        assert_eq!(config.cluster.secret, "12345678");
        Ok(())
    }

    #[test]
    fn users_and_tls_come_from_variables_too() -> anyhow::Result<()> {
        let config = layered(
            None,
            &vars(&[
                (
                    "HERALD_USERS",
                    "[{name = \"svc\", token = \"t0k3n-0123456789abcdef\"}]",
                ),
                ("HERALD_TLS__CERT", "/etc/herald/cert.pem"),
                ("HERALD_TLS__KEY", "/etc/herald/key.pem"),
            ]),
            Layer::flags(),
        )?;
        assert_eq!(config.users.len(), 1);
        assert_eq!(config.users[0].name, "svc");
        let tls = config.tls.expect("tls from variables");
        assert_eq!(tls.cert, Path::new("/etc/herald/cert.pem"));
        Ok(())
    }
}
