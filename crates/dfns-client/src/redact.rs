//! Removing secrets from text that came from outside (Dfns' messages, transport errors, the
//! Kubernetes API's), wherever they sit in it: `token=eyJ…`, `"key":"-----BEGIN…"` and a value
//! glued to other text are found as well as one between spaces.
//!
//! Three nets:
//! - JWT-shaped strings (`eyJ…` with three base64url segments; the third may be empty);
//! - PEM blocks, `-----BEGIN …-----` through `-----END …-----`, across real or `\n`-escaped
//!   newlines (an unclosed block is redacted to the end);
//! - anything that was ever a [`crate::SecretString`]: each piece of it (a line, a JWT segment, or
//!   the whole value) of at least [`WINDOW`] bytes, through a bounded registry of keyed hashes of
//!   a few windows of each piece (never the secret itself); a text holding any of those windows
//!   has the span the piece would cover redacted.
//!
//! The value after `Bearer` is redacted too, and the result is bounded in length.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{LazyLock, Mutex};

use super::sensitive::REDACTED;

const MAX_MESSAGE_CHARS: usize = 500;
/// Bytes per registered window; shorter secrets are not registered (too many false matches).
pub const WINDOW: usize = 24;
/// Windows remembered per piece of a secret: its start, its end and two in between, so a whole
/// copy always matches and so does any part covering a third of it.
const WINDOWS_PER_PIECE: usize = 4;
/// Windows per registry generation. Two generations are kept, so memory stays under about
/// 2 × 65,536 entries (~3 MiB) whatever the number of credentials; the oldest generation is
/// dropped as new secrets arrive, and secrets still in use are registered again when re-read.
const GENERATION_WINDOWS: usize = 65_536;

/// Where a window sits in its secret, to redact the whole secret around a match.
#[derive(Clone, Copy, Debug)]
struct Span {
    offset: u32,
    len: u32,
}

struct Registry {
    hasher: RandomState,
    current: HashMap<u64, Span>,
    previous: HashMap<u64, Span>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::new()));

impl Registry {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// Registers each piece of `secret` (its lines, or the segments of a JWT) on its own: the
    /// armour of a PEM block and the header of a JWT are the same in many secrets, and a window
    /// there must not stand for any one secret's length.
    fn insert(&mut self, secret: &str) {
        let pieces = secret
            .split(['\n', '\r', '.'])
            .map(str::trim)
            .filter(|piece| piece.len() >= WINDOW && !piece.starts_with("-----"));
        for piece in pieces {
            let bytes = piece.as_bytes();
            let last = bytes.len() - WINDOW;
            for index in 0..WINDOWS_PER_PIECE {
                let offset = last * index / (WINDOWS_PER_PIECE - 1);
                let hash = self.hasher.hash_one(&bytes[offset..offset + WINDOW]);
                if self.current.len() >= GENERATION_WINDOWS {
                    self.previous = std::mem::take(&mut self.current);
                }
                let span = Span {
                    offset: offset as u32,
                    len: bytes.len().min(u32::MAX as usize) as u32,
                };
                self.current.insert(hash, span);
            }
        }
    }

    /// Byte ranges of `text` covered by registered secrets.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        if bytes.len() < WINDOW || (self.current.is_empty() && self.previous.is_empty()) {
            return Vec::new();
        }
        let mut spans = Vec::new();
        for start in 0..=bytes.len() - WINDOW {
            let hash = self.hasher.hash_one(&bytes[start..start + WINDOW]);
            if let Some(span) = self.current.get(&hash).or_else(|| self.previous.get(&hash)) {
                let from = start.saturating_sub(span.offset as usize);
                let to = (from + span.len as usize).min(bytes.len());
                spans.push((from, to));
            }
        }
        spans
    }
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Remembers (a keyed hash of a few windows of) `secret`, so [`scrub`] finds it in any text.
pub(crate) fn register(secret: &str) {
    if secret.len() >= WINDOW {
        registry().insert(secret);
    }
}

/// Byte ranges of PEM blocks, closed or not.
fn pem_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("-----BEGIN") {
        let start = from + found;
        let end = text[start..]
            .find("-----END")
            .map(|end| start + end + "-----END".len())
            .map(|after| match text[after..].find("-----") {
                Some(close) => after + close + "-----".len(),
                None => text.len(),
            })
            .unwrap_or(text.len());
        spans.push((start, end));
        from = end;
    }
    spans
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// Byte ranges of JWT-shaped strings: `eyJ` then base64url, a dot, base64url, a dot, and an
/// optional base64url signature.
fn jwt_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("eyJ") {
        let start = from + found;
        // A JWT starts a run of base64url (`token=eyJ…`); `keyJar.a.b` holds none.
        if start > 0 && is_base64url(bytes[start - 1]) {
            from = start + 3;
            continue;
        }
        let mut end = start;
        let mut dots = 0;
        let mut segment_len = 0;
        let mut segments_ok = true;
        while end < bytes.len() && dots < 3 {
            let byte = bytes[end];
            if is_base64url(byte) {
                segment_len += 1;
            } else if byte == b'.' && dots < 2 {
                segments_ok &= segment_len > 0;
                dots += 1;
                segment_len = 0;
            } else {
                break;
            }
            end += 1;
        }
        if dots == 2 && segments_ok {
            spans.push((start, end));
            from = end;
        } else {
            from = start + 3;
        }
    }
    spans
}

/// The word after `Bearer` (any case), up to whitespace or a quote.
fn bearer_spans(text: &str) -> Vec<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("bearer") {
        let mut start = from + found + "bearer".len();
        while start < bytes.len() && (bytes[start] == b' ' || bytes[start] == b'\t') {
            start += 1;
        }
        let mut end = start;
        while end < bytes.len()
            && !bytes[end].is_ascii_whitespace()
            && !b"\"',;".contains(&bytes[end])
        {
            end += 1;
        }
        if end > start && start > from + found + "bearer".len() {
            spans.push((start, end));
        }
        from = end.max(from + found + 1);
    }
    spans
}

/// `text` with every secret found replaced by `[redacted]`, bounded to 500 characters.
pub fn scrub(text: &str) -> String {
    let mut spans = pem_spans(text);
    spans.extend(jwt_spans(text));
    spans.extend(bearer_spans(text));
    spans.extend(registry().spans(text));
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_CHARS + 16));
    let mut cursor = 0;
    for (start, end) in spans {
        // Spans may start or end inside a multi-byte character; widen them to boundaries.
        let start = floor_boundary(text, start);
        let end = ceil_boundary(text, end);
        if end <= cursor {
            continue;
        }
        // Only a redaction moves the cursor, so a span starting before it overlaps the last one.
        if start >= cursor {
            out.push_str(&text[cursor..start]);
            out.push_str(REDACTED);
        }
        cursor = end;
    }
    out.push_str(&text[cursor..]);
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    out
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_boundary(text: &str, mut index: usize) -> usize {
    while index < text.len() && !text.is_char_boundary(index) {
        index += 1;
    }
    index.min(text.len())
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
