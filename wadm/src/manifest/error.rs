//! What is wrong with a manifest, where, and what would be right.

use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The manifest deploys, but probably not as meant (e.g. a deprecated form, an
    /// ignored key).
    Warning,
    /// The manifest is refused.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// One problem in a manifest.
///
/// Rendered as `SOURCE:LINE:COLUMN: error: PATH: MESSAGE`, leaving out what is not known
/// (lines are known for YAML syntax and type errors, paths for everything else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file (or other source name) the manifest came from, when the caller gave one.
    pub source: Option<String>,
    /// Field path, e.g. `spec.components[2].traits[0].properties.spread[1].weight`; empty
    /// for the whole document.
    pub path: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            source: None,
            path: path.into(),
            location: None,
            message: message.into(),
        }
    }

    pub(crate) fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, message)
        }
    }

    /// Whether this refuses the manifest.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub(crate) fn with_source(mut self, source: Option<&str>) -> Self {
        self.source = source.map(str::to_string);
        self
    }

    /// A YAML syntax or type error, with serde_yaml's line, column and path.
    pub(crate) fn from_yaml(err: &serde_yaml::Error) -> Self {
        let location = err.location().map(|l| (l.line(), l.column()));
        let mut text = err.to_string();
        if let Some((line, column)) = location {
            // The location is shown in front; drop its repetition from the text.
            text = text.replacen(&format!(" at line {line} column {column}"), "", 1);
        }
        // Type errors read `PATH: MESSAGE`; a path has no spaces, serde messages do.
        let (path, message) = match text.split_once(": ") {
            Some((path, message)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
                (path.to_string(), message.to_string())
            }
            _ => (String::new(), text),
        };
        const SERDE_MESSAGES: [&str; 8] = [
            "invalid type",
            "invalid value",
            "invalid length",
            "unknown field",
            "unknown variant",
            "missing field",
            "duplicate field",
            "both ",
        ];
        let is_type_error = SERDE_MESSAGES.iter().any(|m| message.starts_with(m));
        let message = if path.is_empty() && !is_type_error {
            format!("YAML syntax: {message}")
        } else {
            plain_types(&message)
        };
        Self {
            location,
            ..Self::error(path, message)
        }
    }
}

/// serde's type names in words a manifest author knows.
fn plain_types(message: &str) -> String {
    let message = message
        .replace("expected i64", "expected a whole number")
        .replace("expected u64", "expected a whole number");
    match message.split_once("expected struct ") {
        Some((head, "Manifest")) => format!(
            "{head}expected a manifest: a mapping with `apiVersion`, `kind`, `metadata` and \
             `spec`"
        ),
        Some((head, _)) => format!("{head}expected a mapping"),
        None => message,
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(source) = &self.source {
            write!(f, "{source}:")?;
            if let Some((line, column)) = self.location {
                write!(f, "{line}:{column}:")?;
            }
            f.write_str(" ")?;
        } else if let Some((line, column)) = self.location {
            write!(f, "line {line} column {column}: ")?;
        }
        write!(f, "{}: ", self.severity)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a manifest was refused: every problem found (at least one error; warnings too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(&self.diagnostics))]
pub struct ManifestErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestErrors {
    /// Only the errors (not the warnings).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let mut out = format!(
        "invalid manifest: {errors} error{}",
        if errors == 1 { "" } else { "s" }
    );
    for diagnostic in diagnostics {
        out.push_str("\n  ");
        out.push_str(&diagnostic.to_string());
    }
    out
}
