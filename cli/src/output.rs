//! Human tables or JSON, chosen by the global `--output` flag.

use serde::Serialize;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Reads a seed given either literally or as `@path` to a file holding it.
pub fn read_seed(value: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the seed file `{path}`"))
            .map(|s| s.trim().to_string()),
        None => Ok(value.trim().to_string()),
    }
}
