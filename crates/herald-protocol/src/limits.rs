//! Hard limits handed to every parser.
//!
//! A parser never buffers more than these allow: it reports a violation as soon as the bytes it
//! has seen prove one, instead of waiting for a frame that may never end.

/// Hard limits every parser is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest control line accepted, counted as nats-server does: the argument bytes after the
    /// operation name, without the line terminator. Default 4096.
    pub max_control_line: usize,
    /// Largest payload accepted in one frame; for frames with headers this caps headers plus
    /// payload. Default 1 MiB (1048576), the value advertised in NATS `INFO`.
    pub max_payload: usize,
}

impl Limits {
    /// The default maximum control line length (4096 bytes, as nats-server).
    pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
    /// The default maximum payload (1 MiB, as nats-server).
    pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_control_line: Self::DEFAULT_MAX_CONTROL_LINE,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nats_server() {
        let limits = Limits::default();
        assert_eq!(limits.max_control_line, 4096);
        assert_eq!(limits.max_payload, 1_048_576);
    }
}
