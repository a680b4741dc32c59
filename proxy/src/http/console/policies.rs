//! The PDP rules editor: the stored JSON document in a textarea; saving goes through
//! `pdp::set_rules` (the CLI's and the admin API's validation and audit row).

use super::pages::{self, done};
use super::{redirect, Call};
use crate::http::Response;
use crate::pdp;
use cullis_console::html;
use cullis_console::layout::{csrf_field, Flash};
use cullis_console::Markup;
use http::StatusCode;
use serde_json::Value;

/// `GET /proxy/policies`.
pub async fn page(call: &Call<'_>) -> Response {
    match pdp::rules(&call.state.ctx.store).await {
        Ok(rules) => {
            let text = serde_json::to_string_pretty(&rules).unwrap_or_else(|_| "{}".into());
            render(call, StatusCode::OK, None, &text).await
        }
        Err(err) => {
            let (status, flash) = pages::failure(err.into());
            render(call, status, Some(flash), "").await
        }
    }
}

async fn render(call: &Call<'_>, status: StatusCode, flash: Option<Flash>, text: &str) -> Response {
    pages::render(
        call,
        status,
        "Policies",
        "/proxy/policies",
        flash,
        editor(call, text),
    )
    .await
}

fn editor(call: &Call<'_>, text: &str) -> Markup {
    html! {
        p { "The broker asks this proxy's PDP about every session that involves the organisation. "
            "The rules (all optional):" }
        ul {
            li { code { "blocked_agents" } ": agent ids (either side) always denied" }
            li { code { "allowed_orgs" } ": peer organisations allowed (an empty list allows all)" }
            li { code { "capabilities" } ": capabilities a session may ask for (an empty list allows all)" }
        }
        form id="policy-form" class="stack" method="post" action="/proxy/policies" {
            (csrf_field(&call.session.csrf_token))
            label { "Rules (JSON)"
                textarea id="rules-json" name="rules_json" rows="16" spellcheck="false" { (text) }
            }
            button id="save-policy" type="submit" { "Save rules" }
        }
    }
}

/// `POST /proxy/policies`: bad JSON or a bad shape is a 400 page with the reason and the text
/// as sent; nothing is stored then.
pub async fn save(call: &Call<'_>) -> Response {
    let text = call.form.get("rules_json").unwrap_or("");
    let rules: Value = match serde_json::from_str(text) {
        Ok(rules) => rules,
        Err(err) => {
            let flash = Flash::Error(format!("Not saved: the rules are not valid JSON ({err})."));
            return render(call, StatusCode::BAD_REQUEST, Some(flash), text).await;
        }
    };
    match pdp::set_rules(&call.state.ctx.store, &rules).await {
        Ok(()) => redirect(&done("/proxy/policies", "policy_saved")),
        Err(err) => {
            let (status, flash) = pages::failure(err);
            let flash = match flash {
                Flash::Error(why) => Flash::Error(format!("Not saved: {why}")),
                other => other,
            };
            render(call, status, Some(flash), text).await
        }
    }
}
