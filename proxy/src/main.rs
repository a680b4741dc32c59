//! `cullis-proxy`: the per-organisation Cullis sidecar.
//!
//! The pingora data plane, custody and broker uplink arrive with the proxy issue; this binary
//! already carries the command-line surface an organisation admin will use.

use clap::{Parser, Subcommand};

/// The per-organisation Cullis proxy: holds the org CA and agent keys so local agents need no
/// cryptography, and speaks DPoP, E2E encryption and signatures towards the broker for them.
#[derive(Debug, Parser)]
#[command(name = "cullis-proxy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (egress REST API, MCP endpoint, PDP webhook; default 0.0.0.0:9100).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MCP_PROXY_HOST", default_value = "0.0.0.0")]
        host: String,
        /// Port to listen on.
        #[arg(long, env = "MCP_PROXY_PORT", default_value_t = 9100)]
        port: u16,
    },
    /// Organisation lifecycle: create or import the org CA, join a broker.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Agent lifecycle: create, list, rotate, disable.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Generate the organisation CA (P-384 by default) or import an existing one.
    Init,
    /// Join a broker with an invite token.
    Join,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Mint a key and certificate for a new agent and register it at the broker.
    Create,
    /// List this organisation's agents.
    List,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Serve { .. } => "serve",
        Command::Org { .. } => "org",
        Command::Agent { .. } => "agent",
    };
    eprintln!("cullis-proxy: `{name}` is not implemented yet in this build");
    std::process::ExitCode::from(2)
}
