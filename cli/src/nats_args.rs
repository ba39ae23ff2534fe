//! The flags that secure the NATS connection, shared by every subcommand that joins NATS.
//!
//! They are global (`trellis --nats-nkey @user.nk get hosts` and `trellis get hosts
//! --nats-nkey @user.nk` both work) and each has a `TRELLIS_*` variable, so a shell can set
//! them once. [`NatsArgs::connect_options`] turns them, with the URL, into the
//! [`NatsConnect`] that `trellis-protocol` knows how to dial; all the checking (files exist,
//! seed is a user seed, PEM blocks present) happens there, not here.

use std::path::PathBuf;
use std::time::Duration;

use trellis_protocol::nats::NatsConnect;

/// Credentials and TLS for the NATS connection (DESIGN.md §3).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NatsArgs {
    /// A NATS `.creds` file (user JWT + nkey seed), for servers in operator/JWT mode.
    #[arg(
        long,
        global = true,
        env = "TRELLIS_NATS_CREDS",
        value_name = "FILE",
        conflicts_with = "nats_nkey"
    )]
    pub nats_creds: Option<PathBuf>,
    /// A user nkey seed (`SU…`), or `@FILE` holding one, for servers that list nkey users.
    #[arg(
        long,
        global = true,
        env = "TRELLIS_NATS_NKEY",
        value_name = "SEED|@FILE",
        hide_env_values = true
    )]
    pub nats_nkey: Option<String>,
    /// PEM file of the CA that signed the NATS server's certificate (implies TLS).
    #[arg(long, global = true, env = "TRELLIS_NATS_TLS_CA", value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate, for NATS servers that verify clients (needs --nats-tls-key).
    #[arg(
        long,
        global = true,
        env = "TRELLIS_NATS_TLS_CERT",
        value_name = "FILE",
        requires = "nats_tls_key"
    )]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM private key of --nats-tls-cert.
    #[arg(
        long,
        global = true,
        env = "TRELLIS_NATS_TLS_KEY",
        value_name = "FILE",
        requires = "nats_tls_cert"
    )]
    pub nats_tls_key: Option<PathBuf>,
}

impl NatsArgs {
    /// How to connect to `url`, as `name`, waiting at most `connect_timeout` at first.
    pub fn connect_options(&self, url: &str, connect_timeout: Duration, name: &str) -> NatsConnect {
        NatsConnect {
            creds_file: self.nats_creds.clone(),
            nkey_seed: self.nats_nkey.clone(),
            tls_ca_file: self.nats_tls_ca.clone(),
            tls_client_cert: self.nats_tls_cert.clone(),
            tls_client_key: self.nats_tls_key.clone(),
            connect_timeout,
            ..NatsConnect::new(url, name)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn flags_fill_the_connect_options() {
        let cli = Cli::try_parse_from(["t", "--nats-nkey", "@user.nk", "--nats-tls-ca", "ca.pem"])
            .unwrap();
        let c = cli
            .nats
            .connect_options("tls://h:1", Duration::from_secs(2), "n");
        assert_eq!(c.nkey_seed.as_deref(), Some("@user.nk"));
        assert_eq!(c.tls_ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(c.url, "tls://h:1");
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn creds_and_nkey_conflict_and_cert_needs_key() {
        assert!(Cli::try_parse_from(["t", "--nats-creds", "a", "--nats-nkey", "b"]).is_err());
        assert!(Cli::try_parse_from(["t", "--nats-tls-cert", "c.pem"]).is_err());
    }
}
