//! The production checklist (`cullis-proxy check`, and `serve` with `ENVIRONMENT=production`):
//! each item of the runbook's proxy checklist, judged on the configuration exactly as `serve`
//! reads it plus the store it opens. One line per item, `PASS name` or `FAIL name: how to fix`.

use crate::agents;
use crate::audit;
use crate::config::{CommonSettings, ServeSettings};
use crate::context::{keys, Context};
use std::path::Path;

/// One checklist item's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: &'static str,
    /// `None` = pass; otherwise how to fix it.
    pub fix: Option<String>,
}

impl Item {
    fn new(name: &'static str, ok: bool, fix: impl FnOnce() -> String) -> Item {
        Item {
            name,
            fix: (!ok).then(fix),
        }
    }

    pub fn passed(&self) -> bool {
        self.fix.is_none()
    }

    /// `PASS name` / `FAIL name: how to fix`.
    pub fn line(&self) -> String {
        match &self.fix {
            None => format!("PASS {}", self.name),
            Some(fix) => format!("FAIL {}: {fix}", self.name),
        }
    }
}

/// Runs every item. `ctx` is the opened store (settings that cannot even open it fail earlier,
/// as in `serve`).
pub async fn run(ctx: &Context, serve: &ServeSettings) -> Vec<Item> {
    let settings = &ctx.settings;
    let mut items = settings_items(settings, serve);
    items.push(store_permissions(settings));
    items.extend(stored_items(ctx).await);
    items
}

/// What the settings alone decide.
fn settings_items(settings: &CommonSettings, serve: &ServeSettings) -> Vec<Item> {
    let public_url = settings
        .pdp_url
        .as_deref()
        .or(settings.public_url.as_deref())
        .unwrap_or("");
    vec![
        Item::new(
            "broker_tls_verification",
            !settings.insecure_broker_tls,
            || {
                "unset MCP_PROXY_INSECURE_BROKER_TLS (give the broker's CA in \
             MCP_PROXY_BROKER_CA_BUNDLE instead)"
                    .into()
            },
        ),
        Item::new("admin_token", admin_token_ok(serve), || {
            "set MCP_PROXY_ADMIN_TOKEN to at least 32 random characters (`openssl rand -hex 32`) \
             or leave it unset to turn the admin API off"
                .into()
        }),
        Item::new(
            "allowed_origins",
            !serve.allowed_origins.iter().any(|o| o.trim() == "*"),
            || "list the exact browser origins in MCP_PROXY_ALLOWED_ORIGINS, not `*`".into(),
        ),
        Item::new("listener_tls", serve.tls_cert.is_some(), || {
            "serve HTTPS: set MCP_PROXY_TLS_CERT and MCP_PROXY_TLS_KEY (agents' API keys and \
             the broker's webhook calls cross the network)"
                .into()
        }),
        Item::new(
            "public_url_https",
            public_url.starts_with("https://"),
            || {
                "set MCP_PROXY_PROXY_PUBLIC_URL (or MCP_PROXY_PDP_URL) to the https:// URL the \
             broker reaches this proxy at"
                    .into()
            },
        ),
        Item::new("pdp_secret", settings.pdp_secret.is_some(), || {
            "set MCP_PROXY_PDP_SECRET (`openssl rand -hex 32`) before `org join`, so only the \
             broker can call /pdp/policy"
                .into()
        }),
        Item::new(
            "vault_https",
            settings.secret_backend != "vault"
                || settings
                    .vault_addr
                    .as_deref()
                    .is_some_and(|a| a.starts_with("https://")),
            || "use an https:// MCP_PROXY_VAULT_ADDR".into(),
        ),
    ]
}

fn admin_token_ok(serve: &ServeSettings) -> bool {
    // `serve` already refuses short and example tokens; here a token of one repeated
    // character (or two) is refused too.
    serve.admin_token.as_deref().is_none_or(|token| {
        let mut distinct: Vec<char> = token.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        token.len() >= 32 && distinct.len() > 2
    })
}

/// The data directory and key file readable by the proxy's user only.
fn store_permissions(settings: &CommonSettings) -> Item {
    let mut loose = Vec::new();
    for path in [settings.data_dir.clone(), settings.secret_key_file()] {
        if group_or_world_accessible(&path) {
            loose.push(path.display().to_string());
        }
    }
    Item::new("store_permissions", loose.is_empty(), || {
        format!(
            "readable by others: {} — `chmod 700` the data directory and `chmod 600` the key file",
            loose.join(", ")
        )
    })
}

#[cfg(unix)]
fn group_or_world_accessible(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn group_or_world_accessible(_path: &Path) -> bool {
    false
}

/// What the store decides: broker URL, audit chain, agent certificates.
async fn stored_items(ctx: &Context) -> Vec<Item> {
    let broker_url = ctx.store.setting(keys::BROKER_URL).await.ok().flatten();
    let chain = audit::verify(&ctx.store).await;
    let expiring = agents::expiring_certificates(ctx).await;
    vec![
        Item::new(
            "broker_url_https",
            broker_url
                .as_deref()
                .is_none_or(|u| u.starts_with("https://")),
            || "join the broker at its https:// URL".into(),
        ),
        Item::new(
            "audit_chain",
            chain.as_ref().is_ok_and(|r| r.valid),
            || {
                match &chain {
                Ok(report) => format!(
                    "the audit chain is broken at row {:?}: investigate (`cullis-proxy audit verify`)",
                    report.broken_at_id
                ),
                Err(err) => format!("the audit log cannot be read: {err}"),
            }
            },
        ),
        Item::new(
            "agent_certificates",
            expiring.as_ref().is_ok_and(Vec::is_empty),
            || {
                match &expiring {
                Ok(soon) => format!(
                    "{} agent certificate(s) expire within {} days: `cullis-proxy agent rotate-cert --all`",
                    soon.len(),
                    agents::EXPIRY_WARNING_DAYS
                ),
                Err(err) => format!("agent certificates cannot be read: {err}"),
            }
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_agreed_shape() {
        let pass = Item::new("x", true, || unreachable!());
        assert_eq!(pass.line(), "PASS x");
        let fail = Item::new("y", false, || "do z".into());
        assert_eq!(fail.line(), "FAIL y: do z");
    }
}
