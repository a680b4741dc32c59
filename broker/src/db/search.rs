//! Discovery queries: the agents other organisations may find (active, with an approved
//! binding in their own org), filtered and paged in SQL so a search costs what it returns, not
//! what the registry holds.
//!
//! - `capability` is an index lookup per value (`agent_capabilities`), `org_id` uses the
//!   per-org registration index, and pages follow the registration index (keyset pagination:
//!   a [`Cursor`] is the last row's `(registered_at, agent_id)`).
//! - `q` (substring) and `pattern` (glob) stay scans, but only over the rows the indexed
//!   filters leave. A glob without `[…]` classes runs in SQL (SQLite `GLOB`, PostgreSQL `LIKE`:
//!   the same semantics for `*`, `?` and literals); one with classes is checked in Rust with
//!   [`glob_match`] over the candidates' ids, the one place where Python's `fnmatch` rules are
//!   spelled out.
//! - `total` counts every match, whatever the page (a second statement; a count of 1,000 or
//!   more is reused for 5 s, so walking a large result or repeating the SDK's `pattern=*`
//!   does not recount it each time). With the count known, a page of a broad capability walks
//!   the registration index and stops after one page, instead of sorting every match.

use super::agents::Agent;
use super::{Db, Engine};
use base64::Engine as _;
use sqlx::Row;

/// Columns of a discovery row: what the response shows (the certificate is never loaded).
const COLUMNS: &str = "a.agent_id, a.org_id, a.display_name, a.description, a.capabilities_json, a.metadata_json, a.is_active, a.registered_at, \
     NULL AS cert_pem, NULL AS cert_thumbprint, NULL AS token_invalidated_at";

/// Agents others may find. The binding is a scalar subquery (one row at most: bindings are
/// unique per org and agent), not `EXISTS`: PostgreSQL turns `EXISTS` into a join whose plan
/// depends on table statistics, and before the first `ANALYZE` of a growing registry it hashed
/// every binding for each query (28 ms for 9 hits at 10,000 agents); a per-row index lookup is
/// right for every page size, on both engines.
const DISCOVERABLE: &str = "a.is_active = 1 AND (SELECT b.status FROM bindings b WHERE b.org_id = a.org_id AND b.agent_id = a.agent_id) = 'approved'";

/// Stands for the agents table in [`Db::filters`]'s text until the plan says what reads it.
const AGENTS: &str = "@agents";

/// The agent's SPIFFE id built in SQL (`org::name` → `spiffe://<td>/org/name`; registered ids
/// hold exactly one `::`).
const SPIFFE_ID: &str = "('spiffe://' || $TD || '/' || REPLACE(a.agent_id, '::', '/'))";

/// Where a page starts: after this row in registration order. Opaque to clients
/// (base64url of the two keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    registered_at: String,
    agent_id: String,
}

impl Cursor {
    fn after(agent: &Agent) -> Cursor {
        Cursor {
            registered_at: agent.registered_at.clone(),
            agent_id: agent.agent_id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        let text = format!("{}\n{}", self.registered_at, self.agent_id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// `None` for anything this broker did not hand out.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (registered_at, agent_id) = text.split_once('\n')?;
        let plausible = super::parse_timestamp(registered_at).is_some()
            && cullis_shared::pki::validate_agent_id(agent_id).is_ok();
        plausible.then(|| Cursor {
            registered_at: registered_at.to_owned(),
            agent_id: agent_id.to_owned(),
        })
    }
}

/// A discovery query; every filter is optional.
#[derive(Debug, Default)]
pub struct Discovery<'a> {
    /// Every one of these (exact match).
    pub capabilities: Vec<&'a str>,
    pub org_id: Option<&'a str>,
    /// Leave this org out (the caller's own, unless it asked for it).
    pub exclude_org: Option<&'a str>,
    /// Case-insensitive substring of id, display name, org or description.
    pub q: Option<&'a str>,
    /// `fnmatch` glob over the agent id or its SPIFFE id.
    pub pattern: Option<&'a str>,
    pub trust_domain: &'a str,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// One page of matches.
#[derive(Debug)]
pub struct Page {
    pub agents: Vec<Agent>,
    /// All matches, on every page.
    pub total: u64,
    /// Where the next page starts; `None` on the last.
    pub next: Option<Cursor>,
}

/// A statement being built: text with `$n` placeholders numbered in order of appearance, and
/// their values.
#[derive(Default)]
struct Statement {
    sql: String,
    binds: Vec<String>,
}

impl Statement {
    fn bind(&mut self, value: &str) -> String {
        self.binds.push(value.to_owned());
        format!("${}", self.binds.len())
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        self.binds
            .iter()
            .fold(sqlx::query(&self.sql), |query, value| query.bind(value))
    }

    /// The agents the statement selects. On SQLite through the direct connections (no worker
    /// thread hop per statement and row: discovery is a hot read like the relay's); the
    /// placeholders are numbered in order of first appearance, so they bind by position.
    async fn agents(&self, db: &Db) -> Result<Vec<Agent>, sqlx::Error> {
        if let Some(direct) = db.direct() {
            return direct.read(|c| {
                let mut statement = c.prepare_cached(&self.sql)?;
                let rows = statement
                    .query_map(rusqlite::params_from_iter(self.binds.iter()), |row| {
                        Agent::from_row(row)
                    })?;
                rows.collect()
            });
        }
        let rows = self.query().fetch_all(db.pool()).await?;
        rows.iter().map(Agent::from_row).collect()
    }

    /// The single integer column `n` the statement selects.
    async fn count(&self, db: &Db) -> Result<i64, sqlx::Error> {
        if let Some(direct) = db.direct() {
            return direct.read(|c| {
                c.prepare_cached(&self.sql)?
                    .query_row(rusqlite::params_from_iter(self.binds.iter()), |row| {
                        row.get("n")
                    })
            });
        }
        self.query().fetch_one(db.pool()).await?.try_get("n")
    }
}

/// A glob as SQL, when it has no `[…]` class: SQLite's `GLOB` already means `*`, `?` and
/// literals as `fnmatch` does; PostgreSQL gets the equivalent `LIKE` (case-sensitive there).
fn glob_condition(engine: Engine, pattern: &str) -> Option<(&'static str, String)> {
    if pattern.contains('[') {
        return None;
    }
    match engine {
        Engine::Sqlite => Some(("GLOB", pattern.to_owned())),
        Engine::Postgres => {
            let mut like = String::with_capacity(pattern.len() + 4);
            for c in pattern.chars() {
                match c {
                    '*' => like.push('%'),
                    '?' => like.push('_'),
                    '%' | '_' | '\\' => {
                        like.push('\\');
                        like.push(c);
                    }
                    c => like.push(c),
                }
            }
            Some(("LIKE", like))
        }
    }
}

/// How a page query finds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// From the first capability's rows (few matches), sorted afterwards.
    FromCapability,
    /// Along the registration index, each agent checked (many matches).
    InOrder,
}

/// Counts from this many matches up are reused for [`TOTAL_TTL`].
pub const REMEMBERED_TOTAL: u64 = 1_000;
/// How long a remembered count stands.
pub const TOTAL_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Discovery<'_> {
    /// The filters, as the key of a remembered count (the page position left out).
    fn filter_key(&self) -> String {
        serde_json::json!([
            self.capabilities,
            self.org_id,
            self.exclude_org,
            self.q,
            self.pattern,
            self.trust_domain
        ])
        .to_string()
    }
}

impl Db {
    /// One page of the agents `query` finds, in registration order, with the full count.
    pub async fn discover(&self, query: &Discovery<'_>) -> Result<Page, sqlx::Error> {
        let sql_glob = query
            .pattern
            .filter(|p| *p != "*")
            .map(|p| glob_condition(self.engine, p));
        if let Some(None) = sql_glob {
            let mut statement = Statement::default();
            let filters = Self::filters(query, &mut statement, None, Plan::FromCapability)
                .replacen(AGENTS, "agents", 1);
            return self.discover_by_class_glob(query, statement, filters).await;
        }
        let glob = sql_glob.flatten();
        let remembered = self.remembered_total(query);
        if remembered.is_none() && query.after.is_none() {
            // A first page that holds every match (any narrow search) is its own count: one
            // statement. A full one keeps its rows and is counted too.
            let mut agents = self
                .page_rows(query, glob.clone(), Plan::FromCapability)
                .await?;
            let total = if agents.len() > query.limit as usize {
                self.discovery_total(query, glob).await?
            } else {
                agents.len() as u64
            };
            return Ok(paged(&mut agents, query.limit, total));
        }
        let total = match remembered {
            Some(total) => total,
            None => self.discovery_total(query, glob.clone()).await?,
        };
        // A capability most agents hold is cheaper to check per agent in registration order
        // (the walk stops after one page) than to drive from its rows and sort them all.
        let plan = if total > 4 * (u64::from(query.limit) + 1) {
            Plan::InOrder
        } else {
            Plan::FromCapability
        };
        let mut agents = self.page_rows(query, glob, plan).await?;
        Ok(paged(&mut agents, query.limit, total))
    }

    /// Up to `limit + 1` agents of `query` from its cursor on, read the way `plan` says.
    async fn page_rows(
        &self,
        query: &Discovery<'_>,
        glob: Option<(&'static str, String)>,
        plan: Plan,
    ) -> Result<Vec<Agent>, sqlx::Error> {
        let mut statement = Statement::default();
        let mut filters = Self::filters(query, &mut statement, glob, plan);
        let cursor = query.after.as_ref().map(|after| {
            (
                statement.bind(&after.registered_at),
                statement.bind(&after.agent_id),
            )
        });
        if let Some((at, id)) = &cursor {
            // The first condition alone is an index range; the second settles ties.
            filters.push_str(&format!(
                " AND a.registered_at >= {at} AND (a.registered_at > {at} OR a.agent_id > {id})"
            ));
        }
        // PostgreSQL estimates the filters' selectivity from statistics and, for a broad
        // capability, still sorted every match; reading the agents through an ordered
        // subquery it cannot flatten (`OFFSET 0`) makes it walk the registration index and
        // stop after one page. SQLite already walks the index. (PostgreSQL binds `$n` by
        // number, so the cursor may appear here first.)
        let agents_source = match (plan, self.engine, &cursor) {
            (Plan::InOrder, Engine::Postgres, Some((at, _))) => format!(
                "(SELECT * FROM agents WHERE registered_at >= {at} ORDER BY registered_at, agent_id OFFSET 0)"
            ),
            (Plan::InOrder, Engine::Postgres, None) => {
                "(SELECT * FROM agents ORDER BY registered_at, agent_id OFFSET 0)".to_owned()
            }
            _ => "agents".to_owned(),
        };
        let filters = filters.replacen(AGENTS, &agents_source, 1);
        statement.sql = format!(
            "SELECT {COLUMNS} FROM {filters} ORDER BY a.registered_at, a.agent_id LIMIT {}",
            u64::from(query.limit) + 1
        );
        statement.agents(self).await
    }

    /// The count remembered for `query`'s filters, if still fresh.
    fn remembered_total(&self, query: &Discovery<'_>) -> Option<u64> {
        self.discovery_totals
            .get(&query.filter_key())
            .filter(|(_, counted)| counted.elapsed() < TOTAL_TTL)
            .map(|(total, _)| total)
    }

    /// Every match of `query` (the cursor aside). Counting a broad query visits every match,
    /// ~70 ms per 100,000 on SQLite, so a count of at least [`REMEMBERED_TOTAL`] is reused for
    /// [`TOTAL_TTL`] (the pages of one walk, the SDK's repeated `pattern=*`); smaller counts
    /// are cheap and always exact.
    async fn discovery_total(
        &self,
        query: &Discovery<'_>,
        glob: Option<(&'static str, String)>,
    ) -> Result<u64, sqlx::Error> {
        let mut count = Statement::default();
        let filters = Self::filters(query, &mut count, glob, Plan::FromCapability)
            .replacen(AGENTS, "agents", 1);
        count.sql = format!("SELECT COUNT(*) AS n FROM {filters}");
        let total = count.count(self).await?;
        let total = total.max(0) as u64;
        if total >= REMEMBERED_TOTAL {
            self.discovery_totals
                .insert(query.filter_key(), (total, std::time::Instant::now()));
        }
        Ok(total)
    }

    /// `FROM … WHERE …` for every filter but the cursor (binding into `statement`). With
    /// capabilities, the first one's rows drive the query (`CROSS JOIN` fixes SQLite's join
    /// order: otherwise it may walk the registration index to skip a sort, visiting every
    /// agent to find a few); the others are index lookups per row.
    fn filters(
        query: &Discovery<'_>,
        statement: &mut Statement,
        glob: Option<(&'static str, String)>,
        plan: Plan,
    ) -> String {
        let (mut sql, checked) = match (plan, query.capabilities.first()) {
            (Plan::FromCapability, Some(first)) => (
                format!(
                    "agent_capabilities c0 CROSS JOIN {AGENTS} a WHERE c0.capability = {} AND a.agent_id = c0.agent_id AND {DISCOVERABLE}",
                    statement.bind(first)
                ),
                1,
            ),
            _ => (format!("{AGENTS} a WHERE {DISCOVERABLE}"), 0),
        };
        if let Some(org) = query.org_id {
            sql.push_str(&format!(" AND a.org_id = {}", statement.bind(org)));
        }
        if let Some(org) = query.exclude_org {
            sql.push_str(&format!(" AND a.org_id <> {}", statement.bind(org)));
        }
        // A scalar subquery (the key is unique), not `EXISTS`: PostgreSQL would turn `EXISTS`
        // into a semi-join that hashes every agent holding the capability before the first row
        // of a page (4 s per page at 80,000 holders); per-row lookups let the walk stop early.
        for capability in query.capabilities.iter().skip(checked) {
            let capability = statement.bind(capability);
            sql.push_str(&format!(
                " AND (SELECT 1 FROM agent_capabilities c WHERE c.capability = {capability} AND c.agent_id = a.agent_id) = 1"
            ));
        }
        if let Some(q) = query.q {
            let like = statement.bind(&super::like_pattern(q));
            let any = ["a.agent_id", "a.display_name", "a.org_id", "a.description"]
                .map(|column| format!("LOWER({column}) LIKE {like} ESCAPE '\\'"))
                .join(" OR ");
            sql.push_str(&format!(" AND ({any})"));
        }
        if let Some((operator, pattern)) = glob {
            let escape = if operator == "LIKE" {
                " ESCAPE '\\'"
            } else {
                ""
            };
            let pattern = statement.bind(&pattern);
            let spiffe = SPIFFE_ID.replace("$TD", &statement.bind(query.trust_domain));
            sql.push_str(&format!(
                " AND (a.agent_id {operator} {pattern}{escape} OR {spiffe} {operator} {pattern}{escape})"
            ));
        }
        sql
    }

    /// A glob with `[…]` classes: the other filters in SQL, the glob in Rust over the
    /// candidates' ids (the one discovery path that scans every candidate), then the page's
    /// rows by id.
    async fn discover_by_class_glob(
        &self,
        query: &Discovery<'_>,
        mut statement: Statement,
        filters: String,
    ) -> Result<Page, sqlx::Error> {
        let pattern = query.pattern.unwrap_or("*");
        statement.sql = format!(
            "SELECT a.agent_id, a.registered_at FROM {filters} ORDER BY a.registered_at, a.agent_id"
        );
        let mut matches = Vec::new();
        for row in statement.query().fetch_all(self.pool()).await? {
            let agent_id: String = row.try_get("agent_id")?;
            let spiffe = cullis_shared::pki::internal_to_spiffe(&agent_id, query.trust_domain);
            if glob_match(pattern, &agent_id)
                || spiffe.is_ok_and(|uri| glob_match(pattern, uri.as_str()))
            {
                matches.push(Cursor {
                    registered_at: row.try_get("registered_at")?,
                    agent_id,
                });
            }
        }
        let total = matches.len() as u64;
        let start = query.after.as_ref().map_or(0, |after| {
            matches.partition_point(|m| {
                (m.registered_at.as_str(), m.agent_id.as_str())
                    <= (after.registered_at.as_str(), after.agent_id.as_str())
            })
        });
        let ids: Vec<&Cursor> = matches[start..]
            .iter()
            .take(query.limit as usize + 1)
            .collect();
        let mut agents = Vec::new();
        if !ids.is_empty() {
            let mut by_id = Statement::default();
            let placeholders: Vec<String> = ids.iter().map(|m| by_id.bind(&m.agent_id)).collect();
            by_id.sql = format!(
                "SELECT {COLUMNS} FROM agents a WHERE a.agent_id IN ({}) ORDER BY a.registered_at, a.agent_id",
                placeholders.join(", ")
            );
            agents = by_id.agents(self).await?;
        }
        Ok(paged(&mut agents, query.limit, total))
    }

    /// One agent if it is discoverable.
    pub async fn discoverable_agent(&self, agent_id: &str) -> Result<Option<Agent>, sqlx::Error> {
        let mut statement = Statement::default();
        let id = statement.bind(agent_id);
        statement.sql =
            format!("SELECT {COLUMNS} FROM agents a WHERE {DISCOVERABLE} AND a.agent_id = {id}");
        Ok(statement.agents(self).await?.pop())
    }
}

/// Cuts `limit + 1` fetched rows to a page: the extra row only says that another page exists.
fn paged(agents: &mut Vec<Agent>, limit: u32, total: u64) -> Page {
    let more = agents.len() > limit as usize;
    agents.truncate(limit as usize);
    Page {
        next: more.then(|| agents.last().map(Cursor::after)).flatten(),
        agents: std::mem::take(agents),
        total,
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
mod sql_tests {
    //! The SQL side of discovery on both engines (PostgreSQL at 127.0.0.1, as every test
    //! here; .ci/run starts it).
    use super::*;
    use crate::db::agents::NewAgent;

    const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// Runs `test` on a fresh PostgreSQL database, dropped afterwards.
    async fn on_postgres<F, Fut>(test: F)
    where
        F: FnOnce(Db) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!("cullis_unit_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::AnyConnection::connect(POSTGRES_ADMIN).await.expect(
            "PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth) — start it, see .ci/run",
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let db = Db::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .unwrap();
        test(db.clone()).await;
        db.pool().close().await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    async fn org(db: &Db, org_id: &str) {
        sqlx::query("INSERT INTO organizations (org_id, display_name, secret_hash, status, registered_at) VALUES ($1, $1, 'x', 'active', $2)")
            .bind(org_id)
            .bind(crate::db::now_text())
            .execute(db.pool())
            .await
            .unwrap();
    }

    /// A discoverable agent (registered, bound, approved).
    async fn agent(db: &Db, agent_id: &str, capabilities: &[&str]) {
        let org_id = agent_id.split_once("::").unwrap().0;
        let capabilities: Vec<String> = capabilities.iter().map(|c| c.to_string()).collect();
        let capabilities_json = serde_json::to_string(&capabilities).unwrap();
        let new = NewAgent {
            agent_id,
            org_id,
            display_name: agent_id,
            description: "",
            capabilities_json: &capabilities_json,
            metadata_json: "{}",
        };
        assert!(db.insert_agent(&new, &capabilities).await.unwrap());
        let binding = db
            .insert_binding(org_id, agent_id, &[])
            .await
            .unwrap()
            .unwrap();
        db.approve_binding(binding.id, "test").await.unwrap();
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.agents.iter().map(|a| a.agent_id.as_str()).collect()
    }

    /// Every glob gives what [`glob_match`] (Python's fnmatch rules) gives over the same ids,
    /// whether it runs as SQL (`GLOB` / `LIKE`, no classes) or in Rust (classes).
    async fn globs_agree_with_fnmatch(db: Db) {
        db.migrate().await.unwrap();
        let ids_registered = [
            "acme::buyer",
            "acme::b_yer",
            "acme::b.yer",
            "acme::bxyer",
            "acme::x-1",
            "globex::seller",
            "globex::sell_r",
            "globex::s100",
        ];
        org(&db, "acme").await;
        org(&db, "globex").await;
        for id in ids_registered {
            agent(&db, id, &["any"]).await;
        }
        let patterns = [
            "*",
            "acme::*",
            "*::b_yer",
            "*::b?yer",
            "*_*",
            "*.*",
            "acme::b%",
            "*%*",
            "globex::s[0-9]*",
            "globex::sell[!_]r",
            "*::[ab]*",
            "[",
            "*[*",
            "acme::b[_.]yer",
            "spiffe://td/acme/*",
            "spiffe://td/*/s?ller",
            "spiffe://other/*",
            "*\\*",
        ];
        for pattern in patterns {
            let query = Discovery {
                pattern: Some(pattern),
                trust_domain: "td",
                limit: 100,
                ..Discovery::default()
            };
            let page = db.discover(&query).await.unwrap();
            let mut expected: Vec<&str> = ids_registered
                .iter()
                .copied()
                .filter(|id| {
                    let uri = format!("spiffe://td/{}", id.replace("::", "/"));
                    glob_match(pattern, id) || glob_match(pattern, &uri)
                })
                .collect();
            let mut found = ids(&page);
            expected.sort_unstable();
            found.sort_unstable();
            assert_eq!(found, expected, "pattern {pattern:?}");
            assert_eq!(page.total as usize, expected.len(), "pattern {pattern:?}");
        }
    }

    /// Pages cover every match once, in registration order, whichever path serves them.
    async fn pages_walk_every_match_once(db: Db) {
        db.migrate().await.unwrap();
        org(&db, "acme").await;
        org(&db, "globex").await;
        let mut expected = Vec::new();
        for i in 0..11 {
            let id = format!("globex::bulk-{i:02}");
            agent(&db, &id, &["bulk", "extra"]).await;
            expected.push(id);
        }
        agent(&db, "globex::other", &["other"]).await;
        agent(&db, "acme::own", &["bulk"]).await;
        // Limit 4: few matches for the page size, driven from the capability; limit 1: many,
        // walked in registration order. Both engines, all three glob paths.
        for (limit, expected_pages) in [(4, 3), (1, 11)] {
            for pattern in [None, Some("globex::bulk-*"), Some("globex::bulk-[0-9]*")] {
                let mut after = None;
                let mut seen = Vec::new();
                let mut pages = 0;
                loop {
                    let query = Discovery {
                        capabilities: vec!["bulk", "extra"],
                        exclude_org: Some("acme"),
                        pattern,
                        trust_domain: "td",
                        after: after.take(),
                        limit,
                        ..Discovery::default()
                    };
                    let page = db.discover(&query).await.unwrap();
                    assert_eq!(page.total, 11, "{pattern:?}");
                    assert!(page.agents.len() <= limit as usize);
                    seen.extend(ids(&page).into_iter().map(str::to_owned));
                    pages += 1;
                    match page.next {
                        Some(next) => after = Cursor::decode(&next.encode()),
                        None => break,
                    }
                }
                assert_eq!(pages, expected_pages, "{pattern:?} by {limit}");
                assert_eq!(seen, expected, "{pattern:?} by {limit}");
            }
        }
    }

    /// Agents registered before migration 0010 get their capability rows from it.
    async fn capabilities_are_backfilled(db: Db, migrations: &'static sqlx::migrate::Migrator) {
        let before = sqlx::migrate::Migrator {
            migrations: migrations
                .migrations
                .iter()
                .filter(|m| m.version < 10)
                .cloned()
                .collect(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(db.pool()).await.unwrap();
        org(&db, "acme").await;
        sqlx::query("INSERT INTO agents (agent_id, org_id, display_name, capabilities_json, is_active, registered_at) VALUES ('acme::old', 'acme', 'old', '[\"quote\",\"ship\",\"quote\"]', 1, $1)")
            .bind(crate::db::now_text())
            .execute(db.pool())
            .await
            .unwrap();
        let binding = db
            .insert_binding("acme", "acme::old", &[])
            .await
            .unwrap()
            .unwrap();
        db.approve_binding(binding.id, "test").await.unwrap();
        db.migrate().await.unwrap();
        for capabilities in [vec!["quote"], vec!["ship", "quote"]] {
            let query = Discovery {
                capabilities,
                trust_domain: "td",
                limit: 10,
                ..Discovery::default()
            };
            assert_eq!(ids(&db.discover(&query).await.unwrap()), ["acme::old"]);
        }
    }

    #[tokio::test]
    async fn globs_agree_with_fnmatch_on_sqlite() {
        let (db, _scratch) = crate::db::test_support::db().await;
        globs_agree_with_fnmatch(db).await;
    }

    #[tokio::test]
    async fn globs_agree_with_fnmatch_on_postgres() {
        on_postgres(globs_agree_with_fnmatch).await;
    }

    #[tokio::test]
    async fn pages_walk_every_match_once_on_sqlite() {
        let (db, _scratch) = crate::db::test_support::db().await;
        pages_walk_every_match_once(db).await;
    }

    #[tokio::test]
    async fn pages_walk_every_match_once_on_postgres() {
        on_postgres(pages_walk_every_match_once).await;
    }

    #[tokio::test]
    async fn capabilities_are_backfilled_on_sqlite() {
        let scratch = crate::db::test_support::Scratch::new("backfill");
        let url = format!("sqlite://{}", scratch.path().join("old.db").display());
        capabilities_are_backfilled(
            Db::connect(&url).await.unwrap(),
            &crate::db::SQLITE_MIGRATIONS,
        )
        .await;
    }

    #[tokio::test]
    async fn capabilities_are_backfilled_on_postgres() {
        on_postgres(|db| capabilities_are_backfilled(db, &crate::db::POSTGRES_MIGRATIONS)).await;
    }

    #[test]
    fn a_cursor_survives_its_round_trip_and_forgeries_are_refused() {
        let cursor = Cursor {
            registered_at: "2026-12-04T10:00:00.000001Z".into(),
            agent_id: "acme::buyer".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for forged in ["", "!!", "bm90IGEgY3Vyc29y", "YWNtZTo6YnV5ZXI"] {
            assert_eq!(Cursor::decode(forged), None, "{forged}");
        }
    }
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
