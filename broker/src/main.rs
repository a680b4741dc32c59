//! `cullis-broker`: the central Cullis broker.
//!
//! The HTTP API, storage, policy and audit arrive with the broker issues; this binary already
//! carries the command-line surface operators will use, so `--help` documents it from day one.

use clap::{Parser, Subcommand};

/// The central Cullis broker: onboards organisations, issues DPoP-bound tokens, relays end-to-end
/// encrypted messages between agents of different organisations and keeps a hash-chained audit log.
#[derive(Debug, Parser)]
#[command(name = "cullis-broker", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker HTTP API (default 127.0.0.1:8000).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "BROKER_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on.
        #[arg(long, env = "BROKER_PORT", default_value_t = 8000)]
        port: u16,
    },
    /// Apply the embedded database migrations and exit.
    Migrate,
    /// Broker PKI: create the broker CA and token-signing key.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create the broker CA certificate and key (idempotent; files are written with mode 0600).
    Init,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "cullis-broker: `{}` is not implemented yet in this build",
        command_name(&cli.command)
    );
    std::process::ExitCode::from(2)
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Serve { .. } => "serve",
        Command::Migrate => "migrate",
        Command::Pki { .. } => "pki init",
    }
}
