//! Agents: the list with the create form, the detail page with integration snippets, and the
//! lifecycle buttons (rotate key, rotate cert, disable, delete). Each calls the `agents`
//! function the CLI and the admin API call, with its broker-side effect.

use super::pages::{self, done};
use super::{redirect, Call};
use crate::agents::{self, CreatedAgent, KeyPair};
use crate::http::Response;
use crate::store::AgentRow;
use cullis_console::html;
use cullis_console::layout::{badge, csrf_field, post_button, Flash};
use cullis_console::Markup;
use http::StatusCode;
use serde_json::json;

/// Audit rows shown on an agent's page.
const RECENT_AUDIT_ROWS: i64 = 20;

/// `GET /proxy/agents`.
pub async fn list(call: &Call<'_>) -> Response {
    render_list(call, StatusCode::OK, None, None).await
}

async fn render_list(
    call: &Call<'_>,
    status: StatusCode,
    flash: Option<Flash>,
    created: Option<&CreatedAgent>,
) -> Response {
    let rows = match call.state.ctx.store.list_agents().await {
        Ok(rows) => rows,
        Err(err) => {
            let (status, flash) = pages::failure(err.into());
            return pages::render(
                call,
                status,
                "Agents",
                "/proxy/agents",
                Some(flash),
                html! {},
            )
            .await;
        }
    };
    let body = html! {
        @if let Some(created) = created { (new_key_box(created, "created")) }
        (agent_table(&rows))
        h2 { "Create an agent" }
        (create_form(call))
    };
    pages::render(call, status, "Agents", "/proxy/agents", flash, body).await
}

fn agent_table(rows: &[AgentRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p id="no-agents" class="muted" { "No agents yet." }
        } @else {
            table id="agents" {
                thead { tr { th { "Name" } th { "Agent id" } th { "Display name" } th { "Capabilities" } th { "Created" } th { "Status" } } }
                tbody {
                    @for row in rows {
                        tr data-agent=(row.name) {
                            td { a href=(format!("/proxy/agents/{}", row.name)) { (row.name) } }
                            td.mono { (row.agent_id) }
                            td { (row.display_name) }
                            td { (row.capability_list().join(", ")) }
                            td.mono { (row.created_at) }
                            td { (badge(if row.is_active { "active" } else { "disabled" })) }
                        }
                    }
                }
            }
        }
    }
}

fn create_form(call: &Call<'_>) -> Markup {
    html! {
        form id="create-agent" class="stack" method="post" action="/proxy/agents" {
            (csrf_field(&call.session.csrf_token))
            label { "Name (lower case letters, digits, '.', '_', '-')"
                input id="agent_name" name="agent_name" required maxlength="128" autocomplete="off";
            }
            label { "Display name (optional)"
                input id="display_name" name="display_name" maxlength="256";
            }
            label { "Capabilities (comma-separated)"
                input id="capabilities" name="capabilities" placeholder="procurement.read, procurement.write";
            }
            button id="create-agent-submit" type="submit" { "Create agent" }
        }
    }
}

/// The API key, shown once, with a copy button (revealed by `console.js`).
fn new_key_box(created: &CreatedAgent, what: &str) -> Markup {
    html! {
        div class="secret" id="new-key" {
            p { "Agent " strong { (created.agent_id) } " " (what) ". Its API key is shown only now: copy it into the agent's configuration." }
            p { code id="new-api-key" class="mono" { (created.api_key) } " "
                button type="button" data-copy="new-api-key" hidden { "Copy" } }
        }
    }
}

/// The form's name as the reference takes it: lower case, spaces as `_` (then validated by
/// `agents::create` like a name given to the CLI).
fn normalized_name(raw: &str) -> String {
    raw.trim().to_lowercase().replace(' ', "_")
}

fn capability_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /proxy/agents`: `agents::create`; the answer is the list with the new key (no
/// redirect: the key exists only in this response).
pub async fn create(call: &Call<'_>) -> Response {
    let form = &call.form;
    let name = normalized_name(form.text("agent_name"));
    let capabilities = capability_list(form.text("capabilities"));
    let display_name = Some(form.text("display_name")).filter(|d| !d.is_empty());
    match agents::create(&call.state.ctx, &name, &capabilities, display_name).await {
        Ok(created) => {
            call.console().broker_ok();
            render_list(call, StatusCode::OK, None, Some(&created)).await
        }
        Err(err) => {
            call.console().broker_error(&err);
            let (status, flash) = pages::failure(err);
            render_list(call, status, Some(flash), None).await
        }
    }
}

/// `GET /proxy/agents/{name}`.
pub async fn detail(call: &Call<'_>, name: &str) -> Response {
    render_detail(call, name, StatusCode::OK, None, None).await
}

async fn render_detail(
    call: &Call<'_>,
    name: &str,
    status: StatusCode,
    flash: Option<Flash>,
    new_key: Option<&CreatedAgent>,
) -> Response {
    let store = &call.state.ctx.store;
    let row = match store.agent_by_name(name).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            let flash = Flash::Error(format!("There is no agent called {name:?}."));
            return render_list(call, StatusCode::NOT_FOUND, Some(flash), None).await;
        }
        Err(err) => {
            let (status, flash) = pages::failure(err.into());
            return render_list(call, status, Some(flash), None).await;
        }
    };
    let audit = store
        .audit_rows_about(&row.agent_id, RECENT_AUDIT_ROWS)
        .await
        .unwrap_or_default();
    let key = new_key.map(|created| created.api_key.as_str());
    let body = html! {
        @if let Some(created) = new_key { (new_key_box(created, "has a new API key")) }
        (agent_summary(&row))
        (actions(call, &row))
        h2 { "Use it" }
        (snippets(&call.console().public_url, &row, key))
        h2 { "Recent audit" }
        (super::audit::table(&audit))
    };
    let title = format!("Agent {}", row.name);
    pages::render(call, status, &title, "/proxy/agents", flash, body).await
}

fn agent_summary(row: &AgentRow) -> Markup {
    let not_after = row
        .cert_pem
        .as_deref()
        .and_then(|pem| cullis_shared::pki::Certificate::from_pem(pem).ok())
        .and_then(|cert| time::OffsetDateTime::from_unix_timestamp(cert.not_after()).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    html! {
        table id="agent" data-agent=(row.name) {
            tr { th { "Agent id" } td.mono { (row.agent_id) } }
            tr { th { "Display name" } td { (row.display_name) } }
            tr { th { "Capabilities" } td { (row.capability_list().join(", ")) } }
            tr { th { "Created" } td.mono { (row.created_at) } }
            tr { th { "Certificate valid until" } td.mono { (not_after.unwrap_or_default()) } }
            tr { th { "Status" } td id="agent-status" { (badge(if row.is_active { "active" } else { "disabled" })) } }
        }
    }
}

fn actions(call: &Call<'_>, row: &AgentRow) -> Markup {
    let token = &call.session.csrf_token;
    let action = |verb: &str| format!("/proxy/agents/{}/{verb}", row.name);
    html! {
        div class="actions" id="agent-actions" {
            @if row.is_active {
                (post_button(&action("rotate-key"), "Rotate key", token, false))
                (post_button(&action("rotate-cert"), "Rotate cert", token, false))
                (post_button(&action("disable"), "Disable", token, true))
            }
            (post_button(&action("delete"), "Delete", token, true))
        }
    }
}

/// curl, Python and an MCP client configuration, with the new key when one was just issued.
fn snippets(proxy: &str, row: &AgentRow, api_key: Option<&str>) -> Markup {
    let key = api_key.map_or_else(
        || format!("sk_local_{}_<the key shown at create or rotate>", row.name),
        str::to_owned,
    );
    let curl = format!(
        "export CULLIS_API_KEY='{key}'\ncurl -s -H \"X-API-Key: $CULLIS_API_KEY\" {proxy}/v1/egress/sessions\n\
         curl -s -H \"X-API-Key: $CULLIS_API_KEY\" -H 'Content-Type: application/json' \\\n  \
         -d '{{\"capabilities\": [\"procurement.read\"]}}' {proxy}/v1/egress/discover"
    );
    let python = format!(
        "import os, httpx\n\nproxy = httpx.Client(\n    base_url=\"{proxy}\",\n    \
         headers={{\"X-API-Key\": os.environ[\"CULLIS_API_KEY\"]}},\n)\n\
         print(proxy.get(\"/v1/egress/sessions\").json())\n\
         print(proxy.post(\"/v1/egress/discover\", json={{\"capabilities\": [\"procurement.read\"]}}).json())"
    );
    let mut servers = serde_json::Map::new();
    servers.insert(
        format!("cullis-{}", row.name),
        json!({
            "type": "http",
            "url": format!("{proxy}/mcp"),
            "headers": {"Authorization": format!("Bearer {key}")},
        }),
    );
    let mcp = serde_json::to_string_pretty(&json!({ "mcpServers": servers })).unwrap_or_default();
    html! {
        h3 { "curl" }
        pre id="snippet-curl" { (curl) }
        h3 { "Python (httpx)" }
        pre id="snippet-python" { (python) }
        h3 { "MCP client (Streamable HTTP at " code { "/mcp" } ")" }
        pre id="snippet-mcp" { (mcp) }
    }
}

/// `POST /proxy/agents/{name}/{action}`.
pub async fn act(call: &Call<'_>, name: &str, action: &str) -> Response {
    let ctx = &call.state.ctx;
    let agent_page = format!("/proxy/agents/{name}");
    let outcome = match action {
        "rotate-key" => match agents::rotate_api_key(ctx, name).await {
            Ok(rotated) => {
                call.state.credentials_changed(&rotated.agent_id);
                return render_detail(call, name, StatusCode::OK, None, Some(&rotated)).await;
            }
            Err(err) => Err(err),
        },
        "rotate-cert" => agents::rotate_cert(ctx, name, KeyPair::New)
            .await
            .map(|_| done(&agent_page, "cert_rotated")),
        "disable" => agents::disable(ctx, name)
            .await
            .map(|answer| after_revoke(call, &answer, done(&agent_page, "disabled"))),
        "delete" => agents::delete(ctx, name)
            .await
            .map(|answer| after_revoke(call, &answer, done("/proxy/agents", "deleted"))),
        _ => {
            return pages::message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such agent action.",
            )
        }
    };
    match outcome {
        Ok(location) => {
            call.console().broker_ok();
            redirect(&location)
        }
        Err(err) => {
            call.console().broker_error(&err);
            let (status, flash) = pages::failure(err);
            render_detail(call, name, status, Some(flash), None).await
        }
    }
}

/// After disable or delete: the agent's SSE streams and MCP sessions end, as after the admin
/// API's.
fn after_revoke(call: &Call<'_>, answer: &serde_json::Value, location: String) -> String {
    if let Some(agent_id) = answer.get("agent_id").and_then(serde_json::Value::as_str) {
        call.state.credentials_changed(agent_id);
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_names_and_capabilities_are_normalised() {
        assert_eq!(normalized_name("  Order Bot "), "order_bot");
        assert_eq!(
            capability_list(" a.read, ,b.write,"),
            vec!["a.read".to_owned(), "b.write".to_owned()]
        );
    }

    #[test]
    fn snippets_escape_and_carry_the_key() {
        let row = AgentRow {
            agent_id: "acme::bot".into(),
            name: "bot".into(),
            display_name: "<script>alert(1)</script>".into(),
            capabilities: "[]".into(),
            api_key_hash: String::new(),
            cert_pem: None,
            created_at: String::new(),
            is_active: true,
        };
        let html = snippets("http://p", &row, Some("sk_local_bot_k")).into_string();
        assert!(html.contains("http://p/mcp"));
        assert!(html.contains("Bearer sk_local_bot_k"));
        let summary = agent_summary(&row).into_string();
        assert!(summary.contains("&lt;script&gt;") && !summary.contains("<script>"));
    }
}
