//! `${NAME}`, `${NAME:-default}` and `${NAME:?message}` in a configuration value, and `$$` for
//! a literal `$`. Any other `$` is left as it is, so that a `shell` line's own `$1`, `$PORT` or
//! `$(cmd)` reaches `sh` untouched.
//!
//! Written by hand rather than taken from a crate: `shellexpand` and `subst` also expand a bare
//! `$NAME` (which would take those away from `sh`) and have no `:?`; `envsubst` has only
//! `${NAME}`; none says which variable of which form failed, which an error at a file's line
//! needs. The grammar is small: a name, then nothing, `:-` or `:?`, then a word up to the
//! matching `}` that is itself expanded (`${A:-${B:-x}}`).

use std::fmt;

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// `${NAME}` or `${NAME:?message}` with `NAME` unset (or, with `:?`, empty).
    Unset {
        name: String,
        /// The `:?` message, expanded.
        message: Option<String>,
    },
    /// A `${` that is not closed.
    Unclosed,
    /// `${...}` that is not one of the three forms.
    Unsupported(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unset { name, message: Some(message) } if !message.is_empty() => {
                write!(f, "variable {name:?} is not set: {message}")
            }
            Problem::Unset { name, message: Some(_) } => write!(f, "variable {name:?} is not set"),
            Problem::Unset { name, message: None } => write!(
                f,
                "variable {name:?} is not set (set it in warren's environment or an env file, or give a default: \
                 ${{{name}:-value}})"
            ),
            Problem::Unclosed => f.write_str("\"${\" without its \"}\" (write $$ for a literal $)"),
            Problem::Unsupported(inner) => write!(
                f,
                "unsupported \"${{{inner}}}\" (expected ${{NAME}}, ${{NAME:-default}} or ${{NAME:?message}}; \
                 write $$ for a literal $)"
            ),
        }
    }
}

/// `text` with every reference replaced by its value from `lookup`.
pub(crate) fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Problem> {
    let mut out = String::with_capacity(text.len());
    expand_into(text, lookup, &mut out)?;
    Ok(out)
}

fn expand_into(text: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut String) -> Result<(), Problem> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inside) = after.strip_prefix('{') {
            let end = closing(inside).ok_or(Problem::Unclosed)?;
            reference(&inside[..end], lookup, out)?;
            rest = &inside[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

/// The index of the `}` that closes a `${` whose inside starts `text`, skipping nested
/// references and `$$`.
fn closing(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'$', Some(b'$')) => i += 2,
            (b'$', Some(b'{')) => {
                depth += 1;
                i += 2;
            }
            (b'}', _) if depth == 0 => return Some(i),
            (b'}', _) => {
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// One `${...}`, given what is between the braces.
fn reference(inner: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut String) -> Result<(), Problem> {
    let name_len = inner
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(inner.len(), |(i, _)| i);
    let (name, form) = inner.split_at(name_len);
    if name.is_empty() {
        return Err(Problem::Unsupported(inner.to_owned()));
    }
    let value = lookup(name);
    if form.is_empty() {
        let value = value.ok_or_else(|| Problem::Unset { name: name.to_owned(), message: None })?;
        out.push_str(&value);
        return Ok(());
    }
    let set = value.filter(|v| !v.is_empty());
    if let Some(default) = form.strip_prefix(":-") {
        match set {
            Some(value) => out.push_str(&value),
            None => expand_into(default, lookup, out)?,
        }
        return Ok(());
    }
    if let Some(message) = form.strip_prefix(":?") {
        return match set {
            Some(value) => {
                out.push_str(&value);
                Ok(())
            }
            None => Err(Problem::Unset { name: name.to_owned(), message: Some(expand(message, lookup)?) }),
        };
    }
    Err(Problem::Unsupported(inner.to_owned()))
}

/// `text` written so that [`expand`] gives it back unchanged: a `$` that [`expand`] would read
/// as the start of `$$` or `${` is doubled. Other `$`s stay as they are, for readability.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '{')) {
            out.push('$');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("5000".into()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        expand(text, &vars).unwrap_or_else(|problem| panic!("{text}: {problem}"))
    }

    fn err(text: &str) -> String {
        expand(text, &vars).expect_err(text).to_string()
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(ok("${HOME}/data"), "/home/u/data");
        assert_eq!(ok("${EMPTY}"), "");
        assert_eq!(ok("${NOPE:-fallback}"), "fallback");
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback", "empty counts as unset with a colon, as in sh");
        assert_eq!(ok("${PORT:-1}"), "5000");
        assert_eq!(ok("${PORT:?needed}"), "5000");
        assert_eq!(ok("${NOPE:-${PORT}}"), "5000", "a default is expanded");
        assert_eq!(ok("${NOPE:-a}b}"), "ab}", "the first unnested brace closes");
        assert_eq!(ok("${NOPE:-}"), "");
    }

    #[test]
    fn dollars_that_are_not_references_stay() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("$${HOME}"), "${HOME}");
        assert_eq!(ok("echo $PORT $1 $(date) $"), "echo $PORT $1 $(date) $");
        assert_eq!(ok("$$$$"), "$$");
        assert_eq!(ok("${NOPE:-$$}"), "$");
    }

    #[test]
    fn problems_say_which_variable_and_how_to_fix_it() {
        assert_eq!(
            err("${DB_HOST}"),
            "variable \"DB_HOST\" is not set (set it in warren's environment or an env file, or give a default: \
             ${DB_HOST:-value})"
        );
        assert_eq!(err("x${DB:?set DB to the database URL}"), "variable \"DB\" is not set: set DB to the database URL");
        assert_eq!(err("${EMPTY:?}"), "variable \"EMPTY\" is not set");
        assert_eq!(err("${NOPE:-${ALSO_NOPE}}"), err("${ALSO_NOPE}"));
        assert_eq!(err("${HOME"), "\"${\" without its \"}\" (write $$ for a literal $)");
        assert!(err("${1}").starts_with("unsupported \"${1}\""));
        assert!(err("${HOME-x}").starts_with("unsupported \"${HOME-x}\""));
        assert!(err("${}").starts_with("unsupported \"${}\""));
    }

    proptest! {
        #[test]
        fn escaped_text_expands_to_itself(text in "[a-z${}:?-]{0,24}") {
            prop_assert_eq!(expand(&escape(&text), &|_| None), Ok(text));
        }
    }
}
