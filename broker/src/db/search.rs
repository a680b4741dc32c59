//! Discovery queries: the agents other organisations may find (active, with an approved
//! binding in their own org). Text filters (glob, substring) run in Rust over this set so
//! they behave the same on both engines.

use super::agents::Agent;
use super::{flag, json_list, Db};
use sqlx::Row;

const DISCOVERABLE: &str = "SELECT a.agent_id, a.org_id, a.display_name, a.description, a.capabilities_json, a.metadata_json, a.is_active, a.registered_at, a.cert_pem, a.cert_thumbprint, a.token_invalidated_at \
     FROM agents a WHERE a.is_active = 1 AND EXISTS (SELECT 1 FROM bindings b WHERE b.org_id = a.org_id AND b.agent_id = a.agent_id AND b.status = 'approved')";

fn agent_from_row(row: &sqlx::any::AnyRow) -> Result<Agent, sqlx::Error> {
    Ok(Agent {
        agent_id: row.try_get("agent_id")?,
        org_id: row.try_get("org_id")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        capabilities: json_list(&row.try_get::<String, _>("capabilities_json")?),
        metadata_json: row.try_get("metadata_json")?,
        is_active: flag(row, "is_active")?,
        registered_at: row.try_get("registered_at")?,
        cert_pem: row.try_get("cert_pem")?,
        cert_thumbprint: row.try_get("cert_thumbprint")?,
        token_invalidated_at: row.try_get("token_invalidated_at")?,
    })
}

impl Db {
    /// Every discoverable agent, in registration order; `org_id` narrows to one org.
    pub async fn discoverable_agents(
        &self,
        org_id: Option<&str>,
    ) -> Result<Vec<Agent>, sqlx::Error> {
        let rows = match org_id {
            Some(org_id) => {
                sqlx::query(&format!(
                    "{DISCOVERABLE} AND a.org_id = $1 ORDER BY a.registered_at, a.agent_id"
                ))
                .bind(org_id)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{DISCOVERABLE} ORDER BY a.registered_at, a.agent_id"
                ))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(agent_from_row).collect()
    }

    /// One agent if it is discoverable.
    pub async fn discoverable_agent(&self, agent_id: &str) -> Result<Option<Agent>, sqlx::Error> {
        let row = sqlx::query(&format!("{DISCOVERABLE} AND a.agent_id = $1"))
            .bind(agent_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }
}

/// Shell-style glob as Python's `fnmatch.fnmatchcase`: `*`, `?`, `[…]`, `[!…]`, case-sensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

/// A `[…]` class at the start of `p`: `Some((matches, length))`, or `None` when unterminated
/// (then `[` is a literal, as in fnmatch).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    while i < p.len() {
        if p[i] == ']' && i > start {
            return Some((hit != negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

/// Iterative wildcard matching with backtracking to the last `*` (linear in practice, no
/// exponential blow-up on patterns like `*a*a*a*`).
fn glob_at(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            let step = match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => Some(1),
                '[' => match class(&p[pi..], t[ti]) {
                    Some((true, len)) => Some(len),
                    Some((false, _)) => None,
                    None => (t[ti] == '[').then_some(1),
                },
                literal => (literal == t[ti]).then_some(1),
            };
            if let Some(len) = step {
                pi += len;
                ti += 1;
                continue;
            }
        }
        match star {
            Some((star_p, star_t)) => {
                pi = star_p + 1;
                ti = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*", "acme::buyer"));
        assert!(glob_match("acme::*", "acme::buyer"));
        assert!(!glob_match("acme::*", "globex::seller"));
        assert!(glob_match("*::sell?r", "globex::seller"));
        assert!(glob_match("g[a-z]obex::*", "globex::x"));
        assert!(!glob_match("g[!l]obex::*", "globex::x"));
        assert!(glob_match(
            "spiffe://*/globex/*",
            "spiffe://cullis.local/globex/seller"
        ));
        assert!(!glob_match("ACME::*", "acme::buyer"));
        assert!(glob_match("[", "["));
    }
}
