//! Header filters: a [CEL](https://cel.dev) expression over a message's
//! headers, decided by the broker before delivery, so every API that offers
//! filters (the Rust API, SSE, WebSocket, stream consumers) behaves alike.
//!
//! What an expression sees:
//! - every header whose name is an identifier, as a variable: `region ==
//!   "eu"`; values that parse as integers or decimals are numbers, so
//!   `priority >= 3` works;
//! - `headers`: every header name to its first value, as strings:
//!   `"region" in headers`, `headers["X-Trace"].startsWith("abc")`;
//! - `subject`: the message's subject.
//!
//! A message passes only if the expression evaluates to `true`; an error
//! (a header it names is missing, a type mismatch) means it does not.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::{Context, Program, Value};

use crate::message::Message;

/// A compiled header filter; cheap to clone.
#[derive(Clone)]
pub struct HeaderFilter {
    source: Arc<str>,
    program: Arc<Program>,
}

/// A filter expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter {expression:?}: {message}")]
pub struct FilterError {
    /// The expression as given.
    pub expression: String,
    /// The parser's message.
    pub message: String,
}

impl HeaderFilter {
    /// Compiles `expression`.
    ///
    /// # Errors
    /// [`FilterError`] with the parser's message if it does not parse.
    pub fn new(expression: &str) -> Result<Self, FilterError> {
        let program = Program::compile(expression).map_err(|e| FilterError {
            expression: expression.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            source: expression.into(),
            program: Arc::new(program),
        })
    }

    /// The expression as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `msg` passes.
    pub fn matches(&self, msg: &Message) -> bool {
        let mut ctx = Context::default();
        let mut map: HashMap<String, Value> = HashMap::new();
        if let Some(headers) = &msg.headers {
            for (name, value) in headers.iter() {
                if map.contains_key(name) {
                    continue;
                }
                map.insert(name.to_owned(), Value::from(value.to_owned()));
                if is_identifier(name) {
                    ctx.add_variable_from_value(name.to_owned(), typed(value));
                }
            }
        }
        ctx.add_variable_from_value("headers", Value::from(map));
        ctx.add_variable_from_value("subject", Value::from(msg.subject.to_string()));
        matches!(self.program.execute(&ctx), Ok(Value::Bool(true)))
    }
}

impl fmt::Debug for HeaderFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeaderFilter").field(&self.source).finish()
    }
}

impl PartialEq for HeaderFilter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for HeaderFilter {}

/// A header value as CEL sees it: a number if it reads as one.
fn typed(value: &str) -> Value {
    if let Ok(n) = value.parse::<i64>() {
        return Value::Int(n);
    }
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() && value.chars().any(|c| c.is_ascii_digit()) => Value::Float(x),
        _ => Value::from(value.to_owned()),
    }
}

/// Whether `name` can be a CEL variable (and is not one of ours or a keyword).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name,
            "headers"
                | "subject"
                | "true"
                | "false"
                | "null"
                | "in"
                | "as"
                | "break"
                | "const"
                | "continue"
                | "else"
                | "for"
                | "function"
                | "if"
                | "import"
                | "let"
                | "loop"
                | "package"
                | "namespace"
                | "return"
                | "var"
                | "void"
                | "while"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Headers, Subject};

    fn msg(headers: &[(&str, &str)]) -> Message {
        let mut b = Headers::builder();
        for (n, v) in headers {
            b = b.insert(n, v).unwrap();
        }
        Message::new(Subject::new("orders.eu.new").unwrap(), "x").with_headers(b.build())
    }

    #[test]
    fn filters_on_values_numbers_presence_and_prefixes() {
        let f = HeaderFilter::new(r#"region == "eu" && priority >= 3"#).unwrap();
        assert!(f.matches(&msg(&[("region", "eu"), ("priority", "5")])));
        assert!(!f.matches(&msg(&[("region", "eu"), ("priority", "2")])));
        assert!(!f.matches(&msg(&[("region", "us"), ("priority", "9")])));
        assert!(
            !f.matches(&msg(&[("priority", "9")])),
            "a missing header does not match"
        );
        assert!(!f.matches(&Message::new(Subject::new("a").unwrap(), "x")));
        let presence = HeaderFilter::new(r#""X-Trace" in headers"#).unwrap();
        assert!(presence.matches(&msg(&[("X-Trace", "abc")])));
        assert!(!presence.matches(&msg(&[("region", "eu")])));
        let prefix = HeaderFilter::new(r#"headers["X-Trace"].startsWith("ab")"#).unwrap();
        assert!(prefix.matches(&msg(&[("X-Trace", "abc")])));
        let subject = HeaderFilter::new(r#"subject.startsWith("orders.eu")"#).unwrap();
        assert!(subject.matches(&msg(&[])));
        let not_bool = HeaderFilter::new("1 + 1").unwrap();
        assert!(!not_bool.matches(&msg(&[])));
    }

    #[test]
    fn a_bad_expression_names_the_problem() {
        let err = HeaderFilter::new("region ==").unwrap_err();
        assert!(err.message.contains("Syntax error"), "{err}");
    }
}
