//! `trellis claims sign` and `trellis claims inspect`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;
use trellis_protocol::claims::{
    self, Claims, SignOptions, TrustPolicy, TrustedIssuers, format_time, now_secs,
};
use trellis_protocol::keys::{KeyKind, key_pair_from_seed};
use trellis_protocol::wasm::{WasmKind, WasmLayout};

use crate::GlobalArgs;
use crate::output::{OutputFormat, print_json, read_seed};

#[derive(Subcommand, Debug)]
pub enum ClaimsCommand {
    /// Embed signed claims in a component.
    Sign(SignArgs),
    /// Print a component's claims; exits 0 only if signature, hash and time window are valid.
    Inspect {
        /// The signed component.
        file: PathBuf,
        /// Also require the issuer to be one of these account keys; repeatable.
        #[arg(
            long = "trusted-issuer",
            env = "TRELLIS_TRUSTED_ISSUERS",
            value_delimiter = ','
        )]
        trusted_issuers: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The component to sign.
    input: PathBuf,
    /// Account seed of the issuer (`SA…`), or `@path` to a file holding it.
    #[arg(long, env = "TRELLIS_ISSUER_SEED")]
    issuer: String,
    /// Module seed of the component (`SM…`) or `@path`; a new module key when omitted.
    #[arg(long, env = "TRELLIS_SUBJECT_SEED")]
    subject: Option<String>,
    /// The component's name.
    #[arg(long, env = "TRELLIS_COMPONENT_NAME")]
    name: String,
    /// A WIT interface the component may import (`ns:pkg/iface` or `ns:pkg/*`); repeatable.
    #[arg(long = "grant", env = "TRELLIS_GRANTS", value_delimiter = ',')]
    grants: Vec<String>,
    /// Claims expire this long after now (e.g. `30d`, `12h`).
    #[arg(long, env = "TRELLIS_EXPIRES_IN", value_parser = humantime::parse_duration)]
    expires_in: Option<Duration>,
    /// Claims become valid this long after now.
    #[arg(long, env = "TRELLIS_NOT_BEFORE", value_parser = humantime::parse_duration)]
    not_before: Option<Duration>,
    /// Version string (`ver`).
    #[arg(long, env = "TRELLIS_COMPONENT_VERSION")]
    ver: Option<String>,
    /// Revision number (`rev`).
    #[arg(long, env = "TRELLIS_COMPONENT_REVISION")]
    rev: Option<i32>,
    /// A tag; repeatable.
    #[arg(long = "tag", env = "TRELLIS_TAGS", value_delimiter = ',')]
    tags: Vec<String>,
    /// Where to write the signed component.
    #[arg(short = 'o', long = "output-file", env = "TRELLIS_SIGN_OUTPUT")]
    output_file: PathBuf,
}

pub fn run(command: ClaimsCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match command {
        ClaimsCommand::Sign(args) => sign(args, global),
        ClaimsCommand::Inspect {
            file,
            trusted_issuers,
        } => inspect(&file, &trusted_issuers, global),
    }
}

fn sign(args: SignArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.input)
        .with_context(|| format!("cannot read `{}`", args.input.display()))?;
    let issuer =
        key_pair_from_seed(&read_seed(&args.issuer)?, KeyKind::Account).context("--issuer")?;
    let subject = match &args.subject {
        Some(seed) => {
            key_pair_from_seed(&read_seed(seed)?, KeyKind::Module).context("--subject")?
        }
        None => KeyKind::Module.generate(),
    };
    for grant in &args.grants {
        validate_grant(grant)?;
    }
    let options = SignOptions {
        name: args.name.clone(),
        grants: args.grants.clone(),
        tags: args.tags.clone(),
        rev: args.rev,
        ver: args.ver.clone(),
        expires_in: args.expires_in,
        not_before: args.not_before,
    };
    let signed = claims::sign(&wasm, &issuer, &subject, &options, now_secs())
        .with_context(|| format!("cannot sign `{}`", args.input.display()))?;
    std::fs::write(&args.output_file, &signed)
        .with_context(|| format!("cannot write `{}`", args.output_file.display()))?;
    match global.output {
        OutputFormat::Json => print_json(&json!({
            "output": args.output_file,
            "issuer": issuer.public_key(),
            "subject": subject.public_key(),
            "grants": args.grants,
        }))?,
        OutputFormat::Human => println!(
            "signed {} as `{}`\n  issuer:  {}\n  subject: {}",
            args.output_file.display(),
            args.name,
            issuer.public_key(),
            subject.public_key()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ns:pkg/iface`, `ns:pkg/*` or `ns:pkg`, each part lower-case kebab.
fn validate_grant(grant: &str) -> anyhow::Result<()> {
    let kebab = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let (ns, rest) = grant.split_once(':').unwrap_or(("", grant));
    let (pkg, iface) = rest.split_once('/').unwrap_or((rest, "*"));
    let pkg = pkg.split_once('@').map_or(pkg, |(p, _)| p);
    let iface = iface.split_once('@').map_or(iface, |(i, _)| i);
    if kebab(ns) && kebab(pkg) && (iface == "*" || kebab(iface)) {
        Ok(())
    } else {
        anyhow::bail!(
            "invalid --grant `{grant}`: expected a WIT interface such as `wasi:keyvalue/atomics` or a package such as `wasi:keyvalue/*`"
        )
    }
}

fn inspect(file: &PathBuf, trusted: &[String], global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let policy = TrustPolicy {
        issuers: if trusted.is_empty() {
            TrustedIssuers::Any
        } else {
            TrustedIssuers::Only(trusted.iter().cloned().collect())
        },
        allow_unsigned: false,
    };
    let verdict = claims::verify(&wasm, &policy, now_secs());
    // Show what the file claims even when it does not verify.
    let decoded = claims::read(&wasm).ok().flatten().map(|(_, c)| c);
    let kind = WasmLayout::parse(&wasm).ok().map(|l| l.kind);
    match global.output {
        OutputFormat::Json => print_json(&json!({
            "valid": verdict.is_ok(),
            "error": verdict.as_ref().err().map(|e| e.to_string()),
            "kind": kind.map(kind_name),
            "claims": decoded,
        }))?,
        OutputFormat::Human => {
            if let Some(claims) = &decoded {
                print_claims(claims, kind);
            }
        }
    }
    match verdict {
        Ok(_) => {
            if global.output == OutputFormat::Human {
                println!("  status:     valid (signature, hash and time window)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: `{}`: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn kind_name(kind: WasmKind) -> &'static str {
    match kind {
        WasmKind::Component => "component",
        WasmKind::CoreModule => "core module",
    }
}

fn print_claims(claims: &Claims, kind: Option<WasmKind>) {
    let meta = &claims.wascap;
    println!("{}", claims.name());
    println!("  kind:       {}", kind.map_or("unknown", kind_name));
    println!("  account:    {}", claims.iss);
    println!("  module:     {}", claims.sub);
    println!("  hash:       {}", meta.hash);
    println!("  issued:     {}", format_time(claims.iat));
    println!(
        "  expires:    {}",
        claims.exp.map_or("never".into(), format_time)
    );
    println!(
        "  not before: {}",
        claims.nbf.map_or("immediately".into(), format_time)
    );
    println!("  version:    {}", meta.ver.as_deref().unwrap_or("-"));
    println!(
        "  revision:   {}",
        meta.rev.map_or("-".into(), |r| r.to_string())
    );
    println!(
        "  tags:       {}",
        meta.tags.as_deref().unwrap_or_default().join(", ")
    );
    let grants = claims.grants();
    println!(
        "  grants:     {}",
        if grants.is_empty() {
            "(none)".into()
        } else {
            grants.join(", ")
        }
    );
}

#[cfg(test)]
mod tests {
    use super::validate_grant;

    #[test]
    fn grants_are_wit_names() {
        for ok in [
            "wasi:keyvalue/atomics",
            "wasi:keyvalue/*",
            "wasi:config",
            "wasi:http/outgoing-handler@0.2.0",
        ] {
            assert!(validate_grant(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "keyvalue",
            "wasi:",
            "Wasi:http/x",
            "wasi:http/",
            "wasi http/x",
        ] {
            assert!(validate_grant(bad).is_err(), "{bad}");
        }
    }
}
